"""Command-line values out of range, and `--out` naming a file: one-line exit-2 errors.

Every case fails before any training or scoring starts and leaves the user's file alone.
"""

from __future__ import annotations

import json

import pytest

from qanas.cli.main import main
from qanas.space import get_space
from qanas.supernet import build_supernet

SEED_ARCH = get_space("squeezenas-small").seed_config().to_str()


def _error(capsys, *argv) -> str:
    code = main([*argv, "--json"])
    captured = capsys.readouterr()
    assert code == 2, captured
    assert "Traceback" not in captured.err
    error = json.loads(captured.out.strip().splitlines()[-1])["error"]
    assert "\n" not in error
    return error


@pytest.fixture
def user_file(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("the user's file")
    yield path
    assert path.read_text() == "the user's file"


@pytest.mark.parametrize("command", [
    ["train-supernet", "--space", "squeezenas-small"],
    ["train", "--arch", SEED_ARCH],
    ["rankcorr", "--supernet", "unused.pt"],
    ["demo"],
    ["search", "--supernet", "unused.pt", "--target", "host", "--budget", "2"],
])
@pytest.mark.parametrize("under", [False, True])
def test_out_naming_an_existing_file_is_refused(capsys, user_file, command, under):
    out = user_file / "run" if under else user_file
    error = _error(capsys, *command, "--out", str(out))
    assert f"--out {out}" in error and "an existing file, not a folder" in error


@pytest.mark.parametrize("command", [
    ["train-supernet", "--space", "squeezenas-small"],
    ["train", "--arch", SEED_ARCH],
    ["demo"],
])
def test_image_size_below_the_total_stride_is_refused(tmp_path, capsys, command):
    error = _error(capsys, *command, "--image-size", "1", "1", "--out", str(tmp_path / "r"))
    assert "--image-size 1 1 is smaller than the total stride 16x16 of squeezenas-small" in error
    assert "pass at least --image-size 16 16" in error
    assert not (tmp_path / "r").exists()


def test_eval_refuses_a_checkpoint_trained_below_the_total_stride(tmp_path, capsys):
    from qanas.train import TrainConfig, save_checkpoint

    space = get_space("squeezenas-small")
    path = tmp_path / "supernet.pt"
    save_checkpoint(path, {"space": space.name, "num_classes": 6, "image_size": [4, 4],
                           "dataset": {"name": "synthetic", "root": None},
                           "model": build_supernet(space, 6).state_dict(), "epoch": 1,
                           "config": TrainConfig(space=space.name, image_size=(4, 4)).to_dict(),
                           "history": []})
    error = _error(capsys, "eval", "--supernet", str(path))
    assert "the checkpoint's image size 4 4 is smaller than the total stride" in error


def test_checkpoint_every_must_not_be_negative(tmp_path, capsys):
    error = _error(capsys, "train-supernet", "--space", "squeezenas-small",
                   "--checkpoint-every", "-1", "--out", str(tmp_path / "r"))
    assert "--checkpoint-every must be >= 0" in error


def test_total_stride_of_the_registered_spaces():
    from qanas.space import list_spaces
    from qanas.space.geometry import total_stride

    # the spaces qanas ships (tests register toy spaces in the same process)
    shipped = [n for n in list_spaces() if type(get_space(n)).__module__.startswith("qanas.")]
    assert "squeezenas-small" in shipped
    for name in shipped:
        space = get_space(name)
        stride = total_stride(space)
        # the analytic shapes agree: at exactly the stride the deepest maps are one pixel
        specs = space.layer_specs(space.seed_config(), stride)
        assert min(min(s.out_hw) for s in specs if tuple(s.in_hw) != (1, 1)
                   and s.op not in ("global_pool", "linear")) == 1, name
    assert total_stride(get_space("squeezenas-small")) == (16, 16)
