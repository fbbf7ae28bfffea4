"""The typed job configs round-trip through their dict form and refuse what they cannot run."""

from __future__ import annotations

import pytest

from qanas.bench import BenchConfig
from qanas.demo import DemoConfig
from qanas.errors import ConfigError
from qanas.rankcorr import RankCorrConfig
from qanas.train import EvalConfig
from qanas.train.export import ExportConfig


@pytest.mark.parametrize("config", [
    EvalConfig(supernet="runs/sq/supernet.pt", subnet="min", quant="fp32", seed=3),
    EvalConfig(checkpoint="runs/t/standalone.pt", val_fraction=0.5),
    BenchConfig(model="out/proj", target="cortex-m4", runner="host", repeats=5, per_layer=True),
    ExportConfig(checkpoint="runs/t/standalone.pt", format="tflite", image_size=(32, 64),
                 out="m.tflite"),
    RankCorrConfig(supernet="a.pt", compare=("b.pt",), top_k=(1, 2), image_size=(16, 32),
                   standalone_seeds=(0, 1), out="runs/rc"),
    DemoConfig(image_size=(32, 64), firmware_targets=("cortex-m4",), npu_target=None),
])
def test_configs_round_trip_and_reject_unknown_keys(config):
    assert type(config).from_dict(config.to_dict()) == config
    with pytest.raises(ConfigError, match="unknown .* keys \\['colour'\\]"):
        type(config).from_dict({**config.to_dict(), "colour": "red"})


@pytest.mark.parametrize("changes, message", [
    ({}, "exactly one of them"),
    ({"supernet": "a.pt", "checkpoint": "b.pt"}, "exactly one of them"),
    ({"supernet": "a.pt", "quant": "int4"}, "quant must be 'int8' or 'fp32'"),
    ({"supernet": "a.pt", "quant": "fp32", "export_onnx": "m.onnx"}, "use it with --quant int8"),
    ({"checkpoint": "b.pt", "subnet": "max"}, "drop --subnet"),
])
def test_eval_config_names_the_fix(changes, message):
    with pytest.raises(ConfigError, match=message):
        EvalConfig(**changes)
