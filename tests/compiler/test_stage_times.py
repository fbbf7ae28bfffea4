"""`compiler.stage_times`: CPU seconds per compiler stage, inner stages counted once."""

from __future__ import annotations

import time

import pytest

from compiler.plan_only import plan_model_memory
from compiler.stage_times import StageTimes, stage
from compiler.workspace import ScratchCache
from tests.support.qdq_models import brevitas_block_model


def _spin(seconds: float) -> None:
    """Burns `seconds` of this thread's CPU time."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def test_inner_stage_is_counted_once_in_itself():
    times = StageTimes()
    with times.active():
        with stage("outer"):
            _spin(0.02)
            with stage("inner"):
                _spin(0.05)
        with stage("inner"):
            _spin(0.01)
    assert times.calls == {"outer": 1, "inner": 2}
    assert 0.02 <= times.seconds["outer"] < 0.05
    assert times.seconds["inner"] >= 0.06
    assert times.total() == pytest.approx(sum(times.seconds.values()))


def test_stages_outside_an_active_recorder_are_not_recorded():
    times = StageTimes()
    with stage("before"):
        _spin(0.001)
    with times.active():
        pass
    with stage("after"):
        _spin(0.001)
    assert times.seconds == {}


def test_plan_only_marks_every_stage_of_the_pipeline(tmp_path):
    model = brevitas_block_model(tmp_path, size=32)
    times = StageTimes()
    with times.active():
        plan_model_memory(model, "host", scratch_cache=ScratchCache(), measure_unfused=False)
    assert {"import", "integer lowering", "techniques", "offload", "legalize/fuse",
            "kernel scratch", "plan"} <= set(times.seconds)
    assert all(v >= 0 for v in times.seconds.values())
    with times.active():  # a second plan adds to the same stages
        plan_model_memory(model, "host", measure_unfused=False)
    assert times.calls["import"] == 2
