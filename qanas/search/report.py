"""Search outputs: front.json, front.csv and the Pareto plot (all written atomically)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from qanas.search.archive import EvalRecord
from qanas.search.result import SearchResult
from qanas.utils.io import atomic_write_bytes, atomic_write_json

CSV_FIELDS = ("arch", "miou", "miou_fp32", "latency", "latency_unit", "latency_source",
              "sram_bytes", "flash_bytes", "macs", "params")


def front_rows(front: tuple[EvalRecord, ...] | list[EvalRecord]) -> list[dict]:
    """The printed/serialised columns of each front record."""
    return [{k: getattr(r, k) for k in CSV_FIELDS} for r in front]


def write_front(out_dir: str | Path, result: SearchResult, summary: dict) -> dict[str, Path]:
    """Writes front.json (summary + rows), front.csv and pareto.png into `out_dir`."""
    out_dir = Path(out_dir)
    rows = front_rows(result.front)
    paths = {"front_json": atomic_write_json(out_dir / "front.json", {**summary, "front": rows})}
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    paths["front_csv"] = atomic_write_bytes(out_dir / "front.csv", text.getvalue().encode())
    paths["plot"] = plot_front(out_dir / "pareto.png", result)
    return paths


def plot_front(path: str | Path, result: SearchResult) -> Path:
    """Scatter of latency vs quantized mIoU: every scored subnet, the front highlighted."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    scored = [r for r in result.records if r.miou is not None]
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    if scored:
        sc = ax.scatter([r.latency for r in scored], [r.miou for r in scored],
                        c=[r.sram_bytes / 1024 for r in scored], cmap="viridis", s=14, alpha=0.6,
                        label="evaluated")
        fig.colorbar(sc, ax=ax, label="peak SRAM (KiB)")
    front = sorted(result.front, key=lambda r: r.latency)
    if front:
        ax.plot([r.latency for r in front], [r.miou for r in front], "o-", color="crimson",
                mfc="none", label=f"front ({len(front)})")
    unit = result.records[0].latency_unit if result.records else ""
    source = result.records[0].latency_source if result.records else ""
    ax.set_xlabel(f"latency ({unit}, {source})")
    ax.set_ylabel("quantized mIoU")
    ax.set_title(f"{result.algorithm}: {len(result.records)} subnets, objectives "
                 f"{','.join(result.objectives)}")
    ax.legend(loc="lower right")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())
