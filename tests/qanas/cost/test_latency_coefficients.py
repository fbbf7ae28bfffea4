"""The analytic latency coefficients: the committed fit, its loader and the fitting itself.

The committed ``targets/latency_coefficients.json`` is measured on the compiler's kernels,
so like the latency tables (`tests/qanas/cost/test_kernel_generation.py`) it must be of the current
`compiler.version.KERNEL_GENERATION`; each of its fits (one per ``--optimise`` mode, and the
int4 ratios) is rebuilt with the command in its protocol.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from compiler.version import KERNEL_GENERATION
from qanas.cost.latency_fit import (
    FUSED_BLOCK,
    PATCH_STAGE,
    fit_target,
    step_rows,
    transfer_quality,
)
from qanas.space import get_space
from targets.latency import (
    COEFFICIENTS_PATH,
    FIT_MODES,
    HAND_PICKED,
    LAYER_CLASSES,
    LatencyCoefficients,
    analytic_cycles,
    coefficients_for,
    int4_rates,
    layer_class,
    load_fitted,
)

SPACE, SIZE, CLASSES = "squeezenas-small", (64, 128), 6


@pytest.mark.parametrize("optimise", FIT_MODES)
def test_committed_fit_of_each_mode_is_of_the_current_kernel_generation(optimise):
    protocol = json.loads(COEFFICIENTS_PATH.read_text())["protocol"][optimise]
    assert protocol["kernel_generation"] == KERNEL_GENERATION, (
        f"the --optimise {optimise} fit of targets/latency_coefficients.json is of kernel "
        f"generation {protocol['kernel_generation']}, the compiler's is {KERNEL_GENERATION}: "
        f"refit with {protocol['command']}")
    assert protocol["command"].endswith(f"--optimise {optimise}")


@pytest.mark.parametrize("optimise", FIT_MODES)
def test_loader_uses_the_committed_fit_of_the_mode_and_marks_the_rest_hand_picked(optimise):
    fitted = load_fitted(optimise=optimise)
    assert {"cortex-m4", "cortex-m7", "cortex-m55"} <= set(fitted)
    document = json.loads(COEFFICIENTS_PATH.read_text())["coefficients"][optimise]
    for name, fit in document.items():
        used = coefficients_for(name, optimise=optimise)
        assert dict(used.macs_per_cycle) == fit["macs_per_cycle"]
        assert used.bytes_per_cycle == fit["bytes_per_cycle"]
        assert used.cycles_per_layer == fit["cycles_per_layer"]
        assert used.optimise == optimise
        assert used.rationale.startswith(f"fitted to our kernels' QEMU instruction counts of "
                                         f"--optimise {optimise} builds"), used.rationale
    for name in set(HAND_PICKED) - set(document):
        hand_picked = coefficients_for(name, optimise=optimise)
        assert hand_picked.rationale.startswith("hand-picked"), name
        assert hand_picked.optimise is None


def test_each_mode_has_coefficients_of_its_own_and_an_unknown_mode_is_refused():
    size = coefficients_for("cortex-m55", optimise="size")
    speed = coefficients_for("cortex-m55", optimise="speed")
    assert dict(size.macs_per_cycle) != dict(speed.macs_per_cycle)
    assert coefficients_for("cortex-m55") == size  # the compiler's default mode
    with pytest.raises(ValueError, match="--optimise 'fast'.*size, speed"):
        coefficients_for("cortex-m55", optimise="fast")


def test_a_file_not_keyed_by_mode_is_refused(tmp_path):
    path = tmp_path / "coefficients.json"
    fit = json.loads(COEFFICIENTS_PATH.read_text())["coefficients"]["size"]
    path.write_text(json.dumps({"coefficients": fit}))  # the layout of one fit for every mode
    with pytest.raises(ValueError, match="keyed by --optimise mode.*refit"):
        load_fitted(path, "size")


def test_the_speed_fit_prices_speed_builds_better_than_the_size_fit_did():
    """The committed quality: each subnet's speed build held out, predicted by the speed fit
    of the others and by the size fit of the others' size builds (``other_mode_fit``)."""
    document = json.loads(COEFFICIENTS_PATH.read_text())["coefficients"]["speed"]
    for name, fit in document.items():
        quality = fit["quality"]
        assert quality["other_mode_fit"]["optimise"] == "size", name
        assert quality["heldout_mape"] < quality["other_mode_fit"]["heldout_mape"], name
        assert quality["heldout_kendall_tau"] >= quality["other_mode_fit"]["heldout_kendall_tau"]


