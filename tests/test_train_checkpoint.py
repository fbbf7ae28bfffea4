"""Checkpoints: atomic writes, clear errors for bad files, supernet reconstruction."""

from __future__ import annotations

import pytest
import torch
from test_train_toyspace import TOY, register_toy_spaces
from test_train_trainer import tiny_config

from qanas.errors import CheckpointError
from qanas.train import SupernetTrainer, load_checkpoint, load_supernet, save_checkpoint
from qanas.train.checkpoint import FORMAT


@pytest.fixture(autouse=True)
def _toy():
    register_toy_spaces()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    register_toy_spaces()
    out = tmp_path_factory.mktemp("trained")
    trainer = SupernetTrainer(tiny_config(epochs=1), out)
    trainer.fit()
    return out / "supernet.pt", trainer


def test_round_trip_keeps_every_field(trained):
    path, trainer = trained
    payload = load_checkpoint(path)
    assert payload["format"] == FORMAT and payload["space"] == TOY
    assert payload["num_classes"] == trainer.num_classes and payload["image_size"] == [16, 32]
    assert payload["dataset"] == {"name": "synthetic", "root": None}
    for key in ("model", "optimizer", "scheduler", "epoch", "step", "rng", "config", "history"):
        assert key in payload


def test_load_supernet_rebuilds_the_trained_weights(trained):
    path, trainer = trained
    supernet, meta = load_supernet(path)
    assert meta["space"] == TOY and meta["epoch"] == 1 and meta["qat"] is False
    assert len(meta["history"]) == 1
    x = torch.randn(1, 3, 16, 32)
    cfg = trainer.space.seed_config()
    trainer.model.eval().set_active(cfg)
    supernet.set_active(cfg)
    with torch.no_grad():
        assert torch.equal(supernet(x), trainer.model(x))
    trainer.model.train()


def test_truncated_checkpoint_raises_a_clear_error(trained, tmp_path):
    data = trained[0].read_bytes()
    bad = tmp_path / "supernet.pt"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt") as info:
        load_checkpoint(bad)
    assert str(bad) in str(info.value) and "copy the file again" in str(info.value)
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_supernet(bad)


@pytest.mark.parametrize("content, match", [
    (b"", "is empty"),
    (b"not a torch file at all" * 10, "truncated or corrupt"),
])
def test_garbage_files_raise_checkpoint_error(tmp_path, content, match):
    bad = tmp_path / "x.pt"
    bad.write_bytes(content)
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(bad)


def test_missing_file_names_the_command_that_makes_one(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint at .*qanas train-supernet"):
        load_checkpoint(tmp_path / "nope.pt")


def test_a_plain_state_dict_is_not_a_supernet_checkpoint(tmp_path):
    path = tmp_path / "mbv2.pt"
    torch.save(torch.nn.Linear(2, 2).state_dict(), path)
    with pytest.raises(CheckpointError, match="not a qanas supernet checkpoint.*--init-from"):
        load_checkpoint(path)


def test_unknown_format_version_is_refused(tmp_path):
    path = tmp_path / "future.pt"
    save_checkpoint(path, {"format": "qanas-supernet/99"})
    with pytest.raises(CheckpointError, match="format 'qanas-supernet/99'"):
        load_checkpoint(path)


def test_weights_of_another_space_do_not_load(trained, tmp_path):
    payload = load_checkpoint(trained[0])
    payload["model"]["head.weight"] = torch.zeros(6, 4, 1, 1)
    path = tmp_path / "wrong.pt"
    save_checkpoint(path, payload)
    with pytest.raises(CheckpointError, match="do not fit.*size mismatch for head.weight.*retrain"):
        load_supernet(path)


def test_failed_save_keeps_the_previous_checkpoint(trained, tmp_path):
    path = tmp_path / "supernet.pt"
    path.write_bytes(trained[0].read_bytes())
    with pytest.raises(Exception):  # noqa: B017 - a lambda cannot be pickled
        save_checkpoint(path, {**load_checkpoint(path), "bad": lambda: None})
    assert load_checkpoint(path)["epoch"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["supernet.pt"]


def test_save_writes_through_a_temp_file_and_rename(tmp_path, monkeypatch):
    import os

    renames = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: (renames.append((a, b)), real_replace(a, b)))
    save_checkpoint(tmp_path / "c.pt", {"format": FORMAT})
    (src, dst), = renames
    assert str(dst).endswith("c.pt") and str(src).endswith(".tmp")
    assert os.path.dirname(src) == os.path.dirname(dst)
