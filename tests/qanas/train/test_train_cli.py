"""`qanas train-supernet`: files written, overwrite protection, resume, QAT, real spaces."""

from __future__ import annotations

import json

import pytest

from qanas.cli.main import main
from qanas.space import list_spaces
from qanas.supernet import build_supernet
from qanas.train import load_checkpoint
from tests.support.toy_space import TOY, register_toy_spaces

TINY = ["--data", "synthetic", "--image-size", "16", "32", "--batch-size", "4",
        "--steps-per-epoch", "2", "--train-length", "12", "--val-length", "4",
        "--val-batches", "1", "--calib-batches", "1"]


@pytest.fixture(autouse=True)
def _toy():
    register_toy_spaces()


def _run(capsys, *argv) -> tuple[int, dict]:
    code = main(["train-supernet", *argv, "--json"])
    out = capsys.readouterr().out.strip().splitlines()
    return code, json.loads(out[-1])


def test_writes_checkpoint_config_and_result(tmp_path, capsys):
    out = tmp_path / "run"
    code, result = _run(capsys, "--space", TOY, *TINY, "--epochs", "2", "--out", str(out))
    assert code == 0, result
    assert result["epochs"] == 2 and result["checkpoint"] == str(out / "supernet.pt")
    assert set(result["val_miou"]) == {"max", "min", "seed"} and result["final_loss"] > 0
    assert 0 <= result["baseline_miou"] <= 1
    meta = json.loads((out / "config.json").read_text())
    assert meta["seed"] == 0 and meta["config"]["train"]["space"] == TOY
    assert meta["config"]["train"]["lr"] == 0.01 and "torch" in meta["versions"]
    assert meta["config"]["train"]["optimizer"] == "adamw"
    assert meta["config"]["train"]["augment"] is False  # synthetic: off unless --augment
    assert json.loads((out / "result.json").read_text())["history"][-1]["epoch"] == 2
    assert load_checkpoint(out / "supernet.pt")["epoch"] == 2


def test_refuses_to_overwrite_without_force(tmp_path, capsys):
    out = tmp_path / "run"
    assert _run(capsys, "--space", TOY, *TINY, "--epochs", "1", "--out", str(out))[0] == 0
    before = (out / "supernet.pt").read_bytes()
    code, result = _run(capsys, "--space", TOY, *TINY, "--epochs", "1", "--seed", "4",
                        "--out", str(out))
    assert code == 2 and "--force" in result["error"]
    assert (out / "supernet.pt").read_bytes() == before
    code, _ = _run(capsys, "--space", TOY, *TINY, "--epochs", "1", "--seed", "4",
                   "--out", str(out), "--force")
    assert code == 0 and (out / "supernet.pt").read_bytes() != before


def test_resume_extends_and_checks_flags(tmp_path, capsys):
    out = tmp_path / "run"
    assert _run(capsys, "--space", TOY, *TINY, "--epochs", "1", "--out", str(out))[0] == 0
    code, result = _run(capsys, "--out", str(out), "--resume", "--lr", "0.5")
    assert code == 2 and "--lr 0.5 vs stored 0.01" in result["error"]
    code, result = _run(capsys, "--out", str(out), "--resume", "--epochs", "2", "--space", TOY)
    assert code == 0 and result["epochs"] == 2
    assert json.loads((out / "config.json").read_text())["config"]["resumed"] is True


def test_resume_without_checkpoint_says_so(tmp_path, capsys):
    code, result = _run(capsys, "--out", str(tmp_path / "empty"), "--resume")
    assert code == 2 and "no checkpoint at" in result["error"]


def test_space_is_required_for_a_new_run(tmp_path, capsys):
    code, result = _run(capsys, "--out", str(tmp_path / "x"))
    assert code == 2 and "--space is required" in result["error"]


