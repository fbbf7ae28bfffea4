"""Scale-out with torchrun: the process-group helpers, batch sharding, and 2-process runs.

The slow tests launch `tests/support/dist_worker.py` with ``torchrun --standalone
--nproc_per_node 2`` (gloo on CPU) and compare it with the same work done here in
one process:

* training: with BatchNorm in eval mode, so that per-rank batch statistics are out
  of the picture, three real 2-process SGD steps give the weights of three
  1-process steps on the whole global batch (float tolerance: only the order of
  the gradient sums differs). In the normal train mode, where each rank
  normalises with its own shard's statistics (per-rank BN, documented in
  `qanas.train.trainer`), the weights stay bit-identical across ranks, the loss
  stays within a few percent of the 1-process run, and a run resumed from rank
  0's checkpoint reproduces the uninterrupted 2-process run bit for bit;
* FairNAS paths: identical on both ranks and equal to the 1-process sampler's; a
  rank whose sampler was seeded differently is stopped on every rank;
* search: a sharded random and NSGA-II search write the same archive rows, in the
  same order, as one process, and each rank scored a disjoint share.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from qanas.distributed import (
    SINGLE,
    DistContext,
    env_world,
    init_distributed,
    is_main_process,
    resolve_device,
)
from qanas.errors import ConfigError
from qanas.train.sharding import GlobalBatchShard, all_reduce_gradients, check_global_batch
from tests.support import dist_worker as worker

WORKER = Path(__file__).resolve().parents[1] / "support" / "dist_worker.py"
ROOT = WORKER.parents[2]


def _rank_stderr(log_dir: Path) -> str:
    """Each rank's own stderr (torchrun `--redirects 2` files), newest attempt last."""
    parts = []
    for path in sorted(log_dir.rglob("stderr.log")):
        text = path.read_text(errors="replace")
        parts.append(f"--- {path.relative_to(log_dir)} ---\n{text[-3000:]}")
    return "\n".join(parts) or "(no rank wrote to stderr)"


def _torchrun(mode: str, out: Path) -> str:
    """Runs the worker on 2 local processes; returns its stdout.

    Each rank's stderr goes to its own file, so a failure reports the ranks' errors
    rather than the launcher's summary. A rank killed by a signal (gloo aborts the
    process with std::terminate when a TCP pair breaks, which a loaded 2-core CI
    machine has shown twice) is retried once in a fresh folder, with a warning that
    carries the first attempt's rank logs; a Python error in a rank fails at once.
    """
    env = {**os.environ, "QANAS_QUIET": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    env.pop("WORLD_SIZE", None)
    for attempt in (1, 2):
        run_out = out if attempt == 1 else out.with_name(out.name + "-retry")
        log_dir = run_out.with_name(run_out.name + "-logs")
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
               "2", "--log-dir", str(log_dir), "--redirects", "2", str(WORKER), mode,
               str(run_out)]
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=240)
        if proc.returncode == 0:
            if run_out != out:
                shutil.rmtree(out)
                run_out.rename(out)
            return proc.stdout
        signalled = "Signal " in proc.stderr and "exitcode  : -" in proc.stderr
        if attempt == 2 or not signalled:
            pytest.fail(f"torchrun {mode} exited {proc.returncode}\n{_rank_stderr(log_dir)}\n"
                        f"--- launcher ---\n{proc.stderr[-1500:]}")
        warnings.warn(f"torchrun {mode}: a rank was killed by a signal; retrying once\n"
                      f"{_rank_stderr(log_dir)}", stacklevel=2)
    raise AssertionError("unreachable")


# -- fast: helpers in one process -------------------------------------------------------
def test_env_world_reads_torchrun_variables_and_names_bad_ones():
    assert env_world({}) is None
    env = {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "MASTER_ADDR": "h",
           "MASTER_PORT": "29500"}
    assert env_world(env) == {"rank": 1, "world_size": 2, "local_rank": 1}
    with pytest.raises(ConfigError, match="RANK='x' is not an integer"):
        env_world({**env, "RANK": "x"})
    with pytest.raises(ConfigError, match="RANK=2 is not in 0..WORLD_SIZE-1"):
        env_world({**env, "RANK": "2"})
    with pytest.raises(ConfigError, match="MASTER_PORT is not set"):
        env_world({k: v for k, v in env.items() if k != "MASTER_PORT"})


