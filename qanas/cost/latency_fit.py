"""Fitting `targets.latency`'s analytic coefficients to per-layer QEMU instruction counts.

A profiled run gives the retired instructions of every plan step. The analytic model
prices the subnet's layer descriptors (`SearchSpace.layer_specs`), so steps are matched
to descriptors in groups (`step_rows`): each fused inverted residual step
(``qanas_inverted_residual_s8``) is one block of the space (the descriptors named
``blocks.N.*`` of a block with an expansion and a depthwise layer, in order; a block
without expansion runs as separate library steps), the last ones when there are fewer
fused steps than such blocks (``--optimise size`` runs the first blocks inside the stem's
patch stage, ``qanas_patch_stage_s8``); every other step (stem, unfused blocks, head,
transposes, resizes) falls in one of two rows: the steps before the first fused step with
the descriptors before its block (``stem`` when a patch stage is among them, else
``prologue``), and the steps after with every other descriptor (``head``). A subnet
without fused steps, or with more than blocks, gives one whole-model row.

On a row the model (``roofline=False``: MAC-bearing layers cost their MACs and outputs,
the others their bytes) is

    instructions = sum_class (MACs_class / macs_per_cycle[class]
                              + outputs_class * cycles_per_output[class])
                   + bytes_of_byte_bound_layers / bytes_per_cycle + layers * cycles_per_layer

which is linear in the reciprocals: `fit_target` solves it by non-negative least squares
with rows weighted by 1 / measured (relative error) over every row but the ``stem`` one (a
patch stage runs TVM kernels at a cost per MAC no class coefficient represents; its share
of each subnet is reported; a ``speed`` build's prologue runs the kernel library and is
fitted), and scores the fitted model — the model's own form,
`targets.latency.analytic_cycles` — on whole subnets held out one at a time (R^2, MAPE,
Kendall's tau). `transfer_quality` scores the fit of one compiler mode's builds on the
other mode's builds of the same subnets, held out the same way: what pricing one mode
with the other's coefficients costs.
"""

from __future__ import annotations

import numpy as np

from targets.cost import LayerSpec
from targets.latency import (
    HAND_PICKED,
    LAYER_CLASSES,
    LatencyCoefficients,
    analytic_cycles,
    layer_class,
)

FUSED_BLOCK = "qanas_inverted_residual_s8"
PATCH_STAGE = "qanas_patch_stage_s8"
OUTPUTS = tuple(f"{c}_outputs" for c in LAYER_CLASSES)
FEATURES = (*LAYER_CLASSES, *OUTPUTS, "bytes", "layers")
"""Columns of a row: MACs per class, output elements per class, bytes of byte-bound
layers, priced layers."""


Rows = list[tuple[np.ndarray, float, str]]
"""(features, measured instructions, group) rows (`step_rows`)."""


def row_features(layers: list[LayerSpec]) -> np.ndarray:
    """The linearised model's columns (`FEATURES`) for a group of descriptors."""
    row = np.zeros(len(FEATURES))
    for layer in layers:
        if layer.op == "act":
            continue
        cls = layer_class(layer)
        if cls is None:
            row[FEATURES.index("bytes")] += (layer.input_elements + layer.output_elements
                                             + layer.params)
        else:
            row[FEATURES.index(cls)] += layer.macs
            row[FEATURES.index(f"{cls}_outputs")] += layer.output_elements
        row[FEATURES.index("layers")] += 1
    return row


def _block_of(layer: LayerSpec) -> str | None:
    parts = layer.name.split(".")
    return ".".join(parts[:2]) if parts[0] == "blocks" and len(parts) > 2 else None