def test_qat_uses_the_quant_package_or_says_it_is_missing(tmp_path, capsys):
    try:
        import qanas.quant.qat  # noqa: F401
    except ImportError:
        code, result = _run(capsys, "--space", TOY, *TINY, "--epochs", "1", "--qat",
                            "--out", str(tmp_path / "q"))
        assert code == 2
        assert "QAT supernet training needs qanas.quant.qat (not available)" in result["error"]
        return
    code, result = _run(capsys, "--space", TOY, *TINY, "--epochs", "1", "--qat",
                        "--out", str(tmp_path / "q"))
    assert code == 0, result
    assert load_checkpoint(tmp_path / "q" / "supernet.pt")["qat"] is True
    from qanas.train import load_supernet

    supernet, meta = load_supernet(tmp_path / "q" / "supernet.pt")
    assert meta["qat"] is True
    resumed = _run(capsys, "--out", str(tmp_path / "q"), "--resume", "--epochs", "2")
    assert resumed[0] == 0 and resumed[1]["epochs"] == 2


REAL_SPACES = [s for s in ("squeezenas-small", "mbv2-deeplab", "fmas-mbv2")
               if s in list_spaces()]


@pytest.mark.slow
@pytest.mark.parametrize("space", REAL_SPACES)
def test_smoke_training_on_a_real_space(tmp_path, capsys, space):
    from qanas.train import load_supernet

    out = tmp_path / space
    code, result = _run(capsys, "--space", space, "--data", "synthetic", "--image-size", "32",
                        "64", "--batch-size", "2", "--steps-per-epoch", "1", "--train-length",
                        "4", "--val-length", "2", "--val-batches", "1", "--calib-batches", "1",
                        "--epochs", "1", "--out", str(out))
    assert code == 0, result
    supernet, meta = load_supernet(out / "supernet.pt")
    assert meta["space"] == space and supernet.num_classes == 6


@pytest.mark.slow
def test_init_from_loads_the_encoder_and_resume_does_not_reload_it(tmp_path, capsys):
    import torch

    from qanas.space import get_space
    from qanas.train import SupernetTrainer, TrainConfig

    # A MobileNetV2 state dict in torchvision layout: the encoder keys of a fresh supernet.
    torch.manual_seed(123)
    donor = build_supernet(get_space("mbv2-deeplab"), 6).state_dict()
    state = {k: v for k, v in donor.items() if k.startswith("features.")}
    path = tmp_path / "mbv2.pt"
    torch.save(state, path)
    config = TrainConfig(space="mbv2-deeplab", image_size=(32, 64), epochs=1, batch_size=2,
                         train_length=2, val_length=2, val_batches=1, calib_batches=1,
                         init_from=str(path))
    trainer = SupernetTrainer(config, tmp_path / "run")
    assert trainer.init_report["loaded"] == len(state) and trainer.init_report["missing"] == 0
    own = trainer.model.state_dict()
    assert all(torch.equal(own[k], v) for k, v in state.items())
    trainer.fit()
    path.unlink()  # resuming must not need the init file again
    resumed = SupernetTrainer.from_checkpoint(tmp_path / "run" / "supernet.pt")
    assert resumed.init_report is None and resumed.epoch == 1


def test_checkpoint_every_reaches_the_trainer(tmp_path, capsys, monkeypatch):
    from qanas.train import SupernetTrainer

    saved = []
    real_save = SupernetTrainer.save

    def save(self, path):
        saved.append((self.step, self._progress["batches"]))
        return real_save(self, path)

    monkeypatch.setattr(SupernetTrainer, "save", save)
    out = tmp_path / "run"
    assert _run(capsys, "--space", TOY, *TINY, "--epochs", "1", "--checkpoint-every", "1",
                "--out", str(out))[0] == 0
    assert saved == [(1, 1), (2, 0)]  # mid-epoch after step 1, then the epoch's end
    saved.clear()
    assert _run(capsys, "--out", str(out), "--resume", "--epochs", "2",
                "--checkpoint-every", "0")[0] == 0
    assert saved == [(4, 0)]  # 0: only at the epoch's end
    assert sorted(p.name for p in out.iterdir()) == [".qanas.lock", "config.json",
                                                     "result.json", "supernet.pt"]
