"""Per-block latency table: contexts, JSON round trip, prediction and validation math (fake runner)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from torch import nn

from qanas.errors import ConfigError
from qanas.search.hw import HardwareCostModel, LatencyModel
from qanas.search.lut import (
    LUT_FORMAT,
    LatencyLUT,
    LUTLatencyModel,
    Measurement,
    block_contexts,
    build_lut,
    held_out_subnets,
    validate_lut,
    validation_stats,
)
from qanas.space import get_space
from targets import get_target

SPACE = "squeezenas-small"
SIZE = (32, 64)
OPTIONS = ["k3e1g1", "k5e6g1", "skip"]
PER_MODEL = 500.0  # the fake runner's constant per compiled model (timer, call overhead)


class FakeMeasurer:
    """Latency = 2 instructions per conv weight x output pixel (MACs) + a per-model constant."""

    unit = "instructions"

    def __init__(self):
        self.calls = []

    def measure(self, model: nn.Module, input_shape, name: str) -> Measurement:
        import torch

        self.calls.append(name)
        macs = 0

        def hook(mod, inputs, output):
            nonlocal macs
            macs += mod.weight.numel() * output.shape[-1] * output.shape[-2]

        handles = [m.register_forward_hook(hook) for m in model.modules()
                   if isinstance(m, nn.Conv2d)]
        with torch.no_grad():
            model.eval()(torch.zeros(input_shape))
        for h in handles:
            h.remove()
        return Measurement(2.0 * macs + PER_MODEL, self.unit)

    def protocol(self) -> dict:
        return {"target": "fake", "runner": "fake", "unit": self.unit}


def test_block_contexts_follow_the_macro_architecture():
    space = get_space(SPACE)
    ctx = block_contexts(space, SIZE)
    assert len(ctx) == len(space.plans) == 20
    assert (ctx[0].in_channels, ctx[0].in_hw, ctx[0].stride) == (16, (16, 32), 2)
    assert ctx[1].in_hw == (8, 16) and ctx[1].identity_skip and not ctx[0].identity_skip
    assert ctx[1].signature("k3e6g1") == ctx[2].signature("k3e6g1")  # shared entry
    with pytest.raises(ConfigError, match="SqueezeNAS"):
        block_contexts(get_space("mbv2-deeplab"), SIZE)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    space = get_space(SPACE)
    path = tmp_path_factory.mktemp("lut") / "lut.json"
    fake = FakeMeasurer()
    lut = build_lut(space, SIZE, fake, num_classes=4, options=OPTIONS, path=path)
    return space, lut, path, fake


def test_build_measures_each_signature_once_and_round_trips(built):
    space, lut, path, fake = built
    ctx = block_contexts(space, SIZE)
    labels = list(dict.fromkeys(OPTIONS + ["k3e6g1"]))  # the seed reference's label is added
    expected = {c.signature(lab) for c in ctx for lab in labels
                if not (lab == "skip" and c.identity_skip)}
    assert set(lut.entries) == expected
    assert len(fake.calls) == len(expected) + 1  # + the reference subnet, once
    data = json.loads(path.read_text())
    assert data["format"] == LUT_FORMAT and data["protocol"]["target"] == "fake"
    assert data["protocol"]["image_size"] == list(SIZE) and data["unit"] == "instructions"
    again = LatencyLUT.load(path)
    assert again.to_dict() == lut.to_dict()
    with pytest.raises(ConfigError, match="format"):
        LatencyLUT.from_dict({**data, "format": "other/1"})
    with pytest.raises(ConfigError, match="unknown LUT keys"):
        LatencyLUT.from_dict({**data, "extra": 1})


def test_prediction_is_fixed_plus_blocks_and_exact_on_an_additive_runner(built):
    space, lut, _, fake = built
    model = LUTLatencyModel(lut, space)
    assert isinstance(model, LatencyModel)
    reference = space.seed_config()
    # the fixed part makes the reference exact by construction
    assert model.predict(reference).value == pytest.approx(lut.fixed_info["measured"])
    # the fake runner is additive in blocks: other subnets are exact up to the per-model
    # constant times (identity skips in the reference - identity skips in the subnet)
    subnets = held_out_subnets(space, lut, 4, seed=3)
    assert reference.to_str() not in {c.to_str() for c in subnets}
    assert all(set(c.labels()) <= set(OPTIONS) | {"k3e6g1"} for c in subnets)
    report = validate_lut(lut, space, fake, subnets)
    ctx = block_contexts(space, SIZE)
    for cfg, row in zip(subnets, report.rows, strict=True):
        identity = sum(lab == "skip" and c.identity_skip for c, lab in zip(ctx, cfg.labels(), strict=True))
        assert row["predicted"] - row["measured"] == pytest.approx(-identity * PER_MODEL)
    assert report.within_10 == 1.0 and report.kendall_tau == pytest.approx(1.0)
    # the LUT model plugs into the hardware cost model
    hw = HardwareCostModel(space, get_target("cortex-m4"), SIZE, 4, latency_model=model)
    assert hw.profile(subnets[0]).latency.source == "lut:fake"
    assert model.predict(space.resolve("max")).unit == "instructions"  # k5e6g1: measured
    with pytest.raises(ConfigError, match="no entry"):
        model.predict(space.resolve("_".join(["k5e1g1"] * 20)))


def test_validation_stats_by_hand():
    r = validation_stats(["a", "b", "c", "d"], [110.0, 95.0, 300.0, 50.0],
                         [100.0, 100.0, 250.0, 40.0], "instructions")
    # errors: +10 %, -5 %, +20 %, +25 %
    assert r.mape == pytest.approx((10 + 5 + 20 + 25) / 4)
    assert r.within_10 == pytest.approx(0.5)  # exactly 10 % counts as within
    assert r.max_ape == pytest.approx(25.0)
    # predicted order b<a (95<110) vs measured tie a=b: tau-b from scipy
    from scipy import stats

    assert r.kendall_tau == pytest.approx(stats.kendalltau([110, 95, 300, 50],
                                                           [100, 100, 250, 40]).statistic)
    assert [row["error_pct"] for row in r.rows] == pytest.approx([10, -5, 20, 25])
    with pytest.raises(ConfigError, match="<= 0"):
        validation_stats(["a"], [1.0], [0.0])
    with pytest.raises(ConfigError, match="as many"):
        validation_stats(["a"], [1.0, 2.0], [1.0, 2.0])


def test_resume_keeps_entries(built, tmp_path):
    space, lut, _, _ = built
    partial = LatencyLUT.from_dict(lut.to_dict())
    dropped = sorted(partial.entries)[:3]
    for key in dropped:
        del partial.entries[key]
    fake = FakeMeasurer()
    done = build_lut(space, SIZE, fake, 4, OPTIONS, resume=partial)
    assert len(fake.calls) == 3 and set(fake.calls) == set(dropped)  # the fixed part is kept
    assert np.isclose(done.fixed, lut.fixed)