def step_rows(layers: list[LayerSpec], steps: list[dict]) -> Rows:
    """(features, measured instructions, group) rows of one profiled subnet (module
    docstring); the group is ``block``, ``stem`` (with a patch stage), ``prologue``
    (without), ``head`` or ``model`` (a whole subnet).

    Args:
        layers: the subnet's descriptors (`SearchSpace.layer_specs`).
        steps: the profiled plan steps, ``{"implementation", "instructions"}`` in order.
    """
    blocks: dict[str, list[LayerSpec]] = {}
    for layer in layers:
        block = _block_of(layer)
        if block is not None:
            blocks.setdefault(block, []).append(layer)
    fused = [b for b, group in blocks.items()
             if any(layer_class(x) == "depthwise" for x in group)
             and any(x.name.endswith(".expand") for x in group)]
    fused_steps = [s["instructions"] for s in steps if s["implementation"] == FUSED_BLOCK]
    total = float(sum(s["instructions"] for s in steps))
    if not fused_steps or len(fused_steps) > len(fused):
        return [(row_features(layers), total, "model")]
    # the patch stage (``--optimise size``) runs the first blocks inside the stem's step
    fused = fused[len(fused) - len(fused_steps):]
    rows = [(row_features(blocks[b]), float(n), "block")
            for b, n in zip(fused, fused_steps, strict=True)]
    first = next(k for k, s in enumerate(steps) if s["implementation"] == FUSED_BLOCK)
    start = next(k for k, x in enumerate(layers) if _block_of(x) == fused[0])
    before = float(sum(s["instructions"] for s in steps[:first]))
    patch = any(s["implementation"] == PATCH_STAGE for s in steps[:first])
    rows.append((row_features(layers[:start]), before, "stem" if patch else "prologue"))
    after = [x for x in layers[start:] if _block_of(x) not in fused]
    rows.append((row_features(after), total - sum(fused_steps) - before, "head"))
    return rows


def fitted_columns(rows: Rows) -> np.ndarray:
    """Which `FEATURES` columns the rows can fit: those with data, less a class's outputs
    where every row has the same MACs per output (the stem conv alone: its MAC and output
    costs cannot be told apart, so its MACs carry both)."""
    a = np.array([r[0] for r in rows], dtype=float)
    columns = a.max(axis=0) > 0
    for cls in LAYER_CLASSES:
        k, o = FEATURES.index(cls), FEATURES.index(f"{cls}_outputs")
        macs_per_output = a[a[:, o] > 0, k] / a[a[:, o] > 0, o]
        if macs_per_output.size and np.ptp(macs_per_output) <= 1e-9 * macs_per_output.max():
            columns[o] = False
    return columns


def solve(rows: Rows, columns: np.ndarray | None = None) -> np.ndarray:
    """Non-negative least squares of the rows, weighted by 1 / measured: the cost per
    unit of each `FEATURES` column (instructions per MAC, per output, per byte, per layer);
    columns outside `columns` (`fitted_columns` by default) cost nothing."""
    from scipy.optimize import nnls

    if columns is None:
        columns = fitted_columns(rows)
    a = np.array([r[0] for r in rows], dtype=float) * columns
    y = np.array([r[1] for r in rows], dtype=float)
    scale = np.where(a.max(axis=0) > 0, a.max(axis=0), 1.0)
    w = 1.0 / y
    x, _ = nnls(a / scale * w[:, None], y * w)
    return x / scale


def coefficients(name: str, cost: np.ndarray, seen: np.ndarray) -> tuple[
        LatencyCoefficients, list[str]]:
    """Coefficients from per-unit costs; a throughput that is absent from the data (`seen`
    false) or fitted to zero keeps the hand-picked value, and is listed; a class's cost per
    output is fitted where its outputs are seen (the hand-picked sets have none)."""
    base = HAND_PICKED[name]
    kept = []

    def throughput(column: str, fallback: float) -> float:
        k = FEATURES.index(column)
        if not seen[k] or cost[k] <= 0:
            kept.append(column)
            return fallback
        return float(1.0 / cost[k])

    macs = {c: throughput(c, base.macs_per_cycle[c]) for c in LAYER_CLASSES}
    bytes_per_cycle = throughput("bytes", base.bytes_per_cycle)
    per_output = {c: float(cost[FEATURES.index(f"{c}_outputs")]) for c in LAYER_CLASSES
                  if seen[FEATURES.index(f"{c}_outputs")]}
    per_layer = float(cost[FEATURES.index("layers")])
    return LatencyCoefficients(name, macs, bytes_per_cycle, per_layer, roofline=False,
                               cycles_per_output=per_output), kept


