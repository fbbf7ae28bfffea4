"""Cost of keeping `archive.sqlite` self-contained: rollback journal vs checkpointed WAL.

Every `EvalArchive.put` is one fsynced transaction. This times N puts of
search-sized rows (about 2 kB of JSON extras, like a per-class IoU list) for:

* ``delete``: rollback journal, the default (rows land in the main file at commit);
* ``wal``: write-ahead log checkpointed with ``wal_checkpoint(TRUNCATE)`` after every commit;
* ``wal, no checkpoint``: the old behaviour, for reference only: after a SIGKILL its
  rows sit in ``archive.sqlite-wal`` and the main file alone is empty.

Run it on the filesystem the run folders live on (fsync cost depends on it):

    .venv/bin/python benchmarks/archive_journal.py                 # 300 puts, in ./runs
    .venv/bin/python benchmarks/archive_journal.py --rows 1000 --dir /data/runs

It prints the median and 95th percentile milliseconds per put and the share of a
search's time they take when scoring one subnet costs `--score-s` seconds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from qanas.search.archive import EvalArchive, EvalRecord  # noqa: E402


class _UncheckpointedWal(EvalArchive):
    """The old archive: WAL without a checkpoint per commit (reference only)."""

    def _after_commit(self) -> None:
        pass


def _record(i: int) -> EvalRecord:
    return EvalRecord(arch=f"space:a{i:06d}", target="host", metric_set="m" * 16, miou=0.5,
                      miou_fp32=0.5, macs=i, params=i, flash_bytes=i, sram_bytes=i,
                      latency=float(i), latency_unit="cycles", latency_source="analytic:x",
                      checkpoint_sha256="ab" * 32, seed=0, versions={"torch": "x"},
                      extra={"per_class": [0.123456789] * 100})


def time_puts(kind: str, folder: Path, rows: int) -> list[float]:
    """Seconds of each of `rows` puts into a fresh archive of `kind`."""
    path = folder / f"{kind.replace(' ', '_').replace(',', '')}.sqlite"
    archive = (_UncheckpointedWal(path, journal="wal") if kind == "wal, no checkpoint"
               else EvalArchive(path, journal=kind))
    times = []
    with archive:
        for i in range(rows):
            start = time.perf_counter()
            archive.put(_record(i))
            times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=300)
    parser.add_argument("--dir", default="runs", help="folder on the run folders' filesystem")
    parser.add_argument("--score-s", type=float, default=1.0,
                        help="seconds to score one subnet, for the overhead share (default 1)")
    args = parser.parse_args()
    Path(args.dir).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        print(f"{args.rows} puts per mode in {Path(tmp).resolve().parent}")
        print(f"{'mode':<22}{'median ms':>10}{'p95 ms':>9}{'share of search':>17}")
        for kind in ("delete", "wal", "wal, no checkpoint"):
            times = sorted(time_puts(kind, Path(tmp), args.rows))
            median = statistics.median(times)
            p95 = times[int(0.95 * (len(times) - 1))]
            share = median / (median + args.score_s)
            print(f"{kind:<22}{median * 1e3:>10.2f}{p95 * 1e3:>9.2f}{share:>16.3%}")


if __name__ == "__main__":
    main()
