"""Fitting the int4 rates of `targets.latency` to paired per-layer QEMU counts.

Each subnet is profiled twice, compiled with the same settings: with every searchable conv
at 4 bits, and all-int8 (its twin). The two plans have the same steps, except that the
convs with an int4 step of their own (`qanas.space.layer_bits.int4_step_layers`) are
``..._s4`` steps where the twin has the int8 kernel (``..._s8``). `int4_step_pairs` pairs
them, layer by layer; the int4 less the int8 instructions of a class's pairs over their
MACs (summed over every subnet) is the class's extra cost per MAC, which slows its int8
rate: the int4 rate is ``1 / (1 / macs_per_cycle[class] + extra)``. A class with no pair
keeps its int8 rate (listed).

The 4-bit 1×1 stages of fused inverted residuals run inside a ``qanas_inverted_residual_s8``
step in both builds (`qanas.space.layer_bits.fused_blocks`, block by block in step order):
`fused_step_pairs` takes each such step's int4 less int8 instructions as the extra cost of
its 4-bit stages, and the extra cycles per 4-bit stage MAC give the ``fused_pointwise``
rate, the ``pointwise`` int8 rate slowed by them.

The extra cycles per MAC are the kernels' (unpacking 4-bit weights), not one compiler
mode's: `targets.latency.int4_rates` slows the int8 rates of either ``--optimise`` mode by
them. The fit is scored with each subnet held out in turn: the held-out subnet's int4
steps predicted from its int8 steps (step MAPE), and its whole 4-bit model by the analytic
model (the int8 rates of the mode its builds were compiled in) with and without the int4
rates against the measured count (every 4-bit conv at its int4 rate, the fused stages at
``fused_pointwise``).
"""

from __future__ import annotations

import dataclasses

from qanas.cost.latency_fit import quality
from qanas.space.layer_bits import fused_blocks, fused_convs, int4_kernel_layers, int4_step_layers
from targets.cost import LayerSpec
from targets.latency import (
    FUSED_POINTWISE,
    INT4_CLASSES,
    LatencyCoefficients,
    analytic_cycles,
    int4_rates,
    layer_class,
)

INT4_SUFFIX, INT8_SUFFIX = "_s4", "_s8"
FUSED_STEP = "qanas_inverted_residual_s8"
"""The fused inverted-residual kernel (`compiler.passes.fuse_inverted_residual`)."""


def _check_twins(int4_steps: list[dict], int8_steps: list[dict]) -> list[str]:
    """The implementations of `int4_steps`, checked to be `int8_steps`' but for ``_s4``
    kernels in place of ``_s8`` ones."""
    names = [s["implementation"] for s in int4_steps]
    twins = [s["implementation"] for s in int8_steps]
    int8_of = [n[:-len(INT4_SUFFIX)] + INT8_SUFFIX if n.endswith(INT4_SUFFIX) else n
               for n in names]
    if int8_of != twins:
        raise ValueError(f"the 4-bit build's steps {names} are not its int8 twin's {twins} with "
                         "int4 kernels in place of int8 ones; profile both with the same "
                         "compiler settings")
    return names


def int4_step_pairs(layers: list[LayerSpec], widths: list[int], int4_steps: list[dict],
                    int8_steps: list[dict]) -> list[tuple[LayerSpec, float, float]]:
    """(layer, int4 instructions, int8 instructions) of every conv on the int4 kernels.

    Args:
        layers: the subnet's descriptors (`SearchSpace.layer_specs`).
        widths: weight bits of every conv of `layers` in the 4-bit build.
        int4_steps, int8_steps: the profiled plan steps of the 4-bit build and of its
            all-int8 twin, ``{"implementation", "instructions"}`` in order.

    Raises:
        ValueError: the plans differ other than by ``_s4`` for ``_s8`` kernels, or do not
            have one int4 step per conv the model puts on the int4 kernels.
    """
    names = _check_twins(int4_steps, int8_steps)
    on_int4 = int4_step_layers(layers, widths)
    steps = [k for k, n in enumerate(names) if n.endswith(INT4_SUFFIX)]
    if len(steps) != len(on_int4):
        raise ValueError(f"{len(steps)} int4 kernel steps, but the model puts {len(on_int4)} "
                         f"convs on the int4 kernels ({', '.join(on_int4)}); "
                         "qanas.space.layer_bits.int4_step_layers no longer describes the "
                         "compiler's fusion")
    by_name = {layer.name: layer for layer in layers}
    return [(by_name[name], float(int4_steps[k]["instructions"]),
             float(int8_steps[k]["instructions"]))
            for name, k in zip(on_int4, steps, strict=True)]


