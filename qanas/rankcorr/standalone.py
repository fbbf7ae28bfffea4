"""The standalone (QAT) trainings of a rank-correlation study, shared between workers.

Subnet i with seed S trains in ``out/standalone/<i>/`` (S = the config's `seed`) or
``<i>-seed<S>/``; a finished folder is reused only when it trained the same
architecture with the same recipe. Several processes on the same ``out`` split the
work through `qanas.utils.claims`: a process trains the subnets nobody has claimed,
then waits for (or takes over, if their process died) the ones claimed by others, so
the figures do not depend on the number of workers.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from qanas.rankcorr.config import RankCorrConfig


def run_folder(out: Path, i: int, seed: int, config: RankCorrConfig) -> Path:
    """``standalone/<i>`` for the config's `seed`, ``standalone/<i>-seed<S>`` for another."""
    return out / "standalone" / (f"{i:02d}" if seed == config.seed else f"{i:02d}-seed{seed}")


def finished_result(folder: Path, arch: str, recipe: dict) -> dict | None:
    """The stored result of `folder` when it trained `arch` with exactly `recipe`."""
    done = folder / "result.json"
    if not done.is_file():
        return None
    result = json.loads(done.read_text())
    if result.get("arch") != arch or result.get("standalone_config") != recipe:
        return None
    return result


def standalone_results(config: RankCorrConfig, chosen: list[str], out: Path,
                       log: Callable[[str], None] = lambda line: None,
                       poll_s: float = 10.0) -> dict[tuple[str, int], dict]:
    """Standalone (QAT) results of every chosen subnet and seed (see the module docstring).

    Returns:
        {(arch, seed): result}, each result with its ``standalone_config``.
    """
    from qanas.train.standalone import train_standalone
    from qanas.utils.claims import is_claimed_by_live_process, release, try_claim
    from qanas.utils.io import atomic_write_json

    results: dict[tuple[str, int], dict] = {}
    pending = [(i, arch, seed) for seed in config.seeds() for i, arch in enumerate(chosen)]
    while pending:
        waiting = []
        for i, arch, seed in pending:
            folder = run_folder(out, i, seed, config)
            recipe = config.standalone_config(arch, seed)
            result = finished_result(folder, arch, recipe.to_dict())
            if result is None and try_claim(folder):
                try:
                    result = finished_result(folder, arch, recipe.to_dict())
                    if result is None:
                        result = {**train_standalone(recipe, folder, progress=log),
                                  "standalone_config": recipe.to_dict()}
                        atomic_write_json(folder / "result.json", result)
                finally:
                    release(folder)
            if result is None:
                waiting.append((i, arch, seed))
                continue
            results[(arch, seed)] = result
            log(f"standalone {i + 1}/{len(chosen)} seed {seed}: int8 mIoU "
                f"{result['miou']}  {arch}")
        if waiting and waiting == pending:
            held = [run_folder(out, i, seed, config).name for i, _, seed in waiting
                    if is_claimed_by_live_process(run_folder(out, i, seed, config))]
            log(f"waiting for standalone runs {held} trained by another process")
            time.sleep(poll_s)
        pending = waiting
    return results
