"""Figures of the model side of a run: training curves, Pareto fronts, LUT validation,
rank correlation and the scored candidates. Each takes the run's own numbers and
returns a base64 PNG; none holds a number of its own."""

from __future__ import annotations

from collections.abc import Sequence

from qanas.report.plotting import COLORS, subplots, to_base64


def training_figure(history: Sequence[dict]) -> str:
    """Loss per epoch (left) and quick-val mIoU of the seed/min/max subnets (right)."""
    fig, axes = subplots(1, 2)
    epochs = [h["epoch"] for h in history]
    axes[0][0].plot(epochs, [h["loss"] for h in history], "o-", color=COLORS[0])
    axes[0][0].set_xlabel("epoch")
    axes[0][0].set_ylabel("training loss (cross-entropy)")
    ax = axes[0][1]
    names = sorted({k for h in history for k in (h.get("val_miou") or {})})
    for i, name in enumerate(names):
        points = [(h["epoch"], h["val_miou"][name]) for h in history
                  if (h.get("val_miou") or {}).get(name) is not None]
        ax.plot(*zip(*points, strict=True), "o-", color=COLORS[i % len(COLORS)],
                label=f"{name} subnet")
    baseline = [h.get("baseline_miou") for h in history]
    if any(b is not None for b in baseline):
        ax.axhline(next(b for b in baseline if b is not None), color="gray", ls="--",
                   label="majority-class baseline")
    ax.set_xlabel("epoch")
    ax.set_ylabel("val mIoU (float)")
    ax.legend(fontsize=8)
    return to_base64(fig)


def latency_of(row: dict) -> tuple[float | None, str, str]:
    """(value, unit, source) of a search row: nested {"latency": {...}} or flat columns."""
    lat = row.get("latency")
    if isinstance(lat, dict):
        return lat.get("value"), lat.get("unit", ""), lat.get("source", "")
    return lat, row.get("latency_unit", ""), row.get("latency_source", "")


def pareto_figure(search: dict, chosen_arch: str | None) -> str:
    """Latency vs int8 mIoU of every evaluated subnet, the front, the chosen subnet starred;
    a second panel for peak SRAM when SRAM is an objective or a constraint."""
    evaluated = search.get("evaluated") or search.get("front") or []
    front = search.get("front") or []
    with_sram = any(r.get("sram_bytes") is not None for r in evaluated)
    fig, axes = subplots(1, 2 if with_sram else 1, width=11 if with_sram else 7.5, height=4.2)
    unit = next((latency_of(r)[1] for r in evaluated if latency_of(r)[1]), "")
    panels = [(axes[0][0], lambda r: latency_of(r)[0], f"latency ({unit})")]
    if with_sram:
        panels.append((axes[0][1], lambda r: r.get("sram_bytes") / 1024, "peak SRAM (KiB)"))
    sram_limit = (search.get("constraints") or {}).get("sram_bytes")
    for ax, x_of, xlabel in panels:
        scored = [r for r in evaluated if r.get("miou") is not None and x_of(r) is not None]
        ok = [r for r in scored if r.get("feasible", True)]
        bad = [r for r in scored if not r.get("feasible", True)]
        ax.scatter([x_of(r) for r in ok], [r["miou"] for r in ok], s=14, alpha=0.5,
                   color=COLORS[0], label=f"evaluated, feasible ({len(ok)})")
        if bad:
            ax.scatter([x_of(r) for r in bad], [r["miou"] for r in bad], s=14, marker="x",
                       color="gray", label=f"infeasible ({len(bad)})")
        line = sorted((r for r in front if r.get("miou") is not None), key=x_of)
        style = "o-" if ax is axes[0][0] else "o"  # the front is a line in latency only
        ax.plot([x_of(r) for r in line], [r["miou"] for r in line], style, mfc="none",
                color=COLORS[1], label=f"Pareto front ({len(line)})")
        star = [r for r in scored if r.get("arch") == chosen_arch]
        if star:
            ax.scatter([x_of(star[0])], [star[0]["miou"]], marker="*", s=220, color="gold",
                       edgecolor="black", zorder=5, label="chosen subnet")
        if sram_limit and "SRAM" in xlabel:
            most = max((x_of(r) for r in scored), default=0)
            if sram_limit / 1024 <= 1.5 * most:
                ax.axvline(sram_limit / 1024, color="gray", ls=":", label="SRAM budget")
            else:
                ax.set_title(f"SRAM budget {sram_limit / 1024:,.0f} KiB (off scale)",
                             fontsize=9)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("int8 (fake-quant) mIoU")
        ax.legend(fontsize=7, loc="lower right")
    axes[0][0].set_title(f"{search.get('algo', search.get('algorithm', 'search'))} on "
                         f"{search.get('target', '?')}", fontsize=10)
    return to_base64(fig)


