"""Figures of the deployment side: arena memory over the schedule, the firmware's
per-kernel latency and its SRAM/flash against the target, fidelity and QAT. Each
takes the run's own numbers and returns a base64 PNG."""

from __future__ import annotations

from collections.abc import Sequence

from qanas.report.memory import MemoryProfile, kernel_family
from qanas.report.plotting import COLORS, median, subplots, to_base64


def memory_figure(profile: MemoryProfile) -> str:
    """Live arena KiB per kernel call against arena and lower bound, and the memory map."""
    fig, axes = subplots(2, 1, width=10, height=7)
    ax = axes[0][0]
    steps = range(len(profile.live_bytes))
    ax.bar(steps, [b / 1024 for b in profile.live_bytes], width=1.0, color=COLORS[0],
           label="live buffers")
    ax.axhline(profile.arena_bytes / 1024, color=COLORS[1], label="planned arena")
    ax.axhline(profile.lower_bound_bytes / 1024, color="black", ls="--", label="lower bound")
    ax.set_xlabel("kernel call (execution order)")
    ax.set_ylabel("arena KiB live")
    ax.legend(fontsize=8, loc="upper center", ncol=3)
    ax.set_ylim(0, profile.arena_bytes / 1024 * 1.25 or 1)
    ax = axes[1][0]
    for i, p in enumerate(profile.placements):
        ax.broken_barh([(p.first - 0.4, p.last - p.first + 0.8)],
                       (p.offset / 1024, p.size / 1024),
                       facecolors=COLORS[i % len(COLORS)], edgecolor="black", linewidth=0.2)
    ax.axhline(profile.arena_bytes / 1024, color=COLORS[1], lw=0.8)
    ax.set_xlabel("kernel call (buffer lifetime)")
    ax.set_ylabel("arena offset (KiB)")
    ax.set_xlim(-1, len(profile.kernels))
    ax.set_ylim(0, profile.arena_bytes / 1024 * 1.05 or 1)
    return to_base64(fig)


def firmware_layers_figure(rows: Sequence[dict], profile: MemoryProfile | None) -> str:
    """Per-kernel latency of each firmware run (bars coloured by kernel family) and, under
    them, the arena bytes live at each kernel call."""
    panels = len(rows) + (profile is not None)
    fig, axes = subplots(panels, 1, width=10, height=2.2 * panels + 0.6, sharex=True)
    families: dict[str, str] = {}
    for ax, row in zip([a[0] for a in axes], rows, strict=False):
        layers = sorted(row["layers"], key=lambda layer: layer["index"])
        fams = [kernel_family(layer["kernel"]) for layer in layers]
        for f in fams:
            families.setdefault(f, COLORS[len(families) % len(COLORS)])
        ax.bar([layer["index"] for layer in layers], [layer["value"] for layer in layers],
               width=1.0, color=[families[f] for f in fams])
        ax.set_ylim(0, 1.35 * max((layer["value"] for layer in layers), default=1.0))
        ax.set_ylabel(f"{row.get('unit', '')}", fontsize=8)
        ax.set_title(f"{row['target']}: per-kernel latency", fontsize=9)
    if profile is not None:
        ax = axes[-1][0]
        ax.step(range(len(profile.live_bytes)), [b / 1024 for b in profile.live_bytes],
                where="mid", color=COLORS[0])
        ax.axhline(profile.arena_bytes / 1024, color=COLORS[1], label="arena")
        ax.set_ylabel("live KiB", fontsize=8)
        ax.set_title("arena bytes live at each kernel call (plan.json)", fontsize=9)
    axes[-1][0].set_xlabel("kernel call index")
    from matplotlib.patches import Patch

    axes[0][0].legend(handles=[Patch(color=c, label=f) for f, c in families.items()],
                      fontsize=7, ncol=min(len(families), 6), loc="upper right")
    return to_base64(fig)


