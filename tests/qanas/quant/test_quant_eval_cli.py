"""`qanas eval` on a tiny checkpoint written with the trainer's checkpoint format."""

from __future__ import annotations

import json

import pytest
import torch

from qanas.cli.main import main
from qanas.supernet import build_supernet


@pytest.mark.slow
def test_eval_cli_json(tmp_path, capsys):
    from qanas.space import get_space
    from qanas.train.checkpoint import save_checkpoint

    space = get_space("squeezenas-small")
    torch.manual_seed(0)
    supernet = build_supernet(space, 6)
    path = save_checkpoint(tmp_path / "supernet.pt", {
        "space": space.name, "num_classes": 6, "image_size": [32, 64],
        "dataset": {"name": "synthetic", "root": None}, "model": supernet.state_dict(),
        "epoch": 0, "step": 0, "config": {}, "history": [], "qat": False, "quant_spec": None,
    })
    onnx_path = tmp_path / "min.onnx"
    code = main(["eval", "--supernet", str(path), "--subnet", "min", "--quant", "int8",
                 "--val-fraction", "0.05", "--bn-batches", "1", "--calib-batches", "1",
                 "--batch-size", "4", "--export-onnx", str(onnx_path), "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["arch"] == space.min_config().to_str()
    assert {"miou", "miou_fp32", "macs", "params", "seconds", "per_class_iou"} <= set(result)
    assert result["macs"] > 0 and onnx_path.exists()
