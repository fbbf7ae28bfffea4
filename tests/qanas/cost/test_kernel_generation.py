"""The committed latency tables describe the compiler's current kernels.

A table records the `compiler.version.KERNEL_GENERATION` it was measured with; the search
ignores a table of another generation (with a warning naming the rebuild). This test fails,
naming each stale table and the command that rebuilds it, until the committed tables are
measured again after a kernel change: a bump of the generation is not done until then.
"""

from __future__ import annotations

import json
from pathlib import Path

import targets.luts
from compiler.version import KERNEL_GENERATION


def test_committed_latency_tables_are_of_the_current_kernel_generation():
    stale = []
    for path in sorted(Path(targets.luts.__file__).parent.glob("*.json")):
        if path.name.endswith(".validation.json"):
            continue
        protocol = json.loads(path.read_text()).get("protocol", {})
        generation = int(protocol.get("kernel_generation", 1))
        if generation != KERNEL_GENERATION:
            stale.append(f"{path.name} (generation {generation}; rebuild: "
                         f"{protocol.get('command', 'qanas lut build')}, then qanas lut "
                         "validate)")
    assert not stale, (f"the compiler's kernels are generation {KERNEL_GENERATION} "
                       f"(compiler/version.py) but these committed tables are not: {stale}")