def fused_step_pairs(layers: list[LayerSpec], widths: list[int], int4_steps: list[dict],
                     int8_steps: list[dict]) -> list[tuple[float, float, float]]:
    """(MACs of the 4-bit stages, int4 instructions, int8 instructions) of every fused
    inverted-residual step with 4-bit stages; arguments as `int4_step_pairs`.

    Raises:
        ValueError: the plans differ other than by ``_s4`` for ``_s8`` kernels, or do not
            have one fused step per `fused_blocks` block.
    """
    names = _check_twins(int4_steps, int8_steps)
    blocks = fused_blocks(layers)
    steps = [k for k, n in enumerate(names) if n == FUSED_STEP]
    if len(steps) != len(blocks):
        raise ValueError(f"{len(steps)} {FUSED_STEP} steps, but the model fuses {len(blocks)} "
                         "blocks; qanas.space.layer_bits.fused_blocks no longer describes the "
                         "compiler's fusion")
    four = set(int4_kernel_layers(layers, widths))
    macs = {layer.name: layer.macs for layer in layers}
    pairs = []
    for block, k in zip(blocks, steps, strict=True):
        stage_macs = sum(macs[name] for name in block if name in four)
        if stage_macs:
            pairs.append((float(stage_macs), float(int4_steps[k]["instructions"]),
                          float(int8_steps[k]["instructions"])))
    return pairs


ExtraPair = tuple[str, float, float, float]
"""(`INT4_CLASSES` class, MACs on the int4 kernels, int4 instructions, int8 instructions)."""


def extra_pairs(steps: list[tuple[LayerSpec, float, float]],
                fused: list[tuple[float, float, float]]) -> list[ExtraPair]:
    """`int4_step_pairs` and `fused_step_pairs` of one subnet as `ExtraPair` rows."""
    return ([(layer_class(layer), float(layer.macs), int4, int8) for layer, int4, int8 in steps]
            + [(FUSED_POINTWISE, macs, int4, int8) for macs, int4, int8 in fused])


def extra_per_mac(pairs: list[ExtraPair]) -> dict[str, float]:
    """Int4 less int8 instructions per MAC on the int4 kernels, of each `INT4_CLASSES`
    class that has pairs."""
    sums: dict[str, list[float]] = {}
    for cls, macs, int4, int8 in pairs:
        total = sums.setdefault(cls, [0.0, 0.0])
        total[0] += int4 - int8
        total[1] += macs
    return {c: sums[c][0] / sums[c][1] for c in INT4_CLASSES if c in sums and sums[c][1]}


def with_int4(base: LatencyCoefficients, extra: dict[str, float]) -> LatencyCoefficients:
    """`base` with int4 rates: its int8 rates slowed by the `extra` cycles per MAC."""
    return dataclasses.replace(base, int4_macs_per_cycle=int4_rates(base.macs_per_cycle, extra))


def _predicted(pairs: list[ExtraPair], extra: dict[str, float]) -> float:
    """Int4 instructions of `pairs` predicted from their int8 ones."""
    return sum(int8 + macs * extra.get(cls, 0.0) for cls, macs, _, int8 in pairs)


def _ratio(pairs: list[ExtraPair]) -> float | None:
    int8 = sum(p[3] for p in pairs)
    return round(sum(p[2] for p in pairs) / int8, 4) if int8 else None


