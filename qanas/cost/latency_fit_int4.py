"""Fitting the int4 rates of `targets.latency` to paired per-layer QEMU counts.

Each subnet is profiled twice, compiled with the same settings: with every searchable conv
at 4 bits, and all-int8 (its twin). The two plans have the same steps, except that the
convs with an int4 step of their own (`qanas.space.layer_bits.int4_step_layers`) are
``..._s4`` steps where the twin has the int8 kernel (``..._s8``). `int4_step_pairs` pairs
them, layer by layer; the ratio of the int4 to the int8 instructions of a class's pairs
(summed over every subnet) scales the int8 rate of the class: the int4 rate is
``macs_per_cycle[class] / ratio``. A class with no pair keeps its int8 rate (listed).
The ratios describe the kernels, not one compiler mode: `targets.latency.int4_rates`
scales the int8 rates of either ``--optimise`` mode by them.

The 4-bit 1×1 stages of fused inverted residuals run inside a ``qanas_inverted_residual_s8``
step in both builds (`qanas.space.layer_bits.fused_blocks`, block by block in step order):
`fused_step_pairs` takes each such step's int4 less int8 instructions as the extra cost of
its 4-bit stages, and the extra cycles per 4-bit stage MAC (summed over every subnet) give
the ``fused_pointwise`` rate: ``1 / (1 / macs_per_cycle["pointwise"] + extra per MAC)``.

The fit is scored with each subnet held out in turn: the held-out subnet's int4 steps
predicted from its int8 steps (step MAPE), and its whole 4-bit model by the analytic
model with and without the int4 rates against the measured count (every 4-bit conv at
its int4 rate, the fused stages at ``fused_pointwise``).
"""

from __future__ import annotations

import dataclasses

from qanas.cost.latency_fit import quality
from qanas.space.layer_bits import fused_blocks, fused_convs, int4_kernel_layers, int4_step_layers
from targets.cost import LayerSpec
from targets.latency import (
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


def fused_extra_per_mac(pairs: list[tuple[float, float, float]]) -> float | None:
    """Extra instructions per 4-bit stage MAC of the fused steps `pairs` (None: no pair)."""
    macs = sum(p[0] for p in pairs)
    return sum(p[1] - p[2] for p in pairs) / macs if macs else None


def class_ratios(pairs: list[tuple[LayerSpec, float, float]]) -> dict[str, float]:
    """Int4 over int8 instructions of the pairs of each `INT4_CLASSES` class that has any."""
    sums: dict[str, list[float]] = {}
    for layer, int4, int8 in pairs:
        total = sums.setdefault(layer_class(layer), [0.0, 0.0])
        total[0] += int4
        total[1] += int8
    return {c: sums[c][0] / sums[c][1] for c in INT4_CLASSES if c in sums}


def with_int4(base: LatencyCoefficients, ratios: dict[str, float],
              fused_extra: float | None = None) -> LatencyCoefficients:
    """`base` with int4 rates: its int8 rate of each class divided by the class's ratio,
    and the fused stages' pointwise rate slowed by `fused_extra` cycles per MAC."""
    return dataclasses.replace(base, int4_macs_per_cycle=int4_rates(base.macs_per_cycle, ratios,
                                                                   fused_extra))


def _predicted_int4(pairs, ratios: dict[str, float]) -> float:
    return sum(int8 * ratios.get(layer_class(layer), 1.0) for layer, _, int8 in pairs)


def _predicted_fused(pairs, extra: float | None) -> float:
    return sum(int8 + macs * (extra or 0.0) for macs, _, int8 in pairs)


def fit_int4(base: LatencyCoefficients, subnets: list[dict]) -> dict:
    """The int4 section of one CPU's fitted coefficients, JSON-ready: the ratios that
    scale int8 rates to int4 ones (`targets.latency.int4_rates`), and their quality with
    `base`'s int8 rates.

    Args:
        base: the CPU's int8 coefficients of the mode the subnets were compiled in (kept
            as they are).
        subnets: one per profiled subnet: ``{"which", "layers"` (descriptors), ``"widths"``
            (bits of every conv), ``"int4"`` and ``"int8"`` (the two runs: ``{"instructions",
            "layers": [steps]}``)}``.
    """
    pairs = [int4_step_pairs(s["layers"], s["widths"], s["int4"]["layers"],
                             s["int8"]["layers"]) for s in subnets]
    fused = [fused_step_pairs(s["layers"], s["widths"], s["int4"]["layers"],
                              s["int8"]["layers"]) for s in subnets]
    ratios = class_ratios([p for subnet in pairs for p in subnet])
    extra = fused_extra_per_mac([p for subnet in fused for p in subnet])
    fitted = with_int4(base, ratios, extra)
    rows = []
    for k, subnet in enumerate(subnets):
        others = class_ratios([p for j, ps in enumerate(pairs) if j != k for p in ps])
        others_extra = fused_extra_per_mac([p for j, ps in enumerate(fused) if j != k
                                            for p in ps])
        model = with_int4(base, others, others_extra)
        on_int4 = [layer.name for layer, _, _ in pairs[k]]
        rows.append({
            "which": subnet["which"], "int4_layers": len(on_int4),
            "measured_int4_steps": int(sum(p[1] for p in pairs[k])),
            "measured_int8_steps": int(sum(p[2] for p in pairs[k])),
            "heldout_predicted_int4_steps": int(_predicted_int4(pairs[k], others)),
            "fused_steps": len(fused[k]),
            "measured_int4_fused": int(sum(p[1] for p in fused[k])),
            "measured_int8_fused": int(sum(p[2] for p in fused[k])),
            "heldout_predicted_int4_fused": int(_predicted_fused(fused[k], others_extra)),
            "measured_int4": int(subnet["int4"]["instructions"]),
            "measured_int8": int(subnet["int8"]["instructions"]),
            "heldout_predicted_int4": int(analytic_cycles(
                subnet["layers"], model, int4_kernel_layers(subnet["layers"], subnet["widths"]),
                fused_convs(subnet["layers"]))),
            "predicted_int8": int(analytic_cycles(subnet["layers"], base))})
    held = len(subnets) > 1
    steps = [r for r in rows if r["int4_layers"]]
    fused_rows = [r for r in rows if r["fused_steps"]]
    missing = [c for c in INT4_CLASSES if c not in fitted.int4_macs_per_cycle]
    return {
        "int4_over_int8": {c: round(r, 4) for c, r in ratios.items()},
        "fused_extra_cycles_per_mac": None if extra is None else round(extra, 4),
        "optimise": base.optimise,
        "note": (f"no int4 kernel step of class {', '.join(missing)} in the data: priced as "
                 "int8" if missing else ""),
        "quality": {
            "subnets": len(subnets), "pairs": sum(len(p) for p in pairs),
            "fused_over_int8_pointwise": None if extra is None else round(
                1 + extra * base.macs_per_cycle["pointwise"], 4),
            "heldout_step_mape": quality([r["heldout_predicted_int4_steps"] for r in steps],
                                         [r["measured_int4_steps"] for r in steps])["mape"]
            if held and steps else None,
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


__all__ = ["class_ratios", "fit_int4", "fused_extra_per_mac", "fused_step_pairs",
           "int4_step_pairs", "with_int4"]