def _linear_cost(layers, truth: LatencyCoefficients) -> float:
    """The linearised model (MAC layers MAC-bound) that the fit assumes."""
    total = 0.0
    for layer in layers:
        if layer.op == "act":
            continue
        cls = layer_class(layer)
        if cls is None:
            moved = layer.input_elements + layer.output_elements + layer.params
            total += moved / truth.bytes_per_cycle
        else:
            total += (layer.macs / truth.macs_per_cycle[cls]
                      + layer.output_elements * truth.cycles_per_output.get(cls, 0.0))
        total += truth.cycles_per_layer
    return total


def _synthetic_run(which: str, truth: LatencyCoefficients, first: str = PATCH_STAGE) -> dict:
    """A profiled run whose steps cost exactly the linearised model of `truth`: one fused
    step per block with an expansion and a depthwise layer, the layers before them as one
    step `first` (a patch stage by default), the rest as one step."""
    space = get_space(SPACE)
    config = space.resolve(which)
    layers = space.layer_specs(config, SIZE, CLASSES)
    blocks: dict[str, list] = {}
    for layer in layers:
        if layer.name.startswith("blocks.") and layer.name.count(".") >= 2:
            blocks.setdefault(".".join(layer.name.split(".")[:2]), []).append(layer)
    fused = {b for b, group in blocks.items()
             if any(layer_class(x) == "depthwise" for x in group)
             and any(x.name.endswith(".expand") for x in group)}
    start = next(k for k, x in enumerate(layers) if ".".join(x.name.split(".")[:2]) in fused)
    steps = [{"implementation": first, "instructions": _linear_cost(layers[:start], truth)}]
    steps += [{"implementation": FUSED_BLOCK, "instructions": _linear_cost(blocks[b], truth)}
              for b in blocks if b in fused]
    rest = [x for x in layers[start:] if ".".join(x.name.split(".")[:2]) not in fused]
    steps.append({"implementation": "head", "instructions": _linear_cost(rest, truth)})
    return {"which": which, "subnet": str(config), "layers": steps,
            "instructions": sum(s["instructions"] for s in steps),
            "optimise": "size" if first == PATCH_STAGE else "speed"}


TRUTH = LatencyCoefficients("cortex-m4", {"conv": 0.3, "pointwise": 0.55, "depthwise": 0.2,
                                          "linear": 1.0}, 1.5, 900.0)


def _subnets() -> list[str]:
    return ["seed", "min", "max",
            str(get_space(SPACE).sample(np.random.default_rng(1)))]


def test_fit_recovers_known_coefficients_from_per_step_counts():
    truth = TRUTH
    runs = [_synthetic_run(w, truth) for w in _subnets()]
    assert len(step_rows(get_space(SPACE).layer_specs(get_space(SPACE).resolve("seed"), SIZE,
                                                      CLASSES), runs[0]["layers"])) > 2
    fit = fit_target("cortex-m4", runs, SPACE, SIZE, CLASSES)
    for cls in ("pointwise", "depthwise"):
        assert fit["macs_per_cycle"][cls] == pytest.approx(truth.macs_per_cycle[cls], rel=1e-3)
    assert fit["bytes_per_cycle"] == pytest.approx(truth.bytes_per_cycle, rel=1e-3)
    assert fit["cycles_per_layer"] == pytest.approx(truth.cycles_per_layer, rel=1e-2)
    # squeezenas has no linear layer, and its one dense k x k conv (the stem) is in the
    # patch stage's row the fit leaves out: those classes keep the hand-picked values, said so
    for cls in ("conv", "linear"):
        assert fit["macs_per_cycle"][cls] == HAND_PICKED["cortex-m4"].macs_per_cycle[cls]
        assert cls in fit["note"]
    # the linearised truth is the fitted model's own form: whole subnets are predicted
    assert fit["quality"]["row_mape"] < 0.1
    assert fit["quality"]["stem_stage_share"][0] > 0
    assert set(fit["macs_per_cycle"]) == set(LAYER_CLASSES)


def test_fit_recovers_a_cost_per_output_element():
    """Layers of one class with different MACs per output (3x3 and 5x5 depthwise, 1x1 of
    many widths) tell a cost per output (requantising, storing) from the cost per MAC."""
    truth = dataclasses.replace(TRUTH, cycles_per_output={"pointwise": 20.0, "depthwise": 12.0})
    runs = [_synthetic_run(w, truth, first="qanas_conv2d_s8") for w in _subnets()]
    fit = fit_target("cortex-m4", runs, SPACE, SIZE, CLASSES)
    # the stem conv, the one dense conv, has one MACs per output: its MACs carry its cost
    assert fit["cycles_per_output"] == pytest.approx(dict(truth.cycles_per_output), rel=1e-3)
    for cls in ("conv", "pointwise", "depthwise"):
        assert fit["macs_per_cycle"][cls] == pytest.approx(truth.macs_per_cycle[cls], rel=1e-3)
    assert fit["quality"]["heldout_mape"] < 0.1
    layers = get_space(SPACE).layer_specs(get_space(SPACE).resolve("seed"), SIZE, CLASSES)
    assert analytic_cycles(layers, load_fitted_set(fit)) == pytest.approx(
        _linear_cost(layers, truth), rel=1e-3)


