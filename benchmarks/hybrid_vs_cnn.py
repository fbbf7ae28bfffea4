"""The CNN + ViT hybrid against the CNN space on the demo setting, at equal latency.

Two `qanas demo` runs of the same setting and seed, one per space (default
``efficient-topformer``, the hybrid, and ``squeezenas-small``, the CNN), for the same
target (default cortex-m55), are compared from their ``results.json``; nothing of the
pipeline is recomputed. Given ``--runs HYBRID_DIR CNN_DIR`` the script reads two finished
runs (their configs must agree except for the space); otherwise it runs both demos
(`qanas.demo.run.run_demo`) into ``--work-dir`` with the demo knobs below.

Reported:

* **equal latency**: for every predicted latency of either search front, the best int8
  mIoU each front reaches at or below it (with that subnet's planned SRAM), the winner
  there, and the latency ranges each space wins;
* **hypervolume** of each front in (int8 mIoU, latency) and in (int8 mIoU, latency, peak
  SRAM): pymoo ``HV`` after min/max normalisation over every feasible subnet either search
  evaluated, reference point 1.1 (`search_hv.normalized_hypervolumes`);
* **latency check**: the front subnets each demo compiled and ran on the target
  (``--latency-subnets``), predicted vs measured;
* **deployment** of each chosen subnet: deployed integer mIoU vs fake-quant mIoU on the
  fidelity images (the goal: within 0.5 pp), host bit-exactness, and its firmware on the
  target (instructions, flash, outputs equal to the host build).

Run (firmware on the target only and no Vela, which the comparison does not use):
    .venv/bin/python benchmarks/hybrid_vs_cnn.py --out benchmarks/results/hybrid_vs_cnn_m55.json
or, from two finished demo runs (the committed results: two `qanas demo` runs of one setting
made side by side, the demo's default and a reduced one with ``--epochs 2 --budget 20
--latency-subnets 2``; commands in docs/efficient-topformer.md, "Hybrid vs CNN on
cortex-m55"):
    .venv/bin/python benchmarks/hybrid_vs_cnn.py --runs runs/hybrid_m55 runs/cnn_m55 \\
        --out benchmarks/results/hybrid_vs_cnn_m55.json
The documented tables are ``--markdown benchmarks/results/hybrid_vs_cnn_m55.json``.

``--reprice`` prices every subnet both searches evaluated again with the analytic latency
model as it is now (`qanas.cost.hardware.AnalyticLatencyModel`, the coefficients of the
runs' target and ``--optimise`` mode) and recomputes each front from them (the feasible
subnets no other one dominates in int8 mIoU, latency and SRAM, pymoo's non-dominated
sorting); the latency check and the chosen subnet's prediction are re-priced too. It
compares runs made under an earlier fit on the latency model of today (the searches
themselves chose their subnets under the old one):
    .venv/bin/python benchmarks/hybrid_vs_cnn.py --runs runs/hybrid_m55 runs/cnn_m55 \
        --reprice --out benchmarks/results/hybrid_vs_cnn_m55_repriced.json
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]  # the repository, and search_hv beside this file

from search_hv import normalized_hypervolumes  # noqa: E402

from qanas.demo.config import DemoConfig  # noqa: E402
from qanas.utils.io import atomic_write_json, versions  # noqa: E402

ROLES = ("hybrid", "cnn")
GOAL_FIDELITY_PP = 0.5
SETTING_FIELDS = ("dataset", "image_size", "epochs", "steps_per_epoch", "batch_size",
                  "val_images", "qat_supernet_steps", "budget", "latency_subnets",
                  "qat_steps", "fidelity_images", "firmware_targets", "npu_target",
                  "optimise", "bits", "seed", "target")
"""The config fields two runs must share to be compared (everything but the space)."""


def front_points(results: dict) -> list[dict]:
    """The search front of a demo's `results`: arch, int8 mIoU, predicted latency, SRAM."""
    return sorted(({"arch": r["arch"], "miou": r["miou"], "latency": r["latency"]["value"],
                    "sram_bytes": r["sram_bytes"]} for r in results["search"]["front"]),
                  key=lambda p: (p["latency"], -p["miou"]))


def best_at_latency(points: list[dict], latency: float) -> dict | None:
    """The point of highest mIoU among `points` at or below `latency` (the faster on a tie);
    None when every point is slower."""
    within = [p for p in points if p["latency"] <= latency]
    return max(within, key=lambda p: (p["miou"], -p["latency"]), default=None)


