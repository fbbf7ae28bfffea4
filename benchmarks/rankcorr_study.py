"""Rank-correlation study: does a FairNAS supernet rank subnets like standalone QAT training?

A study that can fail (NXP poster, Cityscapes: Kendall tau 0.60 over 25 subnets). It

1. trains one supernet per `--samplers` x `--supernet-seeds` (default: FairNAS with
   seeds 0 and 1) on the synthetic data at `--image-size` with the project's training
   defaults (`TrainConfig`: AdamW 1e-2, batch 4, warmup + cosine, no augmentation on
   synthetic): `--paths` single-path forward/backward passes each, i.e. ``paths / m``
   FairNAS steps (m paths per step) or ``paths`` SPOS steps, all at once (one process
   each); a rerun whose `--train-dir` already holds a checkpoint reuses it;
2. runs ``qanas rankcorr --supernet FIRST --compare OTHERS --select pareto --n N ...``:
   a seeded pool of random subnets plus the seed network is scored with the first
   supernet (int8, BN recalibrated, the whole val split); the seed network, (N-1)/2
   Pareto-optimal and (N-1)/2 Pareto-worse subnets of (int8 mIoU, latency on
   `--target`) are trained standalone from scratch (float epochs, then QAT) and scored
   int8 on the same val split; every supernet scores the same subnets;
3. prints one JSON object (and writes it atomically to `--out`): per supernet Kendall
   tau and Spearman rho with bootstrap 95 % intervals and top-k overlap, the same for
   the trivial rankers (MACs, parameters, predicted latency: bigger ranks higher), the
   verdict (tau >= 0.6, and tau's interval above the best trivial ranker), wall times
   and the protocol with every command that produced the figures.

A second invocation with the same flags while the first is training standalone
subnets joins it (the claims of `qanas rankcorr`): two processes share the work and
the figures do not change (give the joining one no `--out`). Everything is seeded and
runs with one torch thread per process, so the same command gives the same figures;
only the wall times differ.

Run (the committed benchmarks/results/rankcorr.json; about 25 CPU-minutes, squeezenas-small
at 32x64, each standalone run 3 + 1 QAT epochs of 30 steps):
    .venv/bin/python benchmarks/rankcorr_study.py --image-size 32 64 --paths 2600 \\
        --n 25 --pool 40 --epochs 3 --qat-epochs 1 --steps-per-epoch 30 \\
        --train-dir /tmp/studies/rc32 --rankcorr-dir /tmp/studies/rc32/rankcorr \\
        --out benchmarks/results/rankcorr.json
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
QANAS = [sys.executable, "-m", "qanas.cli.main"]
SAMPLERS = ("fairnas", "spos")
GOAL_TAU = 0.6


def supernet_command(sampler: str, paths: int, space: str, paths_per_step: int,
                     out: Path, seed: int, image_size: tuple[int, int]) -> list[str]:
    """`qanas train-supernet` argv: one epoch of ``paths / paths_per_step`` steps, batch 4.

    The synthetic set draws a new scene per index, so ``train_length = steps x 4`` gives
    every step new images; the per-epoch quick validation is off (the study scores).
    """
    steps = max(1, paths // paths_per_step)
    return [*QANAS, "train-supernet", "--space", space, "--data", "synthetic",
            "--image-size", str(image_size[0]), str(image_size[1]), "--sampler", sampler, "--epochs", "1",
            "--steps-per-epoch", str(steps), "--train-length", str(steps * 4),
            "--val-batches", "0", "--calib-batches", "0", "--seed", str(seed),
            "--out", str(out), "--json"]


def paths_per_step(space: str, sampler: str) -> int:
    """Paths trained per optimizer step by `sampler` on `space` (FairNAS: m, SPOS: 1)."""
    from qanas.space import get_space
    from qanas.train.samplers import build_sampler

    return build_sampler(sampler, get_space(space), seed=0).paths_per_step


def _run_json(argv: list[str], log: Path, env: dict) -> dict:
    """Runs `argv` (stderr to `log`) and returns the one JSON object it prints."""
    with open(log, "ab") as err:
        proc = subprocess.run(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=err,
                              check=False)
    text = proc.stdout.decode().strip()
    if proc.returncode != 0:
        raise SystemExit(f"{shlex.join(argv)} failed ({proc.returncode}): {text[-2000:]}; "
                         f"see {log}")
    return json.loads(text.splitlines()[-1])


def supernet_runs(args) -> list[tuple[str, int]]:
    """(sampler, seed) of every supernet the study trains, the first one the main proxy."""
    return [(sampler, seed) for sampler in args.samplers for seed in args.supernet_seeds]


def train_supernets(args, env: dict) -> dict[str, dict]:
    """Checkpoint path, command and wall time of every supernet (trained or reused).

    Keyed ``<sampler>-seed<S>``; they train at once (one process each).
    """
    runs: dict[str, dict] = {}
    procs = {}
    for sampler, seed in supernet_runs(args):
        name = f"{sampler}-seed{seed}"
        out = Path(args.train_dir) / name
        ckpt = out / "supernet.pt"
        if ckpt.is_file():
            result = ckpt.parent / "result.json"
            seconds = json.loads(result.read_text()).get("seconds") if result.is_file() else None
            runs[name] = {"checkpoint": str(ckpt), "reused": True, "wall_s": seconds}
            continue
        argv = supernet_command(sampler, args.paths, args.space,
                                paths_per_step(args.space, sampler), out, seed, args.image_size)
        log = Path(args.train_dir) / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        print(f"training {name}: {shlex.join(argv)}", file=sys.stderr, flush=True)
        procs[name] = (subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE,
                                        stderr=open(log, "ab")), argv, time.perf_counter())
    for name, (proc, argv, start) in procs.items():
        stdout, _ = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"{shlex.join(argv)} failed ({proc.returncode}): "
                             f"{stdout.decode()[-2000:]}")
        result = json.loads(stdout.decode().strip().splitlines()[-1])
        runs[name] = {"checkpoint": result["checkpoint"], "reused": False,
                      "wall_s": round(time.perf_counter() - start, 1),
                      "command": shlex.join(argv)}
    for run in runs.values():
        run.update(_checkpoint_protocol(run["checkpoint"]))
    return runs


def _checkpoint_protocol(path: str) -> dict:
    """The stored training configuration of a supernet checkpoint and its command line."""
    from qanas.train.checkpoint import load_checkpoint
    from qanas.utils.io import file_sha256

    payload = load_checkpoint(path)
    config = payload.get("config") or {}
    meta = Path(path).parent / "config.json"
    argv = json.loads(meta.read_text()).get("argv") if meta.is_file() else None
    command = shlex.join(argv) if argv else None
    return {"sha256": file_sha256(path), "sampler": config.get("sampler"),
            "steps": payload.get("step"), "train_config": config, "train_command": command}


def rankcorr_command(args, checkpoints: list[str]) -> list[str]:
    """`qanas rankcorr` argv of the study: the first supernet selects, all of them score."""
    argv = [*QANAS, "rankcorr", "--supernet", checkpoints[0], "--n", str(args.n),
            "--select", args.select, "--bootstrap", str(args.bootstrap),
            "--epochs", str(args.epochs), "--qat-epochs", str(args.qat_epochs),
            "--optimizer", args.optimizer, "--target", args.target, "--seed", str(args.seed),
            "--no-augment", "--out", str(args.rankcorr_dir), "--json"]
    if len(checkpoints) > 1:
        argv[argv.index("--n"):argv.index("--n")] = ["--compare", *checkpoints[1:]]
    if args.pool:
        argv[argv.index("--n"):argv.index("--n")] = ["--pool", str(args.pool)]
    if args.lr is not None:
        argv[-3:-3] = ["--lr", str(args.lr)]
    if args.steps_per_epoch:
        argv[-3:-3] = ["--steps-per-epoch", str(args.steps_per_epoch)]
    if args.standalone_seeds:
        argv[-3:-3] = ["--standalone-seeds", *map(str, args.standalone_seeds)]
    return argv


def _val_images(checkpoint: str) -> int:
    """Images of the val split the supernet and standalone scores use (whole split)."""
    from qanas.data import build_dataset
    from qanas.train.checkpoint import load_checkpoint

    payload = load_checkpoint(checkpoint)
    config = payload.get("config") or {}
    kw = {"length": config["val_length"]} if config.get("val_length") else {}
    return len(build_dataset("synthetic", "val", image_size=tuple(payload["image_size"]), **kw))


def _summary(corr: dict) -> dict:
    return {k: corr.get(k) for k in ("n", "kendall_tau", "kendall_ci", "kendall_p",
                                     "spearman_rho", "spearman_ci", "spearman_p", "top_k")}


def verdict(supernets: dict[str, dict], baselines: dict[str, dict]) -> dict:
    """The study's goal, checked per supernet: tau >= GOAL_TAU and the lower end of tau's
    95 % interval above the best trivial ranker's tau."""
    best_name = max(baselines, key=lambda k: baselines[k]["kendall_tau"] or -1.0)
    best = baselines[best_name]["kendall_tau"]
    out = {"goal_kendall_tau": GOAL_TAU, "best_trivial_ranker": best_name,
           "best_trivial_tau": best, "per_supernet": {}}
    for name, corr in supernets.items():
        tau, ci = corr["kendall_tau"], corr.get("kendall_ci")
        out["per_supernet"][name] = {
            "tau_meets_goal": tau is not None and tau >= GOAL_TAU,
            "ci_low_above_best_trivial": bool(ci and ci[0] is not None and best is not None
                                              and ci[0] > best)}
    return out


