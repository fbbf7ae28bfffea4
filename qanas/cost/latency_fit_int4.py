"""Fitting the int4 rates of `targets.latency` to paired per-layer QEMU counts.

Each subnet is profiled twice, compiled with the same settings: with every searchable conv
at 4 bits, and all-int8 (its twin). The two plans have the same steps, except that the
convs with an int4 step of their own (`qanas.space.layer_bits.int4_step_layers`) are
``..._s4`` steps where the twin has the int8 kernel (``..._s8``). `int4_step_pairs` pairs
them, layer by layer; the ratio of the int4 to the int8 instructions of a class's pairs
(summed over every subnet) scales the int8 rate of the class: the int4 rate is
``macs_per_cycle[class] / ratio``. A class with no pair keeps its int8 rate (listed).

The fit is scored with each subnet held out in turn: the held-out subnet's int4 steps
predicted from its int8 steps (step MAPE), and its whole 4-bit model by the analytic
model with and without the int4 rates against the measured count (every 4-bit conv at
the int4 rate, `int4_kernel_layers`: those of fused inverted residuals run the same int4
convolutions inside the block's step).
"""

from __future__ import annotations

import dataclasses

from qanas.cost.latency_fit import quality
from qanas.space.layer_bits import int4_kernel_layers, int4_step_layers
from targets.cost import LayerSpec
from targets.latency import INT4_CLASSES, LatencyCoefficients, analytic_cycles, layer_class

INT4_SUFFIX, INT8_SUFFIX = "_s4", "_s8"


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
    names = [s["implementation"] for s in int4_steps]
    twins = [s["implementation"] for s in int8_steps]
    int8_of = [n[:-len(INT4_SUFFIX)] + INT8_SUFFIX if n.endswith(INT4_SUFFIX) else n
               for n in names]
    if int8_of != twins:
        raise ValueError(f"the 4-bit build's steps {names} are not its int8 twin's {twins} with "
                         "int4 kernels in place of int8 ones; profile both with the same "
                         "compiler settings")
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


def class_ratios(pairs: list[tuple[LayerSpec, float, float]]) -> dict[str, float]:
    """Int4 over int8 instructions of the pairs of each `INT4_CLASSES` class that has any."""
    sums: dict[str, list[float]] = {}
    for layer, int4, int8 in pairs:
        total = sums.setdefault(layer_class(layer), [0.0, 0.0])
        total[0] += int4
        total[1] += int8
    return {c: sums[c][0] / sums[c][1] for c in INT4_CLASSES if c in sums}


def with_int4(base: LatencyCoefficients, ratios: dict[str, float]) -> LatencyCoefficients:
    """`base` with int4 rates: its int8 rate of each class divided by the class's ratio."""
    rates = {c: round(base.macs_per_cycle[c] / r, 4) for c, r in ratios.items()}
    return dataclasses.replace(base, int4_macs_per_cycle=rates)


def _predicted_int4(pairs, ratios: dict[str, float]) -> float:
    return sum(int8 * ratios.get(layer_class(layer), 1.0) for layer, _, int8 in pairs)


def fit_int4(base: LatencyCoefficients, subnets: list[dict]) -> dict:
    """The int4 section of one CPU's fitted coefficients, JSON-ready.

    Args:
        base: the CPU's int8 coefficients (kept as they are).
        subnets: one per profiled subnet: ``{"which", "layers"` (descriptors), ``"widths"``
            (bits of every conv), ``"int4"`` and ``"int8"`` (the two runs: ``{"instructions",
            "layers": [steps]}``)}``.
    """
    pairs = [int4_step_pairs(s["layers"], s["widths"], s["int4"]["layers"],
                             s["int8"]["layers"]) for s in subnets]
    ratios = class_ratios([p for subnet in pairs for p in subnet])
    fitted = with_int4(base, ratios)
    rows = []
    for k, subnet in enumerate(subnets):
        others = class_ratios([p for j, ps in enumerate(pairs) if j != k for p in ps])
        model = with_int4(base, others)
        on_int4 = [layer.name for layer, _, _ in pairs[k]]
        rows.append({
            "which": subnet["which"], "int4_layers": len(on_int4),
            "measured_int4_steps": int(sum(p[1] for p in pairs[k])),
            "measured_int8_steps": int(sum(p[2] for p in pairs[k])),
            "heldout_predicted_int4_steps": int(_predicted_int4(pairs[k], others)),
            "measured_int4": int(subnet["int4"]["instructions"]),
            "measured_int8": int(subnet["int8"]["instructions"]),
            "heldout_predicted_int4": int(analytic_cycles(
                subnet["layers"], model, int4_kernel_layers(subnet["layers"], subnet["widths"]))),
            "predicted_int8": int(analytic_cycles(subnet["layers"], base))})
    held = len(subnets) > 1
    steps = [r for r in rows if r["int4_layers"]]
    missing = [c for c in INT4_CLASSES if c not in ratios]
    return {
        "macs_per_cycle": dict(fitted.int4_macs_per_cycle),
        "int4_over_int8": {c: round(r, 4) for c, r in ratios.items()},
        "note": (f"no int4 kernel step of class {', '.join(missing)} in the data: priced as "
                 "int8" if missing else ""),
        "quality": {
            "subnets": len(subnets), "pairs": sum(len(p) for p in pairs),
            "heldout_step_mape": quality([r["heldout_predicted_int4_steps"] for r in steps],
                                         [r["measured_int4_steps"] for r in steps])["mape"]
            if held and steps else None,
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


__all__ = ["class_ratios", "fit_int4", "int4_step_pairs", "with_int4"]