def equal_latency(fronts: dict[str, list[dict]]) -> list[dict]:
    """At every latency of the union of `fronts`, each front's best mIoU at or below it.

    Returns one row per distinct latency, ascending: ``latency``, per front name its best
    point's ``miou``, ``latency`` and ``sram_bytes`` (None when it has no point that fast),
    ``winner``: the name of the higher mIoU, ``"tie"`` on equal mIoU, or the only
    front that reaches the latency, and ``margin``: the winner's mIoU less the next best
    (None when one front alone reaches the latency).
    """
    latencies = sorted({p["latency"] for points in fronts.values() for p in points})
    rows = []
    for latency in latencies:
        row: dict = {"latency": latency}
        for name, points in fronts.items():
            best = best_at_latency(points, latency)
            row[name] = None if best is None else {k: best[k] for k in
                                                   ("miou", "latency", "sram_bytes", "arch")}
        reached = {name: row[name]["miou"] for name in fronts if row[name] is not None}
        top = max(reached.values())
        leaders = [name for name, miou in reached.items() if miou == top]
        row["winner"] = leaders[0] if len(leaders) == 1 else "tie"
        row["margin"] = top - sorted(reached.values())[-2] if len(reached) > 1 else None
        rows.append(row)
    return rows


def winner_ranges(rows: list[dict]) -> list[dict]:
    """`equal_latency` rows merged into runs of one winner: ``winner``, ``from_latency``
    and ``to_latency`` (the first and last latency of the run), ``points`` (rows in it) and
    ``margin``: the least and largest margin of its rows where both fronts compete (None
    when the winner alone reaches the run's latencies)."""
    runs: list[list[dict]] = []
    for row in rows:
        if runs and runs[-1][0]["winner"] == row["winner"]:
            runs[-1].append(row)
        else:
            runs.append([row])
    ranges = []
    for run in runs:
        margins = [r["margin"] for r in run if r["margin"] is not None]
        ranges.append({"winner": run[0]["winner"], "from_latency": run[0]["latency"],
                       "to_latency": run[-1]["latency"], "points": len(run),
                       "margin": [min(margins), max(margins)] if margins else None})
    return ranges


def _objective_rows(rows: list[dict], objectives: tuple[str, ...]) -> np.ndarray:
    """Minimised objective matrix of search rows (``miou`` negated)."""
    columns = {"miou": lambda r: -r["miou"], "latency": lambda r: r["latency"]["value"],
               "sram": lambda r: r["sram_bytes"]}
    return np.array([[columns[o](r) for o in objectives] for r in rows], dtype=float)


def hypervolumes(results: dict[str, dict], objectives: tuple[str, ...]) -> dict[str, float]:
    """Normalised hypervolume of each run's front over `objectives` (``miou``, ``latency``,
    ``sram``), normalised over every feasible subnet either run's search evaluated."""
    evaluated = [r for res in results.values() for r in res["search"]["evaluated"]
                 if r["feasible"]]
    return normalized_hypervolumes(
        {name: _objective_rows(res["search"]["front"], objectives).reshape(-1, len(objectives))
         for name, res in results.items()}, _objective_rows(evaluated, objectives))


def latency_check(results: dict) -> dict | None:
    """The demo's check of predicted against measured latency on the target, or None when
    the run skipped it; each row carries the subnet's search mIoU."""
    check = results.get("lut_validation")
    if check is None:
        return None
    miou = {r["arch"]: r["miou"] for r in results["search"]["evaluated"]}
    return {"target": check["target"], "predicted_by": check["source"],
            "unit": check["unit"], "measured_unit": check["measured_unit"],
            "comparable": check["comparable"],
            "mape": check["mape"], "max_ape": check["max_ape"],
            "kendall_tau": check["kendall_tau"],
            "rows": [{**row, "miou": miou.get(row["arch"])} for row in check["rows"]]}