def main(argv: list[str] | None = None) -> dict:
    """Runs the study; prints and returns the JSON report."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--space", default="squeezenas-small")
    p.add_argument("--image-size", type=int, nargs=2, default=(64, 128), metavar=("H", "W"),
                   help="training and scoring resolution of everything (default 64 128)")
    p.add_argument("--paths", type=int, default=4680,
                   help="single-path passes per supernet (FairNAS steps = paths / m; "
                        "default 4680 = 360 FairNAS steps on squeezenas-small)")
    p.add_argument("--samplers", nargs="+", choices=SAMPLERS, default=["fairnas"],
                   help="supernet samplers (default fairnas)")
    p.add_argument("--supernet-seeds", type=int, nargs="+", default=[0, 1], metavar="S",
                   help="one supernet per sampler and seed (default 0 1); the first selects")
    p.add_argument("--train-dir", default="/tmp/studies", help="supernet runs (DIR/<sampler>-seed<S>)")
    p.add_argument("--rankcorr-dir", default="/tmp/studies/rankcorr",
                   help="`qanas rankcorr --out` folder")
    p.add_argument("--n", type=int, default=25, help="subnets trained standalone (25)")
    p.add_argument("--select", choices=("spread", "pareto"), default="pareto",
                   help="pareto: seed + (n-1)/2 Pareto-optimal + (n-1)/2 Pareto-worse (default)")
    p.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples (2000)")
    p.add_argument("--pool", type=int, help="random candidates scored (default 3 x n)")
    p.add_argument("--epochs", type=int, default=3, help="standalone float epochs (3)")
    p.add_argument("--qat-epochs", type=int, default=1, help="standalone QAT epochs (1)")
    p.add_argument("--steps-per-epoch", type=int, help="cap on standalone steps per epoch")
    p.add_argument("--optimizer", choices=("sgd", "adamw"), default="adamw",
                   help="standalone optimizer (default adamw, the supernet's)")
    p.add_argument("--lr", type=float, help="standalone peak LR (default: the optimizer's)")
    p.add_argument("--standalone-seeds", type=int, nargs="+", metavar="S",
                   help="train each subnet once per seed; the truth is the mean, and the "
                        "seeds' agreement is the ranking's noise ceiling (default: --seed)")
    p.add_argument("--target", default="cortex-m7", help="latency axis of the selection")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads per process (1)")
    p.add_argument("--out", help="also write the JSON report here (atomically)")
    args = p.parse_args(argv)
    command = shlex.join([sys.executable, *([sys.argv[0]] if argv is None else []),
                          *(sys.argv[1:] if argv is None else argv)])
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads),
           "QANAS_THREADS": str(args.threads), "PYTHONPATH": str(REPO)}
    start = time.perf_counter()
    supernets = train_supernets(args, env)
    names = [f"{sampler}-seed{seed}" for sampler, seed in supernet_runs(args)]
    rc_argv = rankcorr_command(args, [supernets[n]["checkpoint"] for n in names])
    Path(args.rankcorr_dir).mkdir(parents=True, exist_ok=True)
    print(f"rankcorr: {shlex.join(rc_argv)}", file=sys.stderr, flush=True)
    rc_start = time.perf_counter()
    rc = _run_json(rc_argv, Path(args.rankcorr_dir) / "rankcorr.log", env)
    rc_wall = time.perf_counter() - rc_start
    # rankcorr labels a supernet "<sampler> (<folder>)": the folder is the run's name.
    by_run = {label.split("(", 1)[1].split(")", 1)[0]: _summary(corr)
              for label, corr in rc["correlations"].items()}
    baselines = {k: _summary(v) for k, v in rc["baselines"].items()}
    report = {
        "space": rc["space"], "n": rc["n"], "pool": rc["pool"], "selection": rc["selection"],
        "image_size": list(args.image_size),
        "supernets": by_run, "trivial_rankers": baselines,
        "verdict": verdict(by_run, baselines),
        "standalone_seed_agreement": {k: _summary(v) for k, v in
                                      (rc.get("seed_agreement") or {}).items()} or None,
        "epochs": args.epochs, "qat_epochs": args.qat_epochs,
        "wall_s": {**{f"supernet_{n}": supernets[n]["wall_s"] for n in names},
                   "rankcorr": round(rc_wall, 1), "total": round(time.perf_counter() - start, 1),
                   "standalone_training_sum": round(sum(
                       r.get("standalone_seconds") or 0.0 for r in rc["subnets"]), 1)},
        "subnets": rc["subnets"],
        "protocol": {
            "command": command, "rankcorr_command": shlex.join(rc_argv),
            "supernets": supernets, "paths_per_supernet": args.paths,
            "val_images": _val_images(supernets[names[0]]["checkpoint"]),
            "supernet_score": "int8 PTQ mIoU after BN recalibration, whole val split",
            "bootstrap": f"{rc['bootstrap_resamples']} paired resamples, percentile 95 %, "
                         f"seed {args.seed}",
            "standalone": rc["standalone"], "threads_per_process": args.threads,
            "scatter": rc["files"]["scatter"], "rankcorr_json": rc["files"]["json"]},
    }
    if args.out:
        from qanas.utils.io import atomic_write_json

        atomic_write_json(args.out, report)
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
