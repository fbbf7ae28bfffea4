"""Per-block latency table: contexts, JSON round trip, prediction and validation math (fake runner)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from qanas.cost.hardware import HardwareCostModel, LatencyModel
from qanas.cost.lut.measure import (
    context_inputs,
    per_model_overhead,
    quantize_sample,
    random_model_inputs,
)
from qanas.cost.lut.table import (
    LUT_FORMAT,
    LatencyLUT,
    LUTLatencyModel,
    block_contexts,
    build_lut,
    required_entries,
)
from qanas.cost.lut.validation import held_out_subnets, validate_lut, validation_stats
from qanas.errors import ConfigError
from qanas.space import get_space
from runtime.runners.base import TensorSpec
from targets import get_target
from tests.support.fakes import PER_MODEL, FakeMeasurer

SPACE = "squeezenas-small"
SIZE = (32, 64)
OPTIONS = ["k3e1g1", "k5e6g1", "skip"]
REFERENCE_LABELS = ["k3e6g1", "k5e6g1", "k3e1g2"]  # of seed, max and min


def test_block_contexts_follow_the_macro_architecture():
    space = get_space(SPACE)
    ctx = block_contexts(space, SIZE)
    assert len(ctx) == len(space.plans) == 20
    assert (ctx[0].in_channels, ctx[0].in_hw, ctx[0].stride) == (16, (16, 32), 2)
    assert ctx[1].in_hw == (8, 16) and ctx[1].identity_skip and not ctx[0].identity_skip
    assert ctx[1].signature("k3e6g1") == ctx[2].signature("k3e6g1")  # shared entry
    # 10 distinct shapes; 5 of them have an identity skip (no entry): 10 * 13 - 5
    assert len(required_entries(space, SIZE)) == 125
    with pytest.raises(ConfigError, match="SqueezeNAS"):
        block_contexts(get_space("mbv2-deeplab"), SIZE)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    space = get_space(SPACE)
    path = tmp_path_factory.mktemp("lut") / "lut.json"
    fake = FakeMeasurer()
    lut = build_lut(space, SIZE, fake, num_classes=4, options=OPTIONS, path=path,
                    command="qanas lut build ...")
    return space, lut, path, fake


def test_build_measures_each_signature_once_and_round_trips(built):
    space, lut, path, fake = built
    labels = list(dict.fromkeys(OPTIONS + REFERENCE_LABELS))  # the references' labels are added
    expected = set(required_entries(space, SIZE, labels))
    assert set(lut.entries) == expected and lut.missing(space, labels) == []
    assert lut.missing(space)  # not all 13 options
    # + two overhead models + the three references, once each
    assert len(fake.calls) == len(expected) + 2 + 3
    data = json.loads(path.read_text())
    assert data["format"] == LUT_FORMAT and data["protocol"]["target"] == "fake"
    assert data["protocol"]["image_size"] == list(SIZE) and data["unit"] == "instructions"
    assert data["protocol"]["command"] == "qanas lut build ..." and data["protocol"]["built"]
    assert data["protocol"]["options"] == [o for o in space.decisions[0].options if o in labels]
    again = LatencyLUT.load(path)
    assert again.to_dict() == lut.to_dict()
    with pytest.raises(ConfigError, match="format"):
        LatencyLUT.from_dict({**data, "format": "qanas-latency-lut/1"})
    with pytest.raises(ConfigError, match="unknown LUT keys"):
        LatencyLUT.from_dict({**data, "extra": 1})


def test_overhead_is_the_per_model_constant(built):
    _, lut, _, _ = built
    assert lut.overhead == pytest.approx(PER_MODEL)
    assert per_model_overhead(FakeMeasurer())["value"] == pytest.approx(PER_MODEL)


def test_prediction_is_exact_on_an_additive_runner(built):
    space, lut, _, fake = built
    model = LUTLatencyModel(lut, space)
    assert isinstance(model, LatencyModel)
    # every reference is exact and so the residual spread is zero
    assert lut.fixed_info["spread_pct"] == pytest.approx(0.0, abs=1e-9)
    for row in lut.fixed_info["references"]:
        assert model.predict(space.resolve(row["reference"])).value == pytest.approx(
            row["measured"])
    subnets = held_out_subnets(space, lut, 6, seed=3)
    refs = {r["reference"] for r in lut.fixed_info["references"]}
    assert not refs & {c.to_str() for c in subnets}
    assert all(set(c.labels()) <= set(OPTIONS) | set(REFERENCE_LABELS) for c in subnets)
    # identity skips included: the per-model overhead is not counted for them
    ctx = block_contexts(space, SIZE)
    assert any(lab == "skip" and c.identity_skip for cfg in subnets
               for c, lab in zip(ctx, cfg.labels(), strict=True))
    report = validate_lut(lut, space, fake, subnets)
    for row in report.rows:
        assert row["predicted"] == pytest.approx(row["measured"], rel=1e-12)
    assert report.within_10 == 1.0 and report.kendall_tau == pytest.approx(1.0)
    # the LUT model plugs into the hardware cost model
    hw = HardwareCostModel(space, get_target("cortex-m4"), SIZE, 4, latency_model=model)
    assert hw.profile(subnets[0]).latency.source == "lut:fake"
    with pytest.raises(ConfigError, match="no entry"):
        model.predict(space.resolve("_".join(["k5e1g1"] * 20)))


def test_blocks_are_measured_on_their_context(built):
    space, lut, _, fake = built
    from qanas.cost.lut.table import seeded_supernet

    net = seeded_supernet(space, 4, 0)
    image, per_block = context_inputs(net, space.seed_config(), SIZE, seed=0)
    # the network's images are the seeded ones, and block 0 sees the stem's output on them
    assert torch.equal(image.sample, random_model_inputs((1, 3, *SIZE), 0).sample)
    with torch.no_grad():
        stem = net.net.stem(image.sample)
    assert torch.allclose(per_block[0].sample, stem)
    key = block_contexts(space, SIZE)[0].signature("k3e1g1")
    assert torch.equal(fake.inputs[key].sample, per_block[0].sample)
    assert len(fake.inputs[key].calibration) == len(image.calibration) == 2
    # a later block's context is not random noise: it is the reference network's activation
    ctx5 = block_contexts(space, SIZE)[5]
    assert torch.equal(fake.inputs[ctx5.signature("k3e1g1")].sample, per_block[5].sample)
    assert per_block[5].shape == (1, ctx5.in_channels, *ctx5.in_hw)


def test_quantize_sample_uses_the_compiled_scale():
    spec = TensorSpec("x", (1, 4), "int8", 4, 0.5, 1)
    q = quantize_sample(torch.tensor([[0.0, 1.0, -100.0, 100.0]]), spec)
    assert q.dtype == np.int8 and q.tolist() == [[1, 3, -128, 127]]
    with pytest.raises(ConfigError, match="without a scale"):
        quantize_sample(torch.zeros(1, 4), TensorSpec("x", (1, 4), "int8", 4, None, None))


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


def test_resume_keeps_measurements_and_widens_options(built):
    space, lut, _, _ = built
    partial = LatencyLUT.from_dict(lut.to_dict())
    dropped = sorted(partial.entries)[:3]
    for key in dropped:
        del partial.entries[key]
    fake = FakeMeasurer()
    done = build_lut(space, SIZE, fake, 4, OPTIONS, resume=partial)
    assert sorted(fake.calls) == dropped  # overhead and references are kept
    assert np.isclose(done.fixed, lut.fixed)
    wider = build_lut(space, SIZE, fake, 4, ["k5e1g1"], resume=done)
    assert "k5e1g1" in wider.protocol["options"] and "k3e1g1" in wider.protocol["options"]
    assert set(held_out_subnets(space, wider, 1, seed=0)[0].labels()) <= set(
        wider.protocol["options"])


@pytest.mark.parametrize("change", [{"image_size": (32, 32)}, {"num_classes": 6},
                                    {"seed": 1}])
def test_resume_refuses_another_protocol(built, change):
    space, lut, _, _ = built
    kw = {"image_size": SIZE, "num_classes": 4, "seed": 0, **change}
    with pytest.raises(ConfigError, match="cannot resume"):
        build_lut(space, kw["image_size"], FakeMeasurer(), kw["num_classes"], OPTIONS,
                  resume=LatencyLUT.from_dict(lut.to_dict()), seed=kw["seed"])


def test_model_refuses_an_unfinished_table(built):
    space, lut, _, _ = built
    partial = LatencyLUT.from_dict({**lut.to_dict(), "fixed": None})
    with pytest.raises(ConfigError, match="fixed part"):
        LUTLatencyModel(partial, space)
    with pytest.raises(ConfigError, match="positive"):
        held_out_subnets(space, lut, 0, seed=0)
    assert random_model_inputs((1, 2), 0).sample.shape == (1, 2)


def test_resuming_a_finished_table_changes_nothing(built):
    space, lut, _, _ = built
    fake = FakeMeasurer()
    again = build_lut(space, SIZE, fake, 4, OPTIONS, resume=LatencyLUT.from_dict(lut.to_dict()),
                      command="qanas lut build ...")
    assert fake.calls == [] and again.to_dict() == lut.to_dict()


class StopAfterOneReference(FakeMeasurer):
    """Fails on the second end-to-end measurement, like a build killed mid-way."""

    def measure(self, model, inputs, name):
        if name.startswith("subnet-") and any(c.startswith("subnet-") for c in self.calls):
            raise RuntimeError("killed")
        return super().measure(model, inputs, name)


def test_an_interrupted_build_keeps_its_references_and_is_not_usable(tmp_path):
    space, path = get_space(SPACE), tmp_path / "lut.json"
    with pytest.raises(RuntimeError, match="killed"):
        build_lut(space, SIZE, StopAfterOneReference(), 4, ["k3e1g1"], path=path)
    partial = LatencyLUT.load(path)
    assert partial.fixed is None and len(partial.fixed_info["references"]) == 1
    assert "built" not in partial.protocol
    with pytest.raises(ConfigError, match="fixed part"):
        LUTLatencyModel(partial, space)
    fake = FakeMeasurer()
    done = build_lut(space, SIZE, fake, 4, ["k3e1g1"], path=path, resume=partial)
    assert sum(c.startswith("subnet-") for c in fake.calls) == 2  # the two left
    assert done.fixed is not None and done.protocol["built"]


def test_boundary_transposes_are_the_profiled_transposes_at_the_model_edges():
    from types import SimpleNamespace as NS

    from qanas.cost.lut.measure import boundary_transposes

    buffers = {"x": NS(kind="input"), "t0": NS(kind="intermediate"),
               "t1": NS(kind="intermediate"), "t2": NS(kind="intermediate"),
               "y": NS(kind="output")}
    calls = [NS(kernel="transpose", inputs=("x",), outputs=("t0",)),
             NS(kernel="qanas_inverted_residual_s8", inputs=("t0",), outputs=("t1",)),
             NS(kernel="transpose1", inputs=("t1",), outputs=("t2",)),  # inside: kept
             NS(kernel="transpose2", inputs=("t2",), outputs=("y",))]
    layers = [{"kernel": "transpose", "value": 700}, {"kernel": "qanas_inverted_residual_s8",
                                                       "value": 90_000},
              {"kernel": "transpose1", "value": 500}, {"kernel": "transpose2", "value": 300}]
    plan = NS(buffers=buffers, calls=calls)
    assert boundary_transposes(plan, layers) == 1000
    assert boundary_transposes(plan, None) == 0
