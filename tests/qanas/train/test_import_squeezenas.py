"""`qanas import-weights squeezenas`: released weights → standalone checkpoint, same outputs.

The released state dicts are made here, with their key layout, by an independent model
of the authors' networks (`tests.support.squeezenas_reference`); nothing is downloaded.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from qanas.cli.main import main
from qanas.errors import CheckpointError, ConfigError
from qanas.space import get_space
from qanas.space.squeezenas_published import PUBLISHED
from qanas.supernet.count import count_macs_params
from qanas.train.import_squeezenas import CITYSCAPES_SIZE, import_squeezenas
from qanas.train.standalone_model import load_standalone_model
from targets.cost import total_macs, total_params
from tests.support.squeezenas_reference import ReleasedSqueezeNAS, randomize

# The LR-ASPP gate pools 49x49 windows at stride (16, 20) of the output-stride-16 map:
# 784 rows give one window, 1104 columns two.
LRASPP_SIZE = (784, 1104)
XLARGE_SIZE = (64, 128)


def _reference(name: str, seed: int = 0) -> ReleasedSqueezeNAS:
    net = PUBLISHED[name]
    size = net.space.removeprefix("squeezenas-")
    return randomize(ReleasedSqueezeNAS(size, net.genotype), seed)


def _input(size, seed=1):
    return torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(seed))


def _check_same_outputs(name, size, tmp_path):
    reference = _reference(name)
    weights = tmp_path / f"{name}.pth"
    torch.save(reference.state_dict(), weights)
    result = import_squeezenas(weights, name, tmp_path / "out")
    assert result["arch"] == PUBLISHED[name].config().to_str()
    loaded = load_standalone_model(result["checkpoint"], int8=False)
    x = _input(size)
    with torch.no_grad():
        expected, got = reference(x), loaded.float_model(x)
    assert got.shape == expected.shape == (1, 19, *size)
    # Float tolerance: the two models sum the same products in other orders; random
    # weights through ~20 blocks give logits of order 10, so the bound is relative.
    scale = float(expected.abs().max())
    torch.testing.assert_close(got, expected, atol=1e-4 * scale, rtol=1e-3)
    # the released-code space's analytic costs are those of the model it builds
    specs = loaded.space.layer_specs(PUBLISHED[name].config(), size, 19)
    assert count_macs_params(loaded.float_model, (1, 3, *size)) == (total_macs(specs),
                                                                    total_params(specs))
    return result


@pytest.mark.parametrize("name", ["lat_xlarge", pytest.param("mac_xlarge", marks=pytest.mark.slow)])
def test_xlarge_outputs_equal_the_released_model(name, tmp_path):
    result = _check_same_outputs(name, XLARGE_SIZE, tmp_path)
    cfg = PUBLISHED[name].config()
    assert result["macs"] == get_space(cfg.space).costs(cfg, CITYSCAPES_SIZE, 19)["macs"]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["lat_small", "mac_small", "lat_large", "mac_large"])
def test_lraspp_outputs_equal_the_released_model(name, tmp_path):
    """At the smallest input where the released 49x49 gate pool runs (two windows)."""
    result = _check_same_outputs(name, LRASPP_SIZE, tmp_path)
    assert result["space_options"]["lraspp_pool"] == (49, 16, 20)
    assert abs(result["macs"] / 1e9 / PUBLISHED[name].published_gmacs - 1) < 0.02


def test_weights_of_another_network_are_refused(tmp_path):
    weights = tmp_path / "mac_xlarge.pth"
    torch.save(_reference("mac_xlarge").state_dict(), weights)
    with pytest.raises(CheckpointError, match="check --arch"):
        import_squeezenas(weights, "lat_xlarge", tmp_path / "out")
    with pytest.raises(CheckpointError, match="not a released squeezenas-small"):
        import_squeezenas(weights, "lat_small", tmp_path / "out")
    state = _reference("mac_xlarge").state_dict()
    state["decoder.extra.weight"] = torch.zeros(1)
    torch.save(state, weights)
    with pytest.raises(CheckpointError, match="no place in mac_xlarge"):
        import_squeezenas(weights, "mac_xlarge", tmp_path / "out")


def test_cli_import_then_float_onnx_export(tmp_path, capsys):
    """import-weights → `qanas export --format onnx`: onnxruntime gives the released outputs."""
    import onnxruntime as ort

    reference = _reference("lat_xlarge", seed=3)
    weights = tmp_path / "lat_xlarge.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in reference.state_dict().items()}},
               weights)
    out = tmp_path / "imported"
    assert main(["import-weights", "squeezenas", str(weights), "--arch", "lat_xlarge",
                 "--out", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    onnx_path = tmp_path / "lat_xlarge.onnx"
    assert main(["export", result["checkpoint"], "--format", "onnx", "--image-size",
                 *map(str, XLARGE_SIZE), "--out", str(onnx_path), "--json"]) == 0
    x = _input(XLARGE_SIZE, seed=4)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    with torch.no_grad():
        expected = reference(x).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-4 * np.abs(expected).max(), rtol=1e-3)


def test_released_lraspp_refuses_small_inputs():
    space = get_space("squeezenas-small").as_released()
    with pytest.raises(ConfigError, match="at least 784x784"):
        space.costs(PUBLISHED["lat_small"].config(), (64, 128), 19)
    assert get_space("squeezenas-small").costs(PUBLISHED["lat_small"].config(), (64, 128), 19)
