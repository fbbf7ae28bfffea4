"""The `qanas` console script.

Subcommands live one per module in `qanas.cli.commands`, each exporting
`COMMAND`; they are discovered here, so adding a command is adding a file.
Every command prints one JSON object on stdout with `--json` (a readable
summary without it), progress on stderr, and exits 2 on a user error with a
message that says what to fix.
"""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import sys
import traceback

from qanas.cli.command import Command


def discover_commands() -> dict[str, Command]:
    """Imports every module of `qanas.cli.commands` and collects their `COMMAND`s."""
    import qanas.cli.commands as package

    commands: dict[str, Command] = {}
    for module in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if module.name.startswith("_"):
            continue
        mod = importlib.import_module(f"{package.__name__}.{module.name}")
        command = getattr(mod, "COMMAND", None)
        if command is None:
            continue
        if command.name in commands:
            raise RuntimeError(f"two modules define the qanas command {command.name!r}")
        commands[command.name] = command
    return commands


def build_parser(commands: dict[str, Command]) -> argparse.ArgumentParser:
    """The top-level parser with one subparser per command."""
    parser = argparse.ArgumentParser(
        prog="qanas",
        description="Quantization-aware NAS for segmentation and an int8 edge compiler.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in sorted(commands):
        command = commands[name]
        p = sub.add_parser(name, help=command.help, description=command.help)
        command.add_arguments(p)
        p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    return parser


def _user_error_types() -> tuple[type[BaseException], ...]:
    from compiler.errors import CompilerError
    from qanas.errors import QanasError
    from qanas.utils.io import OutputExistsError
    from targets.registry import UnknownNameError

    return (QanasError, CompilerError, OutputExistsError, UnknownNameError, FileNotFoundError,
            ValueError)


def _print_human(result: dict) -> None:
    for key, value in result.items():
        if isinstance(value, (dict, list)):
            value = json.dumps(value, default=str)
        print(f"{key}: {value}")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `qanas` console script; returns the exit code."""
    commands = discover_commands()
    parser = build_parser(commands)
    args = parser.parse_args(argv)
    command = commands[args.command]
    from qanas.distributed import is_main_process

    try:
        result = command.run(args)
    except _user_error_types() as exc:
        message = str(exc)
        print(f"qanas {args.command}: error: {message}", file=sys.stderr)
        if getattr(args, "json", False) and is_main_process():  # one JSON object per torchrun job
            print(json.dumps({"error": message, "error_type": type(exc).__name__}))
        if "QANAS_TRACEBACK" in __import__("os").environ:
            traceback.print_exc()
        return 2
    if not is_main_process():  # under torchrun only rank 0 prints the result
        return 0
    if args.json:
        print(json.dumps(result, default=str))
    elif command.format_text is not None:
        print(command.format_text(result))
    else:
        _print_human(result)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