def fit_int4(base: LatencyCoefficients, subnets: list[dict]) -> dict:
    """The int4 section of one CPU's fitted coefficients, JSON-ready: the extra cycles per
    MAC of the int4 kernels (`targets.latency.int4_rates`), and their quality with `base`'s
    int8 rates.

    Args:
        base: the CPU's int8 coefficients of the mode the subnets were compiled in (kept
            as they are).
        subnets: one per profiled subnet: ``{"which", "layers"` (descriptors), ``"widths"``
            (bits of every conv), ``"int4"`` and ``"int8"`` (the two runs: ``{"instructions",
            "layers": [steps]}``)}``.
    """
    steps = [extra_pairs(int4_step_pairs(s["layers"], s["widths"], s["int4"]["layers"],
                                         s["int8"]["layers"]), []) for s in subnets]
    fused = [extra_pairs([], fused_step_pairs(s["layers"], s["widths"], s["int4"]["layers"],
                                              s["int8"]["layers"])) for s in subnets]
    extra = extra_per_mac([p for subnet in steps + fused for p in subnet])
    rows = []
    for k, subnet in enumerate(subnets):
        others = extra_per_mac([p for j in range(len(subnets)) if j != k
                                for p in steps[j] + fused[j]])
        rows.append({
            "which": subnet["which"], "int4_layers": len(steps[k]),
            "measured_int4_steps": int(sum(p[2] for p in steps[k])),
            "measured_int8_steps": int(sum(p[3] for p in steps[k])),
            "heldout_predicted_int4_steps": int(_predicted(steps[k], others)),
            "fused_steps": len(fused[k]),
            "measured_int4_fused": int(sum(p[2] for p in fused[k])),
            "measured_int8_fused": int(sum(p[3] for p in fused[k])),
            "heldout_predicted_int4_fused": int(_predicted(fused[k], others)),
            "measured_int4": int(subnet["int4"]["instructions"]),
            "measured_int8": int(subnet["int8"]["instructions"]),
            "heldout_predicted_int4": int(analytic_cycles(
                subnet["layers"], with_int4(base, others),
                int4_kernel_layers(subnet["layers"], subnet["widths"]),
                fused_convs(subnet["layers"]))),
            "predicted_int8": int(analytic_cycles(subnet["layers"], base))})
    held = len(subnets) > 1
    step_rows = [r for r in rows if r["int4_layers"]]
    fused_rows = [r for r in rows if r["fused_steps"]]
    missing = [c for c in INT4_CLASSES if c not in extra]
    everything = [p for subnet in steps + fused for p in subnet]
    return {
        "extra_cycles_per_mac": {c: round(v, 4) for c, v in extra.items()},
        "optimise": base.optimise,
        "note": (f"no int4 kernel step of class {', '.join(missing)} in the data: priced as "
                 "int8" if missing else ""),
        "quality": {
            "subnets": len(subnets), "pairs": sum(len(p) for p in steps),
            "fused_pairs": sum(len(p) for p in fused),
            "int4_over_int8": {c: _ratio([p for p in everything if p[0] == c]) for c in extra},
            "heldout_step_mape": quality([r["heldout_predicted_int4_steps"] for r in step_rows],
                                         [r["measured_int4_steps"] for r in step_rows])["mape"]
            if held and step_rows else None,
            "heldout_fused_step_mape": quality(
                [r["heldout_predicted_int4_fused"] for r in fused_rows],
                [r["measured_int4_fused"] for r in fused_rows])["mape"]
            if held and fused_rows else None,
            "heldout_mape": quality([r["heldout_predicted_int4"] for r in rows],
                                    [r["measured_int4"] for r in rows])["mape"] if held else None,
            "int8_model_mape": quality([r["predicted_int8"] for r in rows],
                                       [r["measured_int4"] for r in rows])["mape"],
            "measured_change_pct": [round((r["measured_int4"] / r["measured_int8"] - 1) * 100, 2)
                                    for r in rows],
            "heldout_predicted_change_pct": [
                round((r["heldout_predicted_int4"] / r["predicted_int8"] - 1) * 100, 2)
                for r in rows]},
        "subnets": rows,
    }


__all__ = ["extra_pairs", "extra_per_mac", "fit_int4", "fused_step_pairs", "int4_step_pairs",
           "with_int4"]