def load_fitted_set(fit: dict) -> LatencyCoefficients:
    """`fit` (a `fit_target` result) as the loader reads it."""
    return LatencyCoefficients("cortex-m4", fit["macs_per_cycle"], fit["bytes_per_cycle"],
                               fit["cycles_per_layer"], roofline=False,
                               cycles_per_output=fit["cycles_per_output"])


def test_a_speed_build_fits_the_library_steps_before_the_first_fused_block():
    """Without a patch stage the stem runs on the kernel library: its row is fitted (the
    stem's dense conv gives the ``conv`` rate) and no share is left out."""
    runs = [_synthetic_run(w, TRUTH, first="qanas_conv2d_s8") for w in _subnets()]
    layers = get_space(SPACE).layer_specs(get_space(SPACE).resolve("seed"), SIZE, CLASSES)
    assert "prologue" in {row[2] for row in step_rows(layers, runs[0]["layers"])}
    fit = fit_target("cortex-m4", runs, SPACE, SIZE, CLASSES)
    assert fit["macs_per_cycle"]["conv"] == pytest.approx(TRUTH.macs_per_cycle["conv"], rel=1e-3)
    assert fit["quality"]["stem_stage_share"] == [0.0] * len(runs)
    assert fit["quality"]["heldout_mape"] < 0.1


def test_the_other_modes_fit_is_scored_on_these_builds_held_out():
    """Runs of one mode priced with the fit of the other mode's runs, each subnet held out:
    builds twice as slow are under-priced by half, ranked alike."""
    # the stem conv, in the patch stage's row, is priced at the hand-picked rate: the truth's
    fast = dataclasses.replace(TRUTH, macs_per_cycle={
        **TRUTH.macs_per_cycle, "conv": HAND_PICKED["cortex-m4"].macs_per_cycle["conv"]})
    slow = LatencyCoefficients("cortex-m4", {c: r / 2 for c, r in fast.macs_per_cycle.items()},
                               fast.bytes_per_cycle / 2, fast.cycles_per_layer * 2)
    size = [_synthetic_run(w, fast) for w in _subnets()]
    speed = [_synthetic_run(w, slow, first="qanas_conv2d_s8") for w in _subnets()]
    transfer = transfer_quality("cortex-m4", size, speed, SPACE, SIZE, CLASSES)
    assert transfer["optimise"] == "size"
    assert transfer["heldout_mean_error"] == pytest.approx(-50.0, abs=0.1)
    assert transfer["heldout_kendall_tau"] == 1.0
    fit = fit_target("cortex-m4", speed, SPACE, SIZE, CLASSES, other_mode_runs=size)
    assert fit["quality"]["other_mode_fit"]["heldout_mape"] == transfer["heldout_mape"]
    assert [r["other_mode_fit_heldout_predicted"] for r in fit["subnets"]] == (
        transfer["heldout_predicted"])
    with pytest.raises(ValueError, match="both modes"):
        transfer_quality("cortex-m4", size[:2], speed, SPACE, SIZE, CLASSES)


def test_committed_fit_carries_int4_rates_of_the_current_kernel_generation():
    document = json.loads(COEFFICIENTS_PATH.read_text())
    int4 = document["protocol"].get("int4")
    assert int4 is not None, ("targets/latency_coefficients.json has no int4 fit: run the "
                              "--bits w4 command of benchmarks/fit_latency_coefficients.py")
    assert int4["kernel_generation"] == KERNEL_GENERATION, (
        f"the int4 rates were fitted on kernel generation {int4['kernel_generation']}, the "
        f"compiler's is {KERNEL_GENERATION}: refit with {int4['command']}")
    for name in ("cortex-m4", "cortex-m7", "cortex-m55"):
        fit = document["int4"][name]
        assert {"pointwise", "fused_pointwise"} <= set(fit["extra_cycles_per_mac"]), name
        assert fit["quality"]["pairs"] > 0 and fit["quality"]["heldout_mape"] is not None
        assert int4["command"].endswith(f"--optimise {fit['optimise']}")
        for optimise in FIT_MODES:  # the kernels' extra cycles slow either mode's rates
            used = coefficients_for(name, optimise=optimise)
            assert dict(used.int4_macs_per_cycle) == int4_rates(used.macs_per_cycle,
                                                                fit["extra_cycles_per_mac"])