def deployment(results: dict, target: str) -> dict:
    """The chosen subnet: its search figures, fidelity (deployed integer vs fake-quant mIoU,
    against the 0.5 pp goal) and its firmware on `target` (None when not run there)."""
    chosen, fidelity = results["chosen"], results["fidelity"]
    gap_pp = 100.0 * abs(fidelity["miou_deployed_int8"] - fidelity["miou_fake_quant"])
    row = next((row for row in results["firmware"] if row["target"] == target), None)
    firmware = None
    if row is not None:
        firmware = {k: row.get(k) for k in ("fits", "unit", "flash_bytes", "sram_bytes",
                                            "outputs_match_host", "repeatable", "reason")}
        firmware["latency"] = row["latency"][0] if row.get("latency") else None
    return {"arch": chosen["arch"], "knee": chosen["knee"], "macs": chosen["macs"],
            "miou_int8": chosen["miou_int8"], "miou_int8_search": chosen["miou_int8_search"],
            "predicted_latency": chosen["latency"]["value"],
            "arena_bytes": chosen["arena_bytes"], "weights_bytes": chosen["weights_bytes"],
            "fidelity": {"images": fidelity["images"],
                         "miou_deployed_int8": fidelity["miou_deployed_int8"],
                         "miou_fake_quant": fidelity["miou_fake_quant"],
                         "gap_pp": gap_pp, "within_goal": bool(gap_pp <= GOAL_FIDELITY_PP),
                         "bit_exact_fraction": fidelity["bit_exact_fraction"],
                         "bit_exact_fraction_integer_reference":
                             fidelity["bit_exact_fraction_integer_reference"]},
            "firmware": firmware}


def repriced(results: dict, config: DemoConfig) -> dict:
    """`results` with every predicted latency re-priced by today's analytic model.

    The model is the one the demo's search builds without a latency table
    (`AnalyticLatencyModel` of the run's target, image size, dataset classes and
    ``--optimise`` mode). Every
    evaluated subnet, the latency check's rows (with their error statistics) and the chosen
    subnet are priced again, and the front is recomputed: the feasible evaluated subnets
    that no other one dominates in (int8 mIoU, latency, SRAM).
    """
    import copy

    from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

    from qanas.cost.hardware import AnalyticLatencyModel
    from qanas.cost.lut.validation import validation_stats
    from qanas.data import build_dataset
    from qanas.space import get_space
    from targets import get_target

    out = copy.deepcopy(results)
    space = get_space(config.space)
    classes = build_dataset(config.dataset, "val", root=config.data_root,
                            image_size=config.image_size, length=1).num_classes
    model = AnalyticLatencyModel(space, get_target(config.target), config.image_size,
                                 classes, optimise=config.optimise)
    source = f"{model.source} ({config.optimise} fit, re-priced)"

    def price(arch: str) -> dict:
        latency = model.predict(space.resolve(arch))
        return {"source": source, "unit": latency.unit, "value": float(latency.value)}

    search = out["search"]
    for row in search["evaluated"]:
        row["latency"] = price(row["arch"])
    feasible = [r for r in search["evaluated"] if r["feasible"] and r["miou"] is not None]
    front = NonDominatedSorting().do(_objective_rows(feasible, ("miou", "latency", "sram")),
                                     only_non_dominated_front=True)
    search["front"] = [feasible[i] for i in sorted(front)]
    search["latency_model"] = {"source": source, "table": None}
    out["chosen"]["latency"] = price(out["chosen"]["arch"])
    check = out.get("lut_validation")
    if check is not None:
        archs = [r["arch"] for r in check["rows"]]
        stats = validation_stats(archs, [price(a)["value"] for a in archs],
                                 [r["measured"] for r in check["rows"]]).to_dict()
        check.update({k: stats[k] for k in ("mape", "max_ape", "kendall_tau", "rows")},
                     source=source)
    return out


def _setting(configs: dict[str, DemoConfig]) -> dict:
    """The shared setting of the runs and its departures from the demo's defaults.

    Raises:
        ValueError: the runs differ in a field other than the space.
    """
    first = next(iter(configs.values()))
    for name, config in configs.items():
        differ = [f for f in SETTING_FIELDS if getattr(config, f) != getattr(first, f)]
        if differ:
            raise ValueError(f"the {name} run differs from the others in {differ}: compare runs "
                             "of one setting (rerun one with the other's config.json)")
    defaults = DemoConfig()
    setting = {f: getattr(first, f) for f in SETTING_FIELDS}
    departures = {f: {"run": getattr(first, f), "demo_default": getattr(defaults, f)}
                  for f in SETTING_FIELDS
                  if f != "target" and getattr(first, f) != getattr(defaults, f)}
    return {**setting, "spaces": {n: c.space for n, c in configs.items()},
            "departures_from_demo_defaults": departures}


