"""A search run folder's archive: opened fresh, discarded, or resumed under the same settings.

The archive records the settings it was built with (`run_settings`: the metric
set's settings, the target and the budgets); resuming under other settings would
silently start another metric set (or keep stale over-budget rows), so
`check_resume_settings` refuses it with the differing keys named, unless allowed.
"""

from __future__ import annotations

import json
from pathlib import Path

from qanas.errors import ConfigError
from qanas.search.archive import ARCHIVE_NAME, EvalArchive
from qanas.search.problem import Budgets

RUN_SETTINGS_KEY = "run_settings"


def open_archive(out: Path, resume: bool, force: bool) -> EvalArchive:
    """Opens `out`/archive.sqlite: continued with `resume`, replaced with `force`.

    Raises:
        ConfigError: both flags, or `resume` with no archive in `out`.
        OutputExistsError: an archive in `out` and neither flag.
    """
    from qanas.utils.io import OutputExistsError

    path = out / ARCHIVE_NAME
    if resume and force:
        raise ConfigError("--resume keeps the archive and --force discards it; pass one of them")
    if resume and not path.exists():
        raise ConfigError(f"--resume: no archive at {path}; start the run without --resume")
    if path.exists() and not resume:
        if not force:
            raise OutputExistsError(f"{out} already holds a search archive; pass --resume to "
                                    "continue it, --force to start over, or another --out")
        for suffix in ("", "-journal", "-wal", "-shm"):  # a stale journal must not outlive it
            Path(str(path) + suffix).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    return EvalArchive(path)


def run_settings(metric_settings: dict, target: str, budgets: Budgets) -> dict:
    """What a resumed search must share with the archive to reuse its rows, as flat JSON.

    The metric set's settings (checkpoint, data, image size, quantization, seed,
    latency table...), the target (a key of every row) and the budgets (an
    over-budget subnet is archived unscored, so a looser budget needs a rescore).
    """
    flat = {f"budget.{k}": v for k, v in budgets.__dict__.items()}
    flat.update(target=target, **metric_settings)
    return json.loads(json.dumps(flat, sort_keys=True, default=str))  # tuples -> lists


def check_resume_settings(archive: EvalArchive, settings: dict, resume: bool,
                          allow_new: bool) -> None:
    """Refuses `--resume` under settings other than the archive's, then records `settings`.

    Raises:
        ConfigError: naming every differing key with its stored and its new value.
    """
    stored = archive.get_meta(RUN_SETTINGS_KEY)
    if resume and stored is not None and stored != settings and not allow_new:
        keys = sorted(set(stored) | set(settings), key=str)
        diff = "; ".join(f"{k}: {_short(settings.get(k))} (archive: {_short(stored.get(k))})"
                         for k in keys if stored.get(k) != settings.get(k))
        raise ConfigError(
            f"--resume: these settings differ from those {archive.path} was built with: {diff}. "
            f"Under them no earlier row would be reused (a new metric set starts from zero). "
            f"Resume with the original flags, pass --allow-new-metric-set to score under the "
            f"new settings in this archive, or use another --out")
    archive.set_meta(RUN_SETTINGS_KEY, settings)


def _short(value) -> str:
    text = "unset" if value is None else str(value)
    return text if len(text) <= 80 else text[:77] + "..."