def _unit_costs(c: LatencyCoefficients) -> np.ndarray:
    """Cycles per unit of each `FEATURES` column of `c`: a row's modelled cycles are its
    features times these."""
    return np.array([*(1.0 / c.macs_per_cycle[k] for k in LAYER_CLASSES),
                     *(c.cycles_per_output.get(k, 0.0) for k in LAYER_CLASSES),
                     1.0 / c.bytes_per_cycle, c.cycles_per_layer])


def quality(predicted: list[float], measured: list[float]) -> dict:
    """R^2, MAPE (%), mean signed error (%: negative under-prices) and Kendall's tau (the
    ranking a search sees) of predictions."""
    from scipy.stats import kendalltau

    p, m = np.asarray(predicted, float), np.asarray(measured, float)
    ss_res = float(((m - p) ** 2).sum())
    ss_tot = float(((m - m.mean()) ** 2).sum())
    return {"r2": round(1.0 - ss_res / ss_tot, 4) if ss_tot > 0 else None,
            "mape": round(float((abs(p - m) / m).mean() * 100), 2),
            "max_ape": round(float((abs(p - m) / m).max() * 100), 2),
            "mean_error": round(float(((p - m) / m).mean() * 100), 2),
            "kendall_tau": round(float(kendalltau(p, m).statistic), 3) if len(m) > 1 else None}


def profiled_rows(runs: list[dict], space_name: str, image_size: tuple[int, int],
                  num_classes: int) -> tuple[list[list[LayerSpec]], list[Rows]]:
    """The descriptors and the `step_rows` of every profiled run."""
    from qanas.space import get_space

    space = get_space(space_name)
    specs = [space.layer_specs(space.resolve(r["subnet"]), image_size, num_classes)
             for r in runs]
    return specs, [step_rows(s, r["layers"]) for s, r in zip(specs, runs, strict=True)]


def _fitted_rows(rows: list[Rows], leave_out: int | None = None) -> Rows:
    """The rows the fit uses (all but ``stem``) of every subnet but `leave_out`."""
    return [row for j, subnet in enumerate(rows) if j != leave_out for row in subnet
            if row[2] != "stem"]


def transfer_quality(name: str, fitted_runs: list[dict], runs: list[dict], space_name: str,
                     image_size: tuple[int, int], num_classes: int) -> dict:
    """How coefficients fitted on `fitted_runs` (one compiler mode's builds) predict `runs`
    (the other mode's builds of the same subnets): each subnet of `runs` predicted by the
    fit of every other subnet of `fitted_runs`, as `fit_target` holds out.

    Raises:
        ValueError: a subnet of `runs` has no run in `fitted_runs`.
    """
    index = {r["subnet"]: k for k, r in enumerate(fitted_runs)}
    missing = [r.get("which") for r in runs if r["subnet"] not in index]
    if missing:
        raise ValueError(f"no run of {', '.join(map(str, missing))} among the runs to fit: "
                         "profile the same subnets in both modes")
    _, rows = profiled_rows(fitted_runs, space_name, image_size, num_classes)
    specs, _ = profiled_rows(runs, space_name, image_size, num_classes)
    seen = fitted_columns(_fitted_rows(rows))
    predicted = [analytic_cycles(s, coefficients(name, solve(_fitted_rows(
        rows, index[r["subnet"]]), seen), seen)[0]) for s, r in zip(specs, runs, strict=True)]
    held = quality(predicted, [float(r["instructions"]) for r in runs])
    return {"optimise": fitted_runs[0].get("optimise"),
            **{f"heldout_{k}": v for k, v in held.items()},
            "heldout_predicted": [int(p) for p in predicted]}


