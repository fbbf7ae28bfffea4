"""The `Command` record every `qanas` subcommand module exports as `COMMAND`."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Command:
    """A `qanas` subcommand.

    Attributes:
        name: the subcommand word, e.g. "train-supernet".
        help: one line shown by `qanas --help`.
        add_arguments: adds the command's flags to its parser (`--json` is added for you).
        run: executes the command and returns its result as a JSON-serialisable dict.
            Progress goes to stderr; the dict is printed on stdout.
        format_text: renders the result for a reader when `--json` is not given (None:
            one ``key: value`` line per entry).
    """

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], dict]
    format_text: Callable[[dict], str] | None = None
