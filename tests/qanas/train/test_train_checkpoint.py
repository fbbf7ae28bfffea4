"""Checkpoints: atomic writes, clear errors for bad files, supernet reconstruction."""

from __future__ import annotations

import pytest
import torch

from qanas.errors import CheckpointError
from qanas.train import SupernetTrainer, load_checkpoint, load_supernet, save_checkpoint
from qanas.train.checkpoint import FORMAT
from tests.support.toy_space import TOY, register_toy_spaces, tiny_config


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


def _assert_same_run(full, resumed):
    a, b = full.model.state_dict(), resumed.model.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    opt_a, opt_b = full.optimizer.state_dict(), resumed.optimizer.state_dict()
    for pid, state in opt_a["state"].items():
        for name, value in state.items():
            if torch.is_tensor(value):
                assert torch.equal(value, opt_b["state"][pid][name]), (pid, name)
    assert full.scheduler.get_last_lr() == resumed.scheduler.get_last_lr()
    assert full.step == resumed.step
    assert [h["loss"] for h in full.history] == [h["loss"] for h in resumed.history]
    assert [h["val_miou"] for h in full.history] == [h["val_miou"] for h in resumed.history]
    assert all((x == y).all() for x, y in zip(full.sampler.counts, resumed.sampler.counts,
                                              strict=True))


MID_EPOCH = dict(epochs=2, steps_per_epoch=5, train_length=24)


@pytest.mark.parametrize("changes", [{}, {"sampler": "spos", "augment": True}])
def test_mid_epoch_checkpoint_resumes_bit_identically(tmp_path, changes):
    config = tiny_config(**MID_EPOCH, **changes)
    full = SupernetTrainer(config, tmp_path / "full", checkpoint_every=0)
    full.fit()
    full_rng = torch.get_rng_state()

    split = SupernetTrainer(config, tmp_path / "split", checkpoint_every=2)
    path = tmp_path / "split" / "supernet.pt"
    assert split._train_epoch(0, path, stop_after=3) is None  # "killed" after step 3
    payload = load_checkpoint(path)
    assert payload["epoch"] == 0 and payload["step"] == 2  # step 3 was not saved: lost
    assert payload["epoch_progress"]["epoch"] == 0
    assert payload["epoch_progress"]["batches"] == 2
    del split
    torch.manual_seed(12345)  # disturb global RNG: resume must restore it
    resumed = SupernetTrainer.from_checkpoint(path, checkpoint_every=2)
    resumed.fit()
    _assert_same_run(full, resumed)
    assert torch.equal(torch.get_rng_state(), full_rng)
    assert "epoch_progress" not in load_checkpoint(path)  # the last one closes an epoch


def test_mid_epoch_checkpoints_come_every_n_steps(tmp_path, monkeypatch):
    trainer = SupernetTrainer(tiny_config(**MID_EPOCH), tmp_path, checkpoint_every=2)
    saved = []
    real_save = trainer.save
    monkeypatch.setattr(trainer, "save", lambda p: (saved.append(
        (trainer.step, trainer._progress["batches"])), real_save(p))[1])
    trainer.fit()
    # steps 2 and 4 of each epoch mid-epoch (5 steps per epoch), then the epoch's end
    assert saved == [(2, 2), (4, 4), (5, 0), (6, 1), (8, 3), (10, 0)]


def test_negative_checkpoint_every_is_refused(tmp_path):
    from qanas.errors import ConfigError

    with pytest.raises(ConfigError, match="checkpoint_every"):
        SupernetTrainer(tiny_config(epochs=1), tmp_path, checkpoint_every=-1)


KILLED_TRAINER = """
import sys, time
import torch
torch.set_num_threads(1)  # as conftest.py: the comparison run is in the test's process
sys.path.insert(0, sys.argv[3])
from tests.support.toy_space import register_toy_spaces
from tests.support.toy_space import tiny_config
from qanas.train import SupernetTrainer
register_toy_spaces()
out, log = sys.argv[1], sys.argv[2]
trainer = SupernetTrainer(tiny_config(epochs=2, steps_per_epoch=5, train_length=24), out,
                          checkpoint_every=1)
real_save = trainer.save
def save(path):
    real_save(path)
    with open(log, "a") as f:
        f.write(f"{trainer.step}\\n")
    time.sleep(0.4)  # the next steps' "work": the kill lands here
trainer.save = save
trainer.fit()
"""


def test_sigkill_mid_epoch_then_resume_matches_the_uninterrupted_run(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    tests = Path(__file__).resolve().parents[2]
    out, log = tmp_path / "killed", tmp_path / "saves.log"
    env = {**os.environ, "PYTHONPATH": str(tests.parent), "QANAS_QUIET": "1"}
    proc = subprocess.Popen([sys.executable, "-c", KILLED_TRAINER, str(out), str(log),
                             str(tests.parent)], env=env)
    deadline = time.time() + 120
    while time.time() < deadline and not (log.exists() and len(log.read_text().split()) >= 3):
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    payload = load_checkpoint(out / "supernet.pt")
    assert payload["epoch"] == 0 and payload["epoch_progress"]["batches"] == payload["step"] == 3
    assert sorted(p.name for p in out.iterdir()) == ["supernet.pt"]  # no temp file left

    config = tiny_config(epochs=2, steps_per_epoch=5, train_length=24)
    full = SupernetTrainer(config, tmp_path / "full", checkpoint_every=0)
    full.fit()
    resumed = SupernetTrainer.from_checkpoint(out / "supernet.pt")
    resumed.fit()
    _assert_same_run(full, resumed)
