"""`qanas targets [--json]`: the registered targets and their memory budgets."""

from __future__ import annotations

import argparse

from qanas.cli.command import Command


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="*", help="only these targets (default: all)")


def _run(args: argparse.Namespace) -> dict:
    from targets import get_target, list_targets

    names = args.names or list_targets()
    targets = [get_target(n).to_dict() for n in names]  # an unknown name lists the valid ones
    if not args.json:
        for t in targets:
            mem = (f"flash {t['flash_bytes'] // 1024} KiB, SRAM {t['sram_bytes'] // 1024} KiB"
                   if t["sram_bytes"] else "no memory budget")
            clock = f"{t['clock_hz'] / 1e6:g} MHz" if t["clock_hz"] else "-"
            print(f"{t['name']:<16} {t['runner']:<9} {clock:>8}  {mem:<32} {t['description']}")
        return {"count": len(targets)}
    return {"targets": targets}


COMMAND = Command("targets", "list the deployment targets with their memory budgets",
                  _add_arguments, _run)
