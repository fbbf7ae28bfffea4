"""`qanas spaces`: list the registered search spaces with their size."""

from __future__ import annotations

import argparse

from qanas.cli.command import Command


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    del parser


def _run(args: argparse.Namespace) -> dict:
    from qanas.space import get_space, list_spaces

    spaces = []
    for name in list_spaces():
        space = get_space(name)
        spaces.append({
            "name": name,
            "decisions": len(space.decisions),
            "cardinality": space.cardinality,
            "seed": space.seed_config().to_str(),
        })
    return {"spaces": spaces}


COMMAND = Command("spaces", "list the registered search spaces", _add_arguments, _run)