def firmware_memory_figure(rows: Sequence[dict], capacity: dict[str, tuple]) -> str:
    """SRAM (arena + statics + stack peak) and flash per target, with each target's sizes
    (a black bar when on the scale of the usage, else in the axis label)."""
    fig, axes = subplots(1, 2, width=10, height=3.6)
    parts = ("arena", "static", "stack_peak")
    sram = [[((r.get("sram_bytes") or {}).get(p) or 0) / 1024 for p in parts] for r in rows]
    flash = [[(r.get("flash_bytes") or 0) / 1024] for r in rows]
    for which, (ax, used, labels, ylabel) in enumerate((
            (axes[0][0], sram, parts, "SRAM KiB"),
            (axes[0][1], flash, ("flash image",), "flash KiB"))):
        bottom = [0.0] * len(rows)
        for i, label in enumerate(labels):
            values = [u[i] for u in used]
            ax.bar(range(len(rows)), values, bottom=bottom, color=COLORS[i + 3 * which],
                   label=label)
            bottom = [b + v for b, v in zip(bottom, values, strict=True)]
        ticks = []
        for x, r in enumerate(rows):
            size = capacity.get(r["target"], (None, None))[which]
            ticks.append(r["target"])
            if size and size / 1024 <= 5 * max(max(bottom), 1e-9):
                ax.plot([x - 0.4, x + 0.4], [size / 1024] * 2, color="black", lw=2)
            elif size:
                ticks[-1] += f"\n(target {size / 1024:,.0f} KiB)"
        ax.set_xticks(range(len(rows)), ticks, fontsize=8)
        ax.set_ylabel(ylabel + " (black bar: target size)")
        ax.legend(fontsize=8)
    return to_base64(fig)


def firmware_latency_figure(rows: Sequence[dict]) -> str:
    """Median end-to-end latency per target (one bar per target, its unit on the axis)."""
    fig, axes = subplots(width=7, height=3.2)
    ax = axes[0][0]
    values = [median(r["latency"]) for r in rows]
    ax.bar([r["target"] for r in rows], values, color=COLORS[0])
    for x, v in enumerate(values):
        ax.text(x, v, f"{v:,.0f}", ha="center", va="bottom", fontsize=8)
    units = sorted({r.get("unit", "") for r in rows})
    ax.set_ylabel(f"latency ({', '.join(units)})")
    return to_base64(fig)


def fidelity_figure(fidelity: dict, miou_fp32: float | None) -> str:
    """mIoU of float, fake-quant and deployed integer model; bit-exact share per reference."""
    fig, axes = subplots(1, 2, width=10, height=3.4)
    bars = [("float (fp32)", miou_fp32), ("fake-quant int8", fidelity.get("miou_fake_quant")),
            ("deployed int8 C", fidelity.get("miou_deployed_int8"))]
    bars = [(k, v) for k, v in bars if v is not None]
    ax = axes[0][0]
    ax.bar([k for k, _ in bars], [v for _, v in bars], color=COLORS[: len(bars)])
    for x, (_, v) in enumerate(bars):
        ax.text(x, v, f"{v:.4f}", ha="center", va="bottom", fontsize=8)
    ax.set_ylabel("mIoU")
    ax = axes[0][1]
    exact = [("vs onnxruntime", fidelity.get("bit_exact_fraction")),
             ("vs NumPy int8 ref.", fidelity.get("bit_exact_fraction_integer_reference"))]
    exact = [(k, v * 100) for k, v in exact if v is not None]
    ax.bar([k for k, _ in exact], [v for _, v in exact], color=COLORS[2])
    for x, (_, v) in enumerate(exact):
        ax.text(x, v, f"{v:.3f} %", ha="center", va="bottom", fontsize=8)
    ax.set_ylim(0, 105)
    ax.set_ylabel("output elements bit-exact (%)")
    return to_base64(fig)


def qat_figure(qat: dict, miou_fp32: float | None) -> str:
    """int8 mIoU before and after QAT fine-tuning (and the float mIoU when known)."""
    fig, axes = subplots(width=6, height=3.2)
    bars = [("int8 before QAT", qat.get("miou_int8_before")),
            ("int8 after QAT", qat.get("miou_int8_after")), ("float", miou_fp32)]
    bars = [(k, v) for k, v in bars if v is not None]
    ax = axes[0][0]
    ax.bar([k for k, _ in bars], [v for _, v in bars], color=COLORS[: len(bars)])
    for x, (_, v) in enumerate(bars):
        ax.text(x, v, f"{v:.4f}", ha="center", va="bottom", fontsize=8)
    ax.set_ylabel("mIoU")
    return to_base64(fig)
