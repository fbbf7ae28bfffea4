"""Shared pytest setup and the fixtures more than one test module uses.

Quiet progress bars, one torch thread, the summary of refused ONNX conformance cases;
helper modules are in tests/support/."""

from __future__ import annotations

import os

import pytest

from qanas.search import job as search_job
from qanas.space import get_space
from tests.support.fakes import SIZE, FakeScorer

os.environ.setdefault("QANAS_QUIET", "1")


def pytest_configure(config):
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover
        pass


def pytest_terminal_summary(terminalreporter):
    """Lists the ONNX conformance cases qanas refused, with the reason, so gaps are visible."""
    refused = sorted(value for report in terminalreporter.stats.get("passed", [])
                     for key, value in getattr(report, "user_properties", ())
                     if key == "conformance_refused")
    if refused:
        terminalreporter.section(f"ONNX conformance: {len(refused)} cases refused")
        for line in refused:
            terminalreporter.write_line(line)


@pytest.fixture
def fake_scorer(monkeypatch):
    space = get_space("squeezenas-small")
    scorer = FakeScorer(space)

    def build(args):
        return search_job.ScorerSetup(scorer, space, 4, SIZE, "f" * 64,
                                      {"fake": True, "seed": args.seed})

    monkeypatch.setattr(search_job, "build_scorer", build)
    return scorer


@pytest.fixture
def any_extra_macs(monkeypatch):
    """Lifts the bound on extra MACs: halos are a large share of a tiny model's MACs."""
    from compiler.passes import patch_stage

    monkeypatch.setattr(patch_stage, "MAX_EXTRA_MACS", 10.0)