def test_without_torchrun_everything_is_the_single_process_identity(monkeypatch):
    for name in ("WORLD_SIZE", "RANK"):
        monkeypatch.delenv(name, raising=False)
    ctx = init_distributed("cpu")
    assert ctx == SINGLE and ctx.is_main and not ctx.is_distributed and is_main_process()
    assert ctx.broadcast_object({"a": 1}) == {"a": 1} and ctx.all_gather_object(3) == [3]
    t = torch.arange(3.0)
    assert ctx.all_reduce_sum_(t) is t and torch.equal(t, torch.arange(3.0))
    ctx.check_same("x", "nothing")  # one rank always agrees with itself
    assert ctx.on_main(lambda: 7) == 7
    with pytest.raises(ConfigError, match="boom"):
        ctx.on_main(lambda: (_ for _ in ()).throw(ConfigError("boom")))
    extra = torch.tensor([2.5], dtype=torch.float64)
    assert all_reduce_gradients([torch.nn.Parameter(torch.ones(2))], extra, ctx) is extra


def test_non_main_rank_prints_nothing(monkeypatch, capsys):
    from qanas.cli import main as cli

    monkeypatch.setenv("RANK", "1")
    assert cli.main(["targets", "--json"]) == 0
    assert capsys.readouterr().out == ""
    monkeypatch.setenv("RANK", "0")
    assert cli.main(["targets", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)


def test_devices_resolve_or_name_the_fix():
    assert resolve_device("cpu").type == "cpu"
    with pytest.raises(ConfigError, match="use cpu or cuda"):
        resolve_device("banana")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="--device cpu"):
            resolve_device("cuda")
    else:
        assert resolve_device("cuda", local_rank=0) == torch.device("cuda", 0)


@pytest.mark.parametrize("drop_last", [True, False])
def test_shards_are_disjoint_and_rebuild_every_global_batch(drop_last):
    from qanas.data.loader import SeededSampler

    data, batch, world = list(range(20)), 6, 3

    def base():
        return SeededSampler(data, True, torch.Generator().manual_seed(5))

    keys = list(base())
    batches = [keys[i:i + batch] for i in range(0, len(keys), batch)]
    if drop_last:
        batches = [b for b in batches if len(b) == batch]
    shards = [GlobalBatchShard(base(), batch, r, world, drop_last) for r in range(world)]
    per_rank = [list(s) for s in shards]
    assert [len(s) for s in shards] == [len(p) for p in per_rank]
    local = batch // world
    rebuilt = [sum((p[b * local:(b + 1) * local] for p in per_rank), []) for b in
               range(len(batches))]
    assert rebuilt == batches
    flat = sum(per_rank, [])
    assert len(flat) == len(set(flat))


def test_global_batch_must_split_evenly():
    assert check_global_batch(8, 2) == 4
    with pytest.raises(ConfigError, match="pass --batch-size 6"):
        check_global_batch(5, 3)


def test_rank_context_reports_its_place():
    ctx = DistContext(rank=1, world_size=4, local_rank=1, backend="gloo")
    assert ctx.is_distributed and not ctx.is_main


# -- slow: two processes under torchrun -------------------------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist-train")
    stdout = _torchrun("train", out)
    ranks = [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(2)]
    return out, stdout, ranks


@pytest.mark.slow
def test_two_processes_train_like_one_process_on_the_global_batch(trained, tmp_path):
    from qanas.train import SupernetTrainer, load_checkpoint

    out, _, ranks = trained
    assert all(r["world_size"] == 2 for r in ranks)
    # BN in eval mode: 3 sharded SGD steps == 3 steps on the whole global batch.
    ref = SupernetTrainer(worker.train_config(optimizer="sgd", epochs=1), tmp_path / "ref")
    initial = worker.params(ref.model)
    losses, batches = worker.eval_bn_steps(ref)
    image, mask = batches[0]
    assert torch.equal(torch.cat([r["first_shard"][0] for r in ranks]), image)
    assert torch.equal(torch.cat([r["first_shard"][1] for r in ranks]), mask)
    expected = worker.params(ref.model)
    for r in ranks:
        assert r["eval_bn_losses"] == pytest.approx(losses, rel=1e-6)
        assert expected.keys() == r["eval_bn_params"].keys()
        for name, value in expected.items():
            torch.testing.assert_close(r["eval_bn_params"][name], value, rtol=1e-5, atol=1e-6)
    moved = max(float((value - initial[name]).abs().max()) for name, value in expected.items())
    assert moved > 1e-3  # the steps really changed the weights that the ranks agree on

    # Train mode (per-rank BN): identical weights on both ranks, loss close to 1 process.
    for name, value in ranks[0]["fit_params"].items():
        assert torch.equal(value, ranks[1]["fit_params"][name]), name
    single = SupernetTrainer(worker.train_config(), tmp_path / "single").fit()
    for two, one in zip(ranks[0]["fit"]["history"], single["history"], strict=True):
        assert two["loss"] == pytest.approx(one["loss"], rel=0.05)

    # Rank 0's checkpoint resumes under torchrun to the uninterrupted run, bit for bit.
    full = load_checkpoint(out / "full" / "supernet.pt")
    resumed = load_checkpoint(out / "resumed" / "supernet.pt")
    assert resumed["epoch"] == full["epoch"] == 2 and resumed["step"] == full["step"]
    for key, value in full["model"].items():
        assert torch.equal(value, resumed["model"][key]), key
    assert resumed["history"][-1]["loss"] == full["history"][-1]["loss"]


