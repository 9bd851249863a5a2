"""A task sets its record's outcome: an `outcome` string beside the outputs."""

from __future__ import annotations

import pytest

import smttask
from smttask import RecordStoreView, TaskDefinitionError, TaskExecutionError

TASKS = """
import math
from smttask import RecordedTask, TaskOutput, WithOutcome

class Polar(TaskOutput):
    r: float
    θ: float

@RecordedTask
def polar(x: float, y: float) -> Polar:
    r = math.hypot(x, y)
    return {"r": r, "θ": math.atan2(y, x), "outcome": "on the unit circle" if r == 1 else "off"}

@RecordedTask
def fit(n: int) -> float:
    return WithOutcome(n / 2, f"converged after {n} steps")

@RecordedTask
def pair(n: int) -> Polar:
    return WithOutcome((float(n), 0.0), "a tuple wrapped with its outcome")

@RecordedTask
def bad_outcome(n: int) -> Polar:
    return {"r": 1.0, "θ": 0.0, "outcome": 42}
"""


def test_dict_with_outcome_sets_the_record_outcome(proj):
    tasks = proj.module(TASKS)
    task = tasks.polar(x=0.0, y=1.0)
    assert task.run() == (1.0, pytest.approx(1.5707963267948966))
    rec = RecordStoreView().get(task.record_label)
    assert rec.status == "finished"
    assert rec.outcome.splitlines()[0] == "on the unit circle"
    # The outcome is not an output: no file, and the result has only r and θ.
    assert sorted(p.name.split("_", 1)[1] for p in rec.output_files) == ["r.json", "θ.json"]
    assert task.run()._fields == ("r", "θ")


def test_one_output_task_sets_its_outcome_with_WithOutcome(proj):
    tasks = proj.module(TASKS)
    task = tasks.fit(n=30)
    assert task.run() == 15.0
    assert RecordStoreView().get(task.record_label).outcome == "converged after 30 steps"
    assert tasks.pair(n=3).run() == (3.0, 0.0)
    assert RecordStoreView().latest.outcome == "a tuple wrapped with its outcome"


def test_newest_record_first_and_outcome_per_run(proj):
    tasks = proj.module(TASKS)
    tasks.polar(x=3.0, y=4.0).run()
    tasks.polar(x=1.0, y=0.0).run()
    assert [r.outcome for r in RecordStoreView()] == ["on the unit circle", "off"]


def test_a_non_string_outcome_is_a_clear_failure(proj):
    tasks = proj.module(TASKS)
    task = tasks.bad_outcome(n=1)
    with pytest.raises(TaskExecutionError, match="outcome must be a string, not int"):
        task.run()
    rec = RecordStoreView().get(task.record_label)
    assert rec.status == "crashed" and "outcome must be a string" in rec.outcome


def test_outcome_is_a_forbidden_output_name():
    with pytest.raises(TaskDefinitionError, match="'outcome' cannot be an output name"):
        @smttask.RecordedTask
        def f(x: float) -> _Outcome:
            return {"outcome": "x", "value": x}


class _Outcome(smttask.TaskOutput):
    value: float
    outcome: str


def test_outcome_without_recording_is_dropped_not_an_error():
    @smttask.MemoizedTask
    def half(n: int) -> float:
        return smttask.WithOutcome(n / 2, "fine")

    assert half(n=3).run() == 1.5
