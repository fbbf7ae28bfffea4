"""The CLI entry point: one JSON object with --json, the command's own text otherwise."""

from __future__ import annotations

import json

from qanas.cli import main as cli
from qanas.cli.command import Command


def _commands(monkeypatch, **extra):
    def add(parser):
        parser.add_argument("--n", type=int, default=2)

    command = Command("twice", "doubles --n", add, lambda args: {"n": args.n * 2}, **extra)
    monkeypatch.setattr(cli, "discover_commands", lambda: {"twice": command})


def test_json_and_default_text_output(monkeypatch, capsys):
    _commands(monkeypatch)
    assert cli.main(["twice", "--n", "3", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"n": 6}
    assert cli.main(["twice", "--n", "3"]) == 0
    assert capsys.readouterr().out == "n: 6\n"


def test_a_command_can_render_its_own_text(monkeypatch, capsys):
    _commands(monkeypatch, format_text=lambda r: f"the answer is {r['n']}")
    assert cli.main(["twice"]) == 0
    assert capsys.readouterr().out == "the answer is 4\n"
    assert cli.main(["twice", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"n": 4}
