"""Iterative tasks: the step count outside the hash, resuming from saved steps."""

from __future__ import annotations

import pytest

from smttask import RecordedIterativeTask, TaskDefinitionError, TaskOutput
from smttask.view import RecordStoreView

ODE = """
from smttask import RecordedIterativeTask, RecordedTask, TaskOutput

CALLS = []

class State(TaskOutput):
    x: float
    n: int

@RecordedIterativeTask("n", map={"x": "x0", "n": "start_n"})
def decay(x0: float, rate: float, dt: float, n: int, start_n: int = 0) -> State:
    CALLS.append((start_n, n))
    x = x0
    for _ in range(start_n, n):
        x = x - rate * x * dt
    return x, n

@RecordedTask
def final(state: State) -> float:
    return state.x
"""


def exact(n, x0=1.0, rate=0.5, dt=0.1):
    return x0 * (1 - rate * dt) ** n


def test_resume_scenarios_with_execution_counted(proj):
    tasks = proj.module(ODE)
    make = lambda n: tasks.decay(x0=1.0, rate=0.5, dt=0.1, n=n)  # noqa: E731
    assert make(2).run().x == pytest.approx(exact(2))
    assert tasks.CALLS == [(0, 2)]
    assert make(2).run().x == pytest.approx(exact(2))  # exact match: loaded
    assert tasks.CALLS == [(0, 2)]
    four = make(4)
    assert four.run().x == pytest.approx(exact(4))  # 2 -> 4 resumes
    assert tasks.CALLS[-1] == (2, 4) and four.resumed_from == 2
    assert make(1).run().x == pytest.approx(exact(1))  # nothing smaller: from scratch
    assert tasks.CALLS[-1] == (0, 1)
    assert make(3).run().x == pytest.approx(exact(3))  # 3 resumes from 2, not from 4
    assert tasks.CALLS[-1] == (2, 3)
    rec = RecordStoreView().get(four.record_label)
    earlier = RecordStoreView().filter.params(eq={"n": 2}).latest
    assert f"Resumed from step 2 of 4 (the result of record {earlier.label})" in rec.outcome
    assert rec.inputs["n"] == 4 and rec.inputs["start_n"] == 0  # the task as asked


def test_digest_shows_the_step_and_downstream_sees_it(proj):
    tasks = proj.module(ODE)
    a, b = tasks.decay(x0=1.0, rate=0.5, dt=0.1, n=2), tasks.decay(x0=1.0, rate=0.5, dt=0.1, n=4)
    ha, hb = a.digest.split("__"), b.digest.split("__")
    assert ha[0] == hb[0] and ha[1] == "n_2" and hb[1] == "n_4"
    assert tasks.final(state=a).digest != tasks.final(state=b).digest
    a.run()
    assert sorted(p.name for p in (proj.root / "data/decay").iterdir()) == [
        f"{a.digest}_n.json", f"{a.digest}_x.json"]


def test_a_larger_saved_step_is_never_truncated(proj):
    tasks = proj.module(ODE)
    tasks.decay(x0=2.0, rate=0.5, dt=0.1, n=4).run()
    assert tasks.decay(x0=2.0, rate=0.5, dt=0.1, n=3).run().x == pytest.approx(exact(3, 2.0))
    assert tasks.CALLS == [(0, 4), (0, 3)]
    assert tasks.decay(x0=2.0, rate=0.5, dt=0.1, n=4).run().n == 4  # still there


def test_corrupt_saved_step_falls_back_to_an_earlier_one(proj):
    tasks = proj.module(ODE)
    for n in (2, 3):
        tasks.decay(x0=1.0, rate=0.5, dt=0.1, n=n).run()
    three = tasks.decay(x0=1.0, rate=0.5, dt=0.1, n=3)
    (proj.root / "data/decay" / f"{three.digest}_x.json").resolve().write_text("{garbage")
    five = tasks.decay(x0=1.0, rate=0.5, dt=0.1, n=5)
    assert five.run().x == pytest.approx(exact(5))
    assert tasks.CALLS[-1] == (2, 5) and five.resumed_from == 2


def test_recompute_starts_from_scratch(proj):
    tasks = proj.module(ODE)
    tasks.decay(x0=1.0, rate=0.5, dt=0.1, n=2).run()
    tasks.decay(x0=1.0, rate=0.5, dt=0.1, n=6).run(recompute=True)
    assert tasks.CALLS == [(0, 2), (0, 6)]


def test_task_file_round_trip_keeps_the_step(proj):
    tasks = proj.module(ODE)
    t = tasks.decay(x0=1.0, rate=0.5, dt=0.1, n=7)
    from smttask import Task

    again = Task.from_desc(t.save(proj.root / "tasks"))
    assert again.digest == t.digest and again.digest.endswith("__n_7")


class Out(TaskOutput):
    x: float
    n: int


class NoN(TaskOutput):
    x: float


class FloatN(TaskOutput):
    x: float
    n: float


def test_declaration_errors_at_decoration_time():
    def body(x0: float, n: int, start_n: int = 0) -> Out:
        return x0, n

    with pytest.raises(TaskDefinitionError, match="unknown input 'y0'"):
        RecordedIterativeTask("n", map={"x": "y0"})(body)
    with pytest.raises(TaskDefinitionError, match="unknown output 'y'"):
        RecordedIterativeTask("n", map={"y": "x0"})(body)
    with pytest.raises(TaskDefinitionError, match="'m' is not an input"):
        RecordedIterativeTask("m", map={"x": "x0"})(body)
    with pytest.raises(TaskDefinitionError, match="map must say"):
        RecordedIterativeTask("n", map={})(body)

    def no_n(x0: float, n: int) -> NoN:
        return NoN(x=x0)

    with pytest.raises(TaskDefinitionError, match="must also be an output"):
        RecordedIterativeTask("n", map={"x": "x0"})(no_n)

    def float_n(x0: float, n: int) -> FloatN:
        return x0, float(n)

    with pytest.raises(TaskDefinitionError, match="iteration output 'n' must be an int"):
        RecordedIterativeTask("n", map={"x": "x0"})(float_n)
    with pytest.raises(TaskDefinitionError, match="required"):
        RecordedIterativeTask(body)  # type: ignore[arg-type]
