"""`qanas data-preview` writes a PNG grid and reports class pixel shares."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from qanas.cli.main import main
from qanas.data import build_dataset


def test_data_preview_writes_grid_and_shares(tmp_path, capsys):
    out = tmp_path / "preview"
    code = main(["data-preview", "--data", "synthetic", "--image-size", "16", "32",
                 "--n", "3", "--out", str(out), "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["num_classes"] == 6 and result["n"] == 3
    png = Image.open(result["path"])
    assert png.width == 3 * (32 + 4)  # three tiles of width 32 with a 4-pixel gap
    assert png.height > 2 * (16 + 4) // 2 + 16  # image over mask, plus a legend
    assert (out / "config.json").is_file()
    # The shares are the pixel counts of the samples shown, computed independently here.
    ds = build_dataset("synthetic", "val", image_size=(16, 32))
    counts = sum(np.bincount(ds[i][1].numpy().ravel(), minlength=6) for i in range(3))
    expected = counts / counts.sum()
    got = np.array([result["class_pixel_share"][name] for name in ds.class_names])
    np.testing.assert_allclose(got, expected)
    assert result["ignore_share"] == 0.0


def test_data_preview_refuses_to_overwrite_without_force(tmp_path, capsys):
    args = ["data-preview", "--image-size", "8", "16", "--n", "1", "--out", str(tmp_path)]
    assert main(args) == 0
    assert main(args + ["--json"]) == 2
    assert "--force" in json.loads(capsys.readouterr().out.splitlines()[-1])["error"]
    assert main(args + ["--force"]) == 0


@pytest.mark.parametrize("extra, message", [
    (["--data", "nope"], "known datasets"),
    (["--data", "voc"], "needs a root folder"),
    (["--n", "0"], "--n must be a positive"),
])
def test_data_preview_user_errors_exit_2(tmp_path, capsys, extra, message):
    code = main(["data-preview", "--out", str(tmp_path / "x"), "--json", *extra])
    assert code == 2
    assert message in json.loads(capsys.readouterr().out)["error"]