def compare(results: dict[str, dict], configs: dict[str, DemoConfig]) -> dict:
    """The comparison of demo `results` (role → results.json) of one setting `configs`.

    Raises:
        ValueError: the runs differ in setting or in the latency unit of their searches.
    """
    setting = _setting(configs)
    units = {name: {r["latency"]["unit"] for r in res["search"]["front"]}
             for name, res in results.items()}
    if len(set().union(*units.values())) != 1:
        raise ValueError(f"the fronts' latencies are in different units {units}; compare runs "
                         "whose searches predict latency the same way")
    fronts = {name: front_points(res) for name, res in results.items()}
    rows = equal_latency(fronts)
    deployed = {n: deployment(res, setting["target"]) for n, res in results.items()}
    return {
        "setting": setting,
        "latency_unit": next(iter(set().union(*units.values()))),
        "latency_source": {n: res["search"]["latency_model"]["source"]
                           for n, res in results.items()},
        "fronts": {name: {"evaluated": len(results[name]["search"]["evaluated"]),
                          "points": points,
                          "best_miou": max(p["miou"] for p in points),
                          "min_latency": min(p["latency"] for p in points)}
                   for name, points in fronts.items()},
        "hypervolume": {"miou_latency": hypervolumes(results, ("miou", "latency")),
                        "miou_latency_sram": hypervolumes(results, ("miou", "latency", "sram"))},
        "equal_latency": rows,
        "winner_ranges": winner_ranges(rows),
        "latency_check": {n: latency_check(res) for n, res in results.items()},
        "deployed": deployed,
        "goal": {"fidelity_gap_pp_at_most": GOAL_FIDELITY_PP,
                 "met": {n: d["fidelity"]["within_goal"] for n, d in deployed.items()}},
        "runs": {n: {"run_dir": res["run_dir"], "seconds": res["seconds"],
                     "stages": {s["stage"]: s["seconds"] for s in res["stages"]}}
                 for n, res in results.items()},
    }


def _fmt(point: dict | None) -> str:
    return "–" if point is None else f"{point['miou']:.4f} @ {point['latency'] / 1e6:.2f} M"


def format_table(report: dict) -> str:
    """The comparison as plain-text tables."""
    names = list(report["fronts"])
    unit = report["latency_unit"]
    lines = [f"equal predicted latency ({unit}, {report['setting']['target']}): best int8 mIoU "
             "at or below it",
             f"{'latency':>10}  " + "  ".join(f"{n:>20}" for n in names) + "  winner"]
    for row in report["equal_latency"]:
        lines.append(f"{row['latency'] / 1e6:>9.2f}M  "
                     + "  ".join(f"{_fmt(row[n]):>20}" for n in names) + f"  {row['winner']}")
    lines.append("wins: " + "; ".join(
        f"{r['winner']} {r['from_latency'] / 1e6:.2f}–{r['to_latency'] / 1e6:.2f} M"
        + ("" if r["margin"] is None else
           f" (mIoU +{r['margin'][0]:.4f} to +{r['margin'][1]:.4f} where both compete)")
        for r in report["winner_ranges"]))
    for kind, hv in report["hypervolume"].items():
        lines.append(f"hypervolume ({kind}): "
                     + ", ".join(f"{n} {v:.4f}" for n, v in hv.items()))
    for name in names:
        check = report["latency_check"][name]
        if check is not None:
            rows = ", ".join(f"mIoU {r['miou']:.4f} at {r['predicted'] / 1e6:.2f}/"
                             f"{r['measured'] / 1e6:.2f} M ({r['error_pct']:+.1f} %)"
                             for r in check["rows"])
            lines.append(f"{name} latency predicted/measured ({check['unit']}/"
                         f"{check['measured_unit']}): {rows}; MAPE {check['mape']:.1f} %")
        d = report["deployed"][name]
        f, fw = d["fidelity"], d["firmware"] or {}
        lines.append(f"{name} chosen: int8 mIoU {d['miou_int8']:.4f} after QAT (search "
                     f"{d['miou_int8_search']:.4f}), predicted "
                     f"{d['predicted_latency'] / 1e6:.2f} M; deployed "
                     f"{f['miou_deployed_int8']:.4f} vs fake-quant {f['miou_fake_quant']:.4f} "
                     f"on {f['images']} images ({f['gap_pp']:.2f} pp, goal "
                     f"{'met' if f['within_goal'] else 'MISSED'}); firmware "
                     f"{round(fw.get('latency') or 0):,} {fw.get('unit') or ''}, outputs match "
                     f"host {fw.get('outputs_match_host')}")
    return "\n".join(lines)


