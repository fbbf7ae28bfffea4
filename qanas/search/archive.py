"""The evaluation archive: every scored subnet, per target and metric set, in SQLite.

One row per (architecture string, target, metric set). The *metric set* names the
evaluation protocol (checkpoint, dataset split, image size, quantization spec...)
so that scores made under different protocols never mix; `metric_set_key` builds a
short stable key from those settings.

Crash safety. The database lives in the run directory with ``synchronous=FULL``;
every `EvalArchive.put` is one transaction (``BEGIN IMMEDIATE`` ... ``COMMIT``).
A process killed at any moment, even by SIGKILL, leaves either the whole row or
nothing: SQLite's journal rolls back the half-written transaction the next time
the file is opened. A search that resumes reads the archive first and only scores
the subnets that are missing, so no finished subnet is evaluated twice.

Self-contained file. The default rollback journal (``journal="delete"``) writes
every committed row into ``archive.sqlite`` itself, so the file alone (copied,
attached to a report, moved to another machine) holds every finished row even
after a SIGKILL; only a kill inside a commit leaves a ``-journal`` beside it,
which SQLite needs to roll that one row back. Write-ahead logging (``"wal"``) is
kept as an option and checkpointed (``wal_checkpoint(TRUNCATE)``) after every
commit for the same guarantee; without that checkpoint the rows of a killed run
sat only in ``archive.sqlite-wal``. ``benchmarks/archive_journal.py`` measures
the cost of each (docs/search.md has the figures).

Example:
    >>> archive = EvalArchive("runs/s/archive.sqlite")  # doctest: +SKIP
    >>> archive.get(cfg.to_str(), "host", key) or archive.put(record)  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from qanas.errors import QanasError
from qanas.utils.records import reject_unknown_keys

SCHEMA_VERSION = 1
ARCHIVE_NAME = "archive.sqlite"
JOURNALS = ("delete", "wal")

_COLUMNS = (
    ("arch", "TEXT NOT NULL"),
    ("target", "TEXT NOT NULL"),
    ("metric_set", "TEXT NOT NULL"),
    ("miou", "REAL"),
    ("miou_fp32", "REAL"),
    ("macs", "INTEGER NOT NULL"),
    ("params", "INTEGER NOT NULL"),
    ("flash_bytes", "INTEGER NOT NULL"),
    ("sram_bytes", "INTEGER NOT NULL"),
    ("latency", "REAL NOT NULL"),
    ("latency_unit", "TEXT NOT NULL"),
    ("latency_source", "TEXT NOT NULL"),
    ("checkpoint_sha256", "TEXT NOT NULL"),
    ("seed", "INTEGER"),
    ("versions", "TEXT NOT NULL"),
    ("extra", "TEXT NOT NULL"),
    ("timestamp", "REAL NOT NULL"),
)


class ArchiveError(QanasError, RuntimeError):
    """The archive file is corrupt, from another schema version, or a record is malformed."""


@dataclass(frozen=True)
class EvalRecord:
    """One evaluated subnet on one target under one metric set.

    Attributes:
        arch: `SubnetConfig.to_str()` of the subnet.
        target: registered target name.
        metric_set: key of the evaluation protocol (see `metric_set_key`).
        miou: quantized (int8 fake-quant) mIoU, in [0, 1]; None when not scored.
        miou_fp32: float mIoU of the same subnet; None when not scored.
        macs, params: analytic counts.
        flash_bytes: int8 weights + int32 biases + per-channel requant parameters.
        sram_bytes: peak SRAM (activation arena) from the compiler's memory planner.
        latency, latency_unit, latency_source: the latency estimate, its unit
            ("cycles", "s") and where it came from ("analytic:<model>", "lut", "measured").
        checkpoint_sha256: hash of the supernet checkpoint the scores come from.
        seed: seed of the scoring (calibration batches, BN recalibration).
        versions: library versions that shaped the result.
        extra: further metrics of the scorer (JSON-serialisable).
        timestamp: seconds since the epoch when the row was written.
    """

    arch: str
    target: str
    metric_set: str
    miou: float | None
    miou_fp32: float | None
    macs: int
    params: int
    flash_bytes: int
    sram_bytes: int
    latency: float
    latency_unit: str
    latency_source: str
    checkpoint_sha256: str = ""
    seed: int | None = None
    versions: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)
    timestamp: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EvalRecord:
        """Inverse of `to_dict`; rejects unknown keys."""
        reject_unknown_keys(cls, data, ArchiveError)
        return cls(**data)


def metric_set_key(**settings: Any) -> str:
    """A short stable key for an evaluation protocol: sha256 of its sorted JSON, 16 hex digits.

    Example:
        >>> metric_set_key(image_size=[64, 128], val_fraction=1.0) == metric_set_key(
        ...     val_fraction=1.0, image_size=[64, 128])
        True
    """
    text = json.dumps(settings, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class EvalArchive:
    """SQLite store of `EvalRecord`s keyed by (arch, target, metric_set).

    Args:
        path: the database file (created with its folder if missing).
        timeout: seconds to wait for a lock held by another process.
        journal: "delete" (rollback journal, default) or "wal" (write-ahead log,
            checkpointed into the main file after every commit). Either way
            `path` alone holds every committed row; see the module docstring.

    Example:
        >>> with EvalArchive(tmp / "archive.sqlite") as archive:  # doctest: +SKIP
        ...     archive.put(record)
        ...     archive.get(record.arch, record.target, record.metric_set) == record
        True
    """

    def __init__(self, path: str | os.PathLike, timeout: float = 30.0, *,
                 journal: str = "delete"):
        if journal not in JOURNALS:
            raise ArchiveError(f"unknown archive journal {journal!r}; choose one of "
                               f"{', '.join(JOURNALS)}")
        self.path = Path(path)
        self.journal = journal
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._conn = sqlite3.connect(str(self.path), timeout=timeout, isolation_level=None)
            # Switching an archive left in WAL mode (older qanas, or a killed "wal" run)
            # to "delete" first checkpoints its WAL into the main file.
            self._conn.execute(f"PRAGMA journal_mode={journal.upper()}")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._create()
        except sqlite3.DatabaseError as exc:
            raise ArchiveError(
                f"{self.path} is not a usable qanas archive ({exc}); move it away and rerun "
                "with --force to start a new one"
            ) from exc

    def _create(self) -> None:
        cols = ", ".join(f"{name} {kind}" for name, kind in _COLUMNS)
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            self._conn.execute(
                f"CREATE TABLE IF NOT EXISTS evals ({cols}, PRIMARY KEY (arch, target, metric_set))"
            )
            self._conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            self._conn.execute(
                "INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        (version,) = self._conn.execute(
            "SELECT value FROM meta WHERE key='schema_version'"
        ).fetchone()
        if int(version) != SCHEMA_VERSION:
            raise ArchiveError(
                f"{self.path} has archive schema {version}, this qanas reads {SCHEMA_VERSION}; "
                "start a new run directory"
            )

    # -- writing -------------------------------------------------------------------
    def put(self, record: EvalRecord) -> EvalRecord:
        """Writes `record` (replacing a row with the same key) in one transaction.

        A zero `timestamp` is replaced by the current time. Returns the stored record.
        """
        if record.timestamp == 0.0:
            record = EvalRecord(**{**record.to_dict(), "timestamp": time.time()})
        row = record.to_dict()
        for key in ("versions", "extra"):
            try:
                row[key] = json.dumps(row[key], sort_keys=True)
            except TypeError as exc:
                raise ArchiveError(f"record {record.arch}: {key} is not JSON-serialisable: {exc}") from exc
        names = [name for name, _ in _COLUMNS]
        sql = f"INSERT OR REPLACE INTO evals ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            self._conn.execute(sql, [row[n] for n in names])
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._after_commit()
        return record

    def _after_commit(self) -> None:
        """In WAL mode, moves the committed rows into the main file and empties the WAL.

        A reader holding an old snapshot (e.g. `qanas report` running alongside) can
        keep the checkpoint from finishing; the rows then reach the main file at the
        next commit's checkpoint, or when the last connection closes.
        """
        if self.journal == "wal":
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()

    def set_meta(self, key: str, value: Any) -> None:
        """Stores `value` (JSON-serialisable) under `key` in the archive's meta table."""
        if key == "schema_version":
            raise ArchiveError("schema_version is managed by the archive itself")
        text = json.dumps(value, sort_keys=True, default=str)
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            self._conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, text))
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._after_commit()

    def get_meta(self, key: str) -> Any:
        """The value stored by `set_meta` under `key`, or None."""
        row = self._conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    # -- reading -------------------------------------------------------------------
    def get(self, arch: str, target: str, metric_set: str) -> EvalRecord | None:
        """The record of `arch` on `target` under `metric_set`, or None if not evaluated."""
        cur = self._conn.execute(
            "SELECT * FROM evals WHERE arch=? AND target=? AND metric_set=?",
            (arch, target, metric_set),
        )
        row = cur.fetchone()
        return None if row is None else self._record(cur, row)

    def all(self, target: str | None = None, metric_set: str | None = None) -> list[EvalRecord]:
        """Every record (of `target` and `metric_set` when given), oldest first."""
        where, args = [], []
        for col, value in (("target", target), ("metric_set", metric_set)):
            if value is not None:
                where.append(f"{col}=?")
                args.append(value)
        sql = "SELECT * FROM evals" + (" WHERE " + " AND ".join(where) if where else "")
        cur = self._conn.execute(sql + " ORDER BY timestamp, arch", args)
        return [self._record(cur, row) for row in cur.fetchall()]

    def __iter__(self) -> Iterator[EvalRecord]:
        return iter(self.all())

    def __len__(self) -> int:
        return int(self._conn.execute("SELECT COUNT(*) FROM evals").fetchone()[0])

    def integrity_check(self) -> str:
        """SQLite's ``PRAGMA integrity_check`` result ("ok" for a sound file)."""
        return str(self._conn.execute("PRAGMA integrity_check").fetchone()[0])

    @staticmethod
    def _record(cur: sqlite3.Cursor, row: tuple) -> EvalRecord:
        data = dict(zip([d[0] for d in cur.description], row, strict=True))
        data["versions"] = json.loads(data["versions"])
        data["extra"] = json.loads(data["extra"])
        return EvalRecord(**data)

    # -- lifetime ------------------------------------------------------------------
    def close(self) -> None:
        """Closes the connection (in WAL mode SQLite checkpoints the WAL into the main file)."""
        self._conn.close()

    def __enter__(self) -> EvalArchive:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"EvalArchive({str(self.path)!r})"