def lut_figure(validation: dict) -> str:
    """Predicted vs measured end-to-end latency (with y = x and ±10 %), error per subnet."""
    rows = validation["rows"]
    unit = validation.get("unit", "")
    fig, axes = subplots(1, 2, width=10)
    ax = axes[0][0]
    measured = [r["measured"] for r in rows]
    predicted = [r["predicted"] for r in rows]
    lo, hi = min(measured + predicted), max(measured + predicted)
    span = [lo * 0.95, hi * 1.05]
    ax.plot(span, span, "k-", lw=0.8, label="predicted = measured")
    ax.fill_between(span, [v * 0.9 for v in span], [v * 1.1 for v in span], color="gray",
                    alpha=0.2, label="±10 %")
    ax.scatter(measured, predicted, color=COLORS[0], zorder=3, label="held-out subnet")
    ax.set_xlabel(f"measured latency ({unit})")
    ax.set_ylabel(f"LUT-predicted latency ({unit})")
    ax.legend(fontsize=8)
    ax = axes[0][1]
    errors = [r["error_pct"] for r in rows]
    ax.bar(range(len(errors)), errors,
           color=[COLORS[2] if abs(e) <= 10 else COLORS[1] for e in errors])
    ax.axhline(10, color="gray", ls=":")
    ax.axhline(-10, color="gray", ls=":")
    ax.set_xlabel("held-out subnet #")
    ax.set_ylabel("prediction error (%)")
    return to_base64(fig)


def rankcorr_figure(points: Sequence[dict]) -> str:
    """Supernet int8 mIoU (proxy) vs standalone int8 mIoU (truth), one dot per subnet."""
    fig, axes = subplots(width=6, height=4.5)
    ax = axes[0][0]
    series = [("supernet_miou", "supernet")] + [("compare_miou", "compared supernet")] * any(
        "compare_miou" in p for p in points)
    for i, (key, label) in enumerate(series):
        pts = [(p["standalone_miou"], p[key]) for p in points
               if p.get(key) is not None and p.get("standalone_miou") is not None]
        if pts:
            ax.scatter(*zip(*pts, strict=True), color=COLORS[i], label=label)
    seeds = [p for p in points if p.get("seed_network") and p.get("supernet_miou") is not None]
    if seeds:
        ax.scatter([seeds[0]["standalone_miou"]], [seeds[0]["supernet_miou"]], marker="*",
                   s=200, color="gold", edgecolor="black", label="seed network", zorder=4)
    ax.set_xlabel("standalone (QAT) int8 mIoU")
    ax.set_ylabel("supernet int8 mIoU")
    ax.legend(fontsize=8)
    return to_base64(fig)


def candidates_figure(candidates: Sequence[dict], chosen_arch: str | None) -> str:
    """MACs vs int8 mIoU of the scored candidates (runs without a search), chosen starred."""
    fig, axes = subplots(width=6.5, height=4)
    ax = axes[0][0]
    ax.scatter([c["macs"] / 1e6 for c in candidates], [c["miou"] for c in candidates],
               color=COLORS[0], label="int8 mIoU")
    floats = [c for c in candidates if c.get("miou_fp32") is not None]
    ax.scatter([c["macs"] / 1e6 for c in floats], [c["miou_fp32"] for c in floats],
               marker="_", s=120, color=COLORS[1], label="float mIoU")
    star = [c for c in candidates if c.get("arch") == chosen_arch]
    if star:
        ax.scatter([star[0]["macs"] / 1e6], [star[0]["miou"]], marker="*", s=220,
                   color="gold", edgecolor="black", label="chosen", zorder=4)
    ax.set_xlabel("MACs (millions, analytic)")
    ax.set_ylabel("mIoU")
    ax.legend(fontsize=8)
    return to_base64(fig)