def format_markdown(report: dict) -> str:
    """The comparison as the two Markdown tables of docs/efficient-topformer.md."""
    names = list(report["fronts"])
    spaces = report["setting"]["spaces"]
    mega = report["latency_unit"]

    def cell(point):
        return "–" if point is None else f"{point['miou']:.4f} ({point['latency'] / 1e6:.2f})"

    lines = [f"| predicted latency (M {mega}) | "
             + " | ".join(f"{spaces[n]} best mIoU (at M {mega})" for n in names) + " | higher |",
             "|---:|" + "---:|" * len(names) + "---|"]
    lines += [f"| {row['latency'] / 1e6:.2f} | " + " | ".join(cell(row[n]) for n in names)
              + f" | {spaces.get(row['winner'], row['winner'])} |"
              for row in report["equal_latency"]]

    def per_space(label, value):
        return f"| {label} | " + " | ".join(value(n) for n in names) + " |"

    hv = report["hypervolume"]
    checks, deployed = report["latency_check"], report["deployed"]

    def measured(name):
        check = checks[name]
        if check is None:
            return "not run"
        return "; ".join(f"{r['predicted'] / 1e6:.2f} → {r['measured'] / 1e6:.2f} M "
                         f"({r['error_pct']:+.1f} %, mIoU {r['miou']:.4f})" for r in check["rows"])

    def firmware(name):
        fw = deployed[name]["firmware"]
        if not fw or not fw["fits"]:
            return "not run" if not fw else "does not fit"
        return (f"{round(fw['latency']):,} {fw['unit']}, outputs = host: "
                f"{'yes' if fw['outputs_match_host'] else 'NO'}")

    lines += ["", "| | " + " | ".join(spaces[n] for n in names) + " |",
              "|---|" + "---|" * len(names)]
    lines += [
        per_space("front / evaluated", lambda n: f"{len(report['fronts'][n]['points'])} / "
                                                 f"{report['fronts'][n]['evaluated']}"),
        per_space("hypervolume (mIoU, latency)", lambda n: f"{hv['miou_latency'][n]:.3f}"),
        per_space("hypervolume (mIoU, latency, SRAM)",
                  lambda n: f"{hv['miou_latency_sram'][n]:.3f}"),
        per_space(f"latency check: predicted → measured (M {checks[names[0]]['unit']} → "
                  f"M {checks[names[0]]['measured_unit']})" if checks[names[0]] else
                  "latency check", measured),
        per_space("chosen: int8 mIoU search → after QAT",
                  lambda n: f"{deployed[n]['miou_int8_search']:.4f} → {deployed[n]['miou_int8']:.4f}"),
        per_space("chosen: predicted latency (M)",
                  lambda n: f"{deployed[n]['predicted_latency'] / 1e6:.2f}"),
        per_space("chosen: deployed vs fake-quant mIoU",
                  lambda n: f"{deployed[n]['fidelity']['miou_deployed_int8']:.4f} vs "
                            f"{deployed[n]['fidelity']['miou_fake_quant']:.4f} "
                            f"({deployed[n]['fidelity']['images']} images): "
                            f"{deployed[n]['fidelity']['gap_pp']:.2f} pp"),
        per_space(f"chosen: firmware on {report['setting']['target']}", firmware),
        per_space("chosen: arena / weights (B)",
                  lambda n: f"{deployed[n]['arena_bytes']:,} / {deployed[n]['weights_bytes']:,}"),
        per_space("run wall time (s)", lambda n: f"{report['runs'][n]['seconds']:.0f}"),
    ]
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    defaults = DemoConfig()
    p.add_argument("--runs", nargs=2, metavar=("HYBRID_DIR", "CNN_DIR"),
                   help="compare these finished demo runs instead of running the demos")
    p.add_argument("--hybrid-space", default="efficient-topformer")
    p.add_argument("--cnn-space", default="squeezenas-small")
    p.add_argument("--target", default="cortex-m55")
    p.add_argument("--epochs", type=int, default=defaults.epochs)
    p.add_argument("--steps-per-epoch", type=int, default=defaults.steps_per_epoch)
    p.add_argument("--qat-supernet-steps", type=int, default=defaults.qat_supernet_steps)
    p.add_argument("--budget", type=int, default=defaults.budget)
    p.add_argument("--latency-subnets", type=int, default=defaults.latency_subnets)
    p.add_argument("--qat-steps", type=int, default=defaults.qat_steps)
    p.add_argument("--val-images", type=int, default=defaults.val_images)
    p.add_argument("--fidelity-images", type=int, default=defaults.fidelity_images)
    p.add_argument("--firmware-targets", nargs="+", default=None,
                   help="QEMU targets of the firmware stage (default: --target only)")
    p.add_argument("--npu-target", default="none",
                   help="Ethos-U target of the demos' Vela stage (default none: not compared)")
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--work-dir", default="runs/hybrid_vs_cnn",
                   help="folder of the two demo runs when the script runs them")
    p.add_argument("--reprice", action="store_true",
                   help="price every evaluated subnet with today's analytic latency model and "
                        "recompute the fronts (runs made under an earlier fit)")
    p.add_argument("--out", help="also write the JSON here (atomically)")
    p.add_argument("--markdown", metavar="JSON",
                   help="print the Markdown tables of this earlier result and exit")
    return p


