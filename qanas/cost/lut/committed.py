"""Committed per-block latency tables (`targets/luts/`) and their exact-match lookup.

A table is used by default only where it was measured for exactly the same space,
target, input size and class count: latency entries of another resolution or
classifier width are other numbers. It must also have been measured with the
compiler's current kernels (`compiler.version.KERNEL_GENERATION`): a table of an
older generation describes kernels that no longer exist, so it is skipped (with a
warning naming the rebuild command) and the search falls back to the analytic model.
And it must describe the compiler mode the search deploys (``--optimise``, the
protocol's ``optimise``): tables measure ``speed`` builds (`TABLE_OPTIMISE`), whose
latency is a sum of block costs; a ``size`` build runs the high-resolution head as one
patch kernel, another cost, so a ``size`` search does not use them.
File names follow `lut_filename`; the match is made on the file's content, not its name.

Example:
    >>> find_lut("squeezenas-small", "cortex-m7", (64, 128), 6)  # doctest: +SKIP
    PosixPath('.../targets/luts/squeezenas-small_cortex-m7_64x128_c6.json')
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from compiler.version import KERNEL_GENERATION
from qanas.cost.lut.mode import TABLE_OPTIMISE, table_optimise
from qanas.errors import ConfigError

log = logging.getLogger(__name__)

LUT_SUFFIX = ".json"


VALIDATION_SUFFIX = ".validation.json"


def lut_dir() -> Path:
    """The folder of committed tables, installed with the `targets` package."""
    import targets.luts

    return Path(targets.luts.__file__).parent


def lut_filename(space: str, target: str, image_size: tuple[int, int], num_classes: int) -> str:
    """The conventional file name, e.g. ``squeezenas-small_cortex-m7_64x128_c6.json``."""
    h, w = image_size
    return f"{space}_{target}_{int(h)}x{int(w)}_c{int(num_classes)}{LUT_SUFFIX}"


def validation_path(lut_path: str | Path) -> Path:
    """Where the validation report of the table at `lut_path` is written (next to it)."""
    path = Path(lut_path)
    stem = path.name[:-len(LUT_SUFFIX)] if path.name.endswith(LUT_SUFFIX) else path.name
    return path.with_name(stem + VALIDATION_SUFFIX)


def committed_luts(root: str | Path | None = None) -> list[Path]:
    """Table files under `root` (default `lut_dir()`), validation reports excluded."""
    folder = Path(root) if root is not None else lut_dir()
    return sorted(p for p in folder.glob(f"*{LUT_SUFFIX}")
                  if not p.name.endswith(VALIDATION_SUFFIX))


def _header(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def table_generation(protocol: dict) -> int:
    """The kernel generation a table was measured with (tables before the field: 1)."""
    return int(protocol.get("kernel_generation", 1))


def _matching_tables(space, target, image_size, num_classes, root) -> list[tuple[Path, dict]]:
    want = (getattr(space, "name", space), getattr(target, "name", target),
            [int(image_size[0]), int(image_size[1])], int(num_classes))
    found = []
    for path in committed_luts(root):
        data = _header(path)
        if data is None or data.get("fixed") is None:
            continue
        have = (data.get("space"), (data.get("protocol") or {}).get("target"),
                [int(v) for v in data.get("image_size") or []], data.get("num_classes"))
        if have == want:
            found.append((path, data.get("protocol") or {}))
    return found


def find_lut(space, target, image_size: tuple[int, int], num_classes: int,
             root: str | Path | None = None, optimise: str = TABLE_OPTIMISE) -> Path | None:
    """The committed table measured for exactly this space, target, size, class count
    and compiler mode.

    Args:
        space, target: names, or a `SearchSpace` / `Target` (their names are used).
        image_size: input (H, W).
        num_classes: classifier width.
        root: folder to look in (default `lut_dir()`).
        optimise: the ``--optimise`` mode the latencies must describe.

    A table without its fixed part (an unfinished build) is not a match, and neither is
    one measured with another `KERNEL_GENERATION` (see `stale_luts`) or in another mode
    (see `other_mode_luts`).

    Returns:
        Its path, or None when no committed table matches.
    """
    for path, protocol in _matching_tables(space, target, image_size, num_classes, root):
        if (table_generation(protocol) == KERNEL_GENERATION
                and table_optimise(protocol) == optimise):
            return path
    return None


def other_mode_luts(space, target, image_size: tuple[int, int], num_classes: int,
                    optimise: str, root: str | Path | None = None) -> list[Path]:
    """Current-generation committed tables for this setting measured in a mode other than
    `optimise`."""
    return [path for path, protocol in _matching_tables(space, target, image_size,
                                                         num_classes, root)
            if table_generation(protocol) == KERNEL_GENERATION
            and table_optimise(protocol) != optimise]


def stale_luts(space, target, image_size: tuple[int, int], num_classes: int,
               root: str | Path | None = None) -> list[Path]:
    """Committed tables for this setting measured with another kernel generation."""
    return [path for path, protocol in _matching_tables(space, target, image_size,
                                                         num_classes, root)
            if table_generation(protocol) != KERNEL_GENERATION]


def rebuild_command(space: str, target: str, image_size: tuple[int, int],
                    num_classes: int) -> str:
    """The `qanas lut build` command that measures a table for this setting."""
    return (f"qanas lut build --space {space} --target {target} --image-size "
            f"{int(image_size[0])} {int(image_size[1])} --num-classes {int(num_classes)}")


def check_lut_matches(lut, space: str, target: str, image_size: tuple[int, int],
                      num_classes: int, name: str = "--lut",
                      optimise: str | None = None) -> None:
    """Raises `ConfigError` unless the `LatencyLUT` was measured for exactly this setting
    (and, when `optimise` is given, compiled in that ``--optimise`` mode)."""
    have = {"space": lut.space, "target": lut.protocol.get("target"),
            "image_size": list(lut.image_size), "num_classes": lut.num_classes}
    want = {"space": space, "target": target, "image_size": [int(v) for v in image_size],
            "num_classes": int(num_classes)}
    diff = {k: (have[k], want[k]) for k in want if have[k] != want[k]}
    if diff:
        detail = ", ".join(f"{k} {a!r} (needed {b!r})" for k, (a, b) in diff.items())
        raise ConfigError(f"{name} was measured for {detail}; build a matching table with "
                          f"`{rebuild_command(space, target, image_size, num_classes)}`")
    generation = table_generation(lut.protocol)
    if generation != KERNEL_GENERATION:
        raise ConfigError(
            f"{name} was measured with kernel generation {generation}, and this compiler's "
            f"kernels are generation {KERNEL_GENERATION} (compiler/version.py): its latencies "
            f"describe kernels that no longer exist. Rebuild it with "
            f"`{rebuild_command(space, target, image_size, num_classes)}`")
    mode = table_optimise(lut.protocol)
    if optimise is not None and mode != optimise:
        raise ConfigError(
            f"{name} measures --optimise {mode} builds, and this search plans for "
            f"--optimise {optimise}: its latencies describe other kernels. Search with "
            f"--optimise {mode} (and compile the chosen subnets with it), or drop --lut "
            "for the analytic latency model")


def latency_lut_model(space, target: str, image_size: tuple[int, int], num_classes: int,
                      path: str | Path | None = None, optimise: str = TABLE_OPTIMISE):
    """The `LUTLatencyModel` for a search deploying `--optimise optimise` builds: `path`
    checked to match, else a committed match.

    Returns:
        `(model, path)`, or `(None, None)` when no path is given and none is committed
        (a committed table of another mode is named in a warning).
    """
    from qanas.cost.lut.table import LatencyLUT, LUTLatencyModel

    if path is None:
        path = find_lut(space.name, target, image_size, num_classes, optimise=optimise)
        if path is None:
            for other in other_mode_luts(space.name, target, image_size, num_classes, optimise):
                log.warning("latency table %s measures --optimise %s builds and is not used "
                            "for --optimise %s (its patch stage is not a sum of block "
                            "costs); latency is the analytic model's. Search with "
                            "--optimise %s to use the table", other,
                            table_optimise((_header(other) or {}).get("protocol") or {}),
                            optimise, TABLE_OPTIMISE)
            for stale in stale_luts(space.name, target, image_size, num_classes):
                log.warning("latency table %s was measured with older kernels (generation "
                            "%d, now %d) and is not used; rebuild it with `%s`", stale,
                            table_generation((_header(stale) or {}).get("protocol") or {}),
                            KERNEL_GENERATION,
                            rebuild_command(space.name, target, image_size, num_classes))
            return None, None
    lut = LatencyLUT.load(path)
    check_lut_matches(lut, space.name, target, image_size, num_classes,
                      name=f"latency table {path}", optimise=optimise)
    return LUTLatencyModel(lut, space), Path(path)