def fit_target(name: str, runs: list[dict], space_name: str, image_size: tuple[int, int],
               num_classes: int, other_mode_runs: list[dict] | None = None) -> dict:
    """The fitted coefficients of CPU `name` and their quality, JSON-ready.

    Args:
        runs: profiled subnets of this target: ``{"subnet": config string, "instructions",
            "layers": [{"implementation", "instructions"}, ...], "optimise"}``.
        other_mode_runs: the same subnets built in the other compiler mode; when given,
            the quality holds `transfer_quality` of their fit on `runs`
            (``other_mode_fit``).
    """
    specs, rows = profiled_rows(runs, space_name, image_size, num_classes)
    measured = [float(r["instructions"]) for r in runs]
    everything = _fitted_rows(rows)
    seen = fitted_columns(everything)
    fitted, kept = coefficients(name, solve(everything, seen), seen)
    heldout, heldout_library, measured_library = [], [], []
    for k in range(len(runs) if len(runs) > 1 else 0):
        model, _ = coefficients(name, solve(_fitted_rows(rows, k), seen), seen)
        heldout.append(analytic_cycles(specs[k], model))
        library = _fitted_rows(rows[k:k + 1])
        heldout_library.append(sum(float(r[0] @ _unit_costs(model))
                                   for r in library))
        measured_library.append(sum(r[1] for r in library))
    in_sample = [analytic_cycles(s, fitted) for s in specs]
    stem_share = [sum(r[1] for r in subnet if r[2] == "stem") / m
                  for subnet, m in zip(rows, measured, strict=True)]
    row_fit = quality([float(r[0] @ _unit_costs(fitted)) for r in everything],
                      [r[1] for r in everything])
    old = [analytic_cycles(s, HAND_PICKED[name]) for s in specs]
    held = quality(heldout, measured) if len(runs) > 1 else {}
    transfer = (transfer_quality(name, other_mode_runs, runs, space_name, image_size,
                                 num_classes) if other_mode_runs else None)
    return {
        "macs_per_cycle": {c: round(v, 4) for c, v in fitted.macs_per_cycle.items()},
        "bytes_per_cycle": round(fitted.bytes_per_cycle, 4),
        "cycles_per_output": {c: round(v, 2) for c, v in fitted.cycles_per_output.items()},
        "cycles_per_layer": round(fitted.cycles_per_layer, 1),
        "roofline": False,
        "note": (f"hand-picked (absent from the data or fitted to zero): {', '.join(kept)}"
                 if kept else ""),
        "quality": {"rows": len(everything), "subnets": len(runs),
                    "row_r2": row_fit["r2"], "row_mape": row_fit["mape"],
                    "stem_stage_share": [round(x, 3) for x in stem_share],
                    "heldout_r2": held.get("r2"), "heldout_mape": held.get("mape"),
                    "heldout_max_ape": held.get("max_ape"),
                    "heldout_mean_error": held.get("mean_error"),
                    "heldout_kendall_tau": held.get("kendall_tau"),
                    "heldout_mape_without_stem_stage": (quality(
                        heldout_library, measured_library)["mape"] if heldout else None),
                    "hand_picked_kendall_tau": quality(old, measured)["kendall_tau"],
                    "in_sample_mape": quality(in_sample, measured)["mape"],
                    "hand_picked_mape": quality(old, measured)["mape"],
                    **({"other_mode_fit": {k: v for k, v in transfer.items()
                                           if k != "heldout_predicted"}} if transfer else {})},
        "subnets": [{"which": r.get("which"), "measured": int(m),
                     "heldout_predicted": int(h) if heldout else None,
                     "fitted_predicted": int(f), "hand_picked_predicted": int(o),
                     **({"other_mode_fit_heldout_predicted": t} if transfer else {})}
                    for r, m, h, f, o, t in zip(
                        runs, measured, heldout or measured, in_sample, old,
                        transfer["heldout_predicted"] if transfer else measured, strict=True)],
    }