def _run_demos(args) -> dict[str, Path]:
    """Runs the two demos of one setting into ``--work-dir``; their run folders by role."""
    import dataclasses

    from qanas.demo.run import run_demo

    config = DemoConfig(target=args.target, epochs=args.epochs,
                        steps_per_epoch=args.steps_per_epoch,
                        qat_supernet_steps=args.qat_supernet_steps, budget=args.budget,
                        latency_subnets=args.latency_subnets, qat_steps=args.qat_steps,
                        val_images=args.val_images, fidelity_images=args.fidelity_images,
                        firmware_targets=tuple(args.firmware_targets or (args.target,)),
                        npu_target=None if args.npu_target in ("", "none") else args.npu_target,
                        seed=args.seed)
    dirs = {}
    for role, space in zip(ROLES, (args.hybrid_space, args.cnn_space), strict=True):
        dirs[role] = Path(args.work_dir) / role
        run_demo(dataclasses.replace(config, space=space), dirs[role], force=True)
    return dirs


def _load(run_dir: Path) -> tuple[dict, DemoConfig]:
    """A finished demo run's results and config.

    Raises:
        FileNotFoundError: the folder holds no results.json (the demo did not finish).
    """
    path = run_dir / "results.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: {run_dir} is not a finished `qanas demo` "
                                "run; finish the demo or pass another --runs folder")
    return json.loads(path.read_text()), DemoConfig.from_run_dir(run_dir)


def main(argv: list[str] | None = None) -> dict:
    """Runs (or reads) the two demos, compares them, prints the table and returns the report."""
    args = _parser().parse_args(argv)
    if args.markdown:
        report = json.loads(Path(args.markdown).read_text())
        print(format_markdown(report))
        return report
    command = shlex.join([sys.executable, *([sys.argv[0]] if argv is None else []),
                          *(sys.argv[1:] if argv is None else argv)])
    dirs = (dict(zip(ROLES, map(Path, args.runs), strict=True)) if args.runs
            else _run_demos(args))
    loaded = {role: _load(d) for role, d in dirs.items()}
    if args.reprice:
        loaded = {role: (repriced(res, cfg), cfg) for role, (res, cfg) in loaded.items()}
    report = compare({r: res for r, (res, _) in loaded.items()},
                     {r: cfg for r, (_, cfg) in loaded.items()})
    report["protocol"] = {
        "command": command,
        "hv_indicator": "pymoo.indicators.hv.HV",
        "hv_normalization": "min/max over every feasible subnet both searches evaluated, "
                            "ref 1.1",
        "equal_latency": "best front mIoU at or below each predicted latency of either front",
        "repriced": bool(args.reprice),
        "versions": versions()}
    if args.out:
        atomic_write_json(args.out, report)
    print(format_table(report))
    return report


if __name__ == "__main__":
    main()