@pytest.mark.slow
def test_fairnas_paths_are_identical_on_every_rank_and_checked(trained, tmp_path):
    from qanas.train import SupernetTrainer

    _, _, ranks = trained
    assert ranks[0]["fit_paths"] == ranks[1]["fit_paths"]
    assert ranks[0]["eval_bn_paths"] == ranks[1]["eval_bn_paths"]
    steps = ranks[0]["fit_paths"]
    assert len(steps) == 4 and all(len(p) == 4 for p in steps)  # 2 epochs x 2 steps, m = 4
    single = SupernetTrainer(worker.train_config(), tmp_path / "one")
    assert [[c.to_str() for c in single.sampler.next_paths()] for _ in steps] == steps
    for r in ranks:  # the rank with another sampler seed was stopped, on both ranks
        assert "differ across ranks" in r["mismatch_caught"]


@pytest.mark.slow
def test_train_supernet_cli_under_torchrun_prints_one_result(trained):
    out, stdout, ranks = trained
    assert all(r["cli_codes"] == [0, 2, 2] for r in ranks)  # every rank stops on an error
    lines = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 3  # one object per command, not per rank
    result, error, refused = lines
    assert refused["error_type"] == "OutputExistsError" and "--force" in refused["error"]
    assert result["epochs"] == 1 and result["checkpoint"].endswith("supernet.pt")
    assert json.loads((out / "cli" / "config.json").read_text())["config"]["world_size"] == 2
    assert "multiple of the 2 processes" in error["error"]
    assert not (out / "bad").exists()


def _rows(path: Path) -> list[tuple]:
    with sqlite3.connect(path) as conn:
        cur = conn.execute("SELECT * FROM evals ORDER BY rowid")
        names = [d[0] for d in cur.description]
        return [tuple(v for n, v in zip(names, row, strict=True) if n != "timestamp")
                for row in cur.fetchall()]


@pytest.mark.slow
def test_sharded_search_writes_the_rows_of_one_process(tmp_path, monkeypatch, capsys):
    from qanas.cli import main as cli
    from qanas.search import job as search_job
    from qanas.space import get_space
    from tests.support.fakes import SIZE, FakeScorer

    out = tmp_path / "two"
    stdout = _torchrun("search", out)
    assert len([line for line in stdout.splitlines() if line.startswith("{")]) == 2

    space = get_space("squeezenas-small")
    scorer = FakeScorer(space)
    monkeypatch.setattr(search_job, "build_scorer", worker.fake_build_scorer(scorer, space, SIZE))
    for name in ("WORLD_SIZE", "RANK"):
        monkeypatch.delenv(name, raising=False)
    for algo, budget in worker.SEARCHES:
        assert cli.main(["search", *worker.SEARCH_ARGS, "--algo", algo, "--budget", str(budget),
                         "--out", str(tmp_path / "one" / algo)]) == 0
        one = _rows(tmp_path / "one" / algo / "archive.sqlite")
        assert len(one) == budget
        assert _rows(out / algo / "archive.sqlite") == one
        front = json.loads((out / algo / "front.json").read_text())["front"]
        assert front == json.loads((tmp_path / "one" / algo / "front.json").read_text())["front"]
    capsys.readouterr()
    # Each subnet was scored once, by one rank, and both ranks did part of the work.
    shares = [(out / f"scored-rank{r}.txt").read_text().split() for r in range(2)]
    assert shares[0] and shares[1]
    assert sorted(shares[0] + shares[1]) == sorted(scorer.calls)
    assert len(scorer.calls) == sum(budget for _, budget in worker.SEARCHES)