def _paired_run(which: str, step_extra: float, fused_extra: float = 0.0) -> dict:
    """A subnet's 4-bit and int8 runs whose int4 kernel steps cost `step_extra` instructions
    more per MAC than the int8 ones, and whose fused steps cost `fused_extra` more per MAC
    of their 4-bit stages: one step per conv with an int4 step of its own, one per fused
    block."""
    from qanas.space.bits import WeightBitsSpace
    from qanas.space.layer_bits import (
        fused_blocks,
        int4_kernel_layers,
        int4_step_layers,
        layer_bit_widths,
    )

    space = WeightBitsSpace(get_space(SPACE), SIZE, CLASSES)
    arch = space.base.resolve(which)
    layers = space.layer_specs(arch, SIZE, CLASSES)
    widths = layer_bit_widths(layers, CLASSES, [4] * space.slot_count(arch))
    by_name = {layer.name: layer for layer in layers}
    four = set(int4_kernel_layers(layers, widths))
    blocks = fused_blocks(layers)
    on_int4 = int4_step_layers(layers, widths)
    int8, int4 = [], []
    for block in blocks:
        cost = sum(by_name[n].macs for n in block) * 2.0 + 1500
        extra = fused_extra * sum(by_name[n].macs for n in block if n in four)
        int8.append({"implementation": "qanas_inverted_residual_s8", "instructions": cost})
        int4.append({"implementation": "qanas_inverted_residual_s8", "instructions": cost + extra})
    int8 += [{"implementation": "qanas_pointwise_conv_s8",
              "instructions": by_name[n].macs * 1.5 + 900} for n in on_int4]
    int4 += [{"implementation": "qanas_pointwise_conv_s4",
              "instructions": by_name[n].macs * (1.5 + step_extra) + 900} for n in on_int4]
    return {"which": which, "layers": layers, "widths": widths,
            "int4": {"instructions": sum(s["instructions"] for s in int4), "layers": int4},
            "int8": {"instructions": sum(s["instructions"] for s in int8), "layers": int8}}


def test_int4_fit_slows_the_int8_rates_by_the_paired_steps_extra_cycles_per_mac():
    from qanas.cost.latency_fit_int4 import fit_int4

    base = coefficients_for("cortex-m4")
    fit = fit_int4(base, [_paired_run(w, 0.25, 0.5) for w in ("seed", "min", "max")])
    assert fit["extra_cycles_per_mac"]["pointwise"] == pytest.approx(0.25)
    assert fit["quality"]["int4_over_int8"]["pointwise"] > 1
    rates = int4_rates(base.macs_per_cycle, fit["extra_cycles_per_mac"])
    assert rates["pointwise"] == pytest.approx(
        1 / (1 / base.macs_per_cycle["pointwise"] + 0.25), rel=1e-3)
    assert "conv" in fit["note"]  # no k x k int4 step: priced as int8, said so
    assert fit["quality"]["heldout_step_mape"] == pytest.approx(0.0, abs=1e-3)
    assert all(r["heldout_predicted_int4"] > r["predicted_int8"] for r in fit["subnets"])


def test_int4_fit_prices_fused_stages_by_the_extra_cycles_of_their_steps():
    from qanas.cost.latency_fit_int4 import fit_int4

    base = coefficients_for("cortex-m4")
    fit = fit_int4(base, [_paired_run(w, 0.1, 0.5) for w in ("seed", "min", "max")])
    assert fit["extra_cycles_per_mac"]["fused_pointwise"] == pytest.approx(0.5)
    pointwise = base.macs_per_cycle["pointwise"]
    rates = int4_rates(base.macs_per_cycle, fit["extra_cycles_per_mac"])
    assert rates["fused_pointwise"] == pytest.approx(1 / (1 / pointwise + 0.5), rel=1e-3)
    assert fit["quality"]["heldout_fused_step_mape"] == pytest.approx(0.0, abs=1e-3)
    rows = fit["subnets"]
    assert all(r["measured_int4_fused"] > r["measured_int8_fused"] for r in rows)
    assert [r["heldout_predicted_int4_fused"] for r in rows] == pytest.approx(
        [r["measured_int4_fused"] for r in rows], abs=1)


def test_int4_fit_refuses_plans_that_are_not_twins():
    from qanas.cost.latency_fit_int4 import fused_step_pairs, int4_step_pairs

    run = _paired_run("min", 0.1)
    with pytest.raises(ValueError, match="twin"):
        int4_step_pairs(run["layers"], run["widths"], run["int4"]["layers"],
                        run["int8"]["layers"][1:])
    with pytest.raises(ValueError, match="int4_step_layers"):
        int4_step_pairs(run["layers"], run["widths"], run["int4"]["layers"][:-1],
                        run["int8"]["layers"][:-1])
    with pytest.raises(ValueError, match="fused_blocks"):
        fused_step_pairs(run["layers"], run["widths"], run["int4"]["layers"][1:],
                         run["int8"]["layers"][1:])
