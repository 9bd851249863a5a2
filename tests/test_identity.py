"""One object per task: the same class and digest give the same, weakly held, object."""

from __future__ import annotations

import abc
import gc
import logging
import pickle
import weakref

import smttask
from smttask import MemoizedTask, Task, UnpureMemoizedTask


@MemoizedTask
def square(x: float) -> float:
    return x * x


@MemoizedTask
def total(a: float, b: float = 0.0) -> float:
    return a + b


def test_same_class_and_digest_give_the_same_object():
    t = square(x=2.0)
    assert square(x=2.0) is t
    assert square(x=2) is t  # validated inputs: 2 and 2.0 are the same task
    assert square(2.0) is t
    assert square(x=3.0) is not t
    assert total(a=1.0) is total(a=1.0, b=0.0)


def test_from_desc_returns_the_live_task(proj):
    tasks = proj.module("""
        from smttask import RecordedTask

        @RecordedTask
        def double(x: float) -> float:
            return 2 * x

        @RecordedTask
        def plus(y: float, z: float) -> float:
            return y + z
    """)
    task = tasks.plus(y=tasks.double(x=1.0), z=3.0, reason="check")
    assert Task.from_desc(task.desc) is task
    assert Task.from_desc(task.save("tasks")) is task
    assert tasks.double(x=1.0) is task.inputs.y  # upstream tasks are shared too


def test_shared_object_shares_the_result_and_the_run_state():
    calls = []

    @MemoizedTask(cache=False)
    def noisy(n: int) -> list[int]:
        calls.append(n)
        return [n]

    a = noisy(n=1)
    a.run()
    assert noisy(n=1).result_source == "run"  # the state of a's run, seen through the twin


def test_tasks_are_held_weakly():
    t = square(x=11.0)
    ref = weakref.ref(t)
    del t
    gc.collect()
    assert ref() is None  # nothing in smttask kept it alive
    u = square(x=11.0)  # a new object, shared from now on
    assert square(x=11.0) is u


def test_a_new_reason_replaces_the_old_one_with_a_warning(caplog):
    t = square(x=5.0, reason="first try")
    assert square(x=5.0).reason == "first try"  # no reason given: the old one stays
    with caplog.at_level(logging.WARNING, logger="smttask.task"):
        again = square(x=5.0, reason="second try")
    assert again is t and t.reason == "second try"
    assert "reason 'first try' replaced by 'second try'" in caplog.text


def test_unpure_tasks_are_not_shared(tmp_path):
    @UnpureMemoizedTask
    def listing(path: str) -> list[str]:
        return sorted(p.name for p in tmp_path.iterdir())

    assert listing(path="x") is not listing(path="x")  # each object is a fresh look


def test_callable_class_with_its_own_metaclass_becomes_a_task():
    class Base(abc.ABC):  # noqa: B024 - a user's ABC, not meant to be abstract
        pass

    class Scale(Base):
        def __call__(self, x: float, k: float = 2.0) -> float:
            return x * k

    task_cls = smttask.MemoizedTask(Scale)
    assert task_cls(x=1.0) is task_cls(x=1.0)
    assert task_cls(x=1.0).run() == 2.0


def test_pickled_task_comes_back_as_the_live_object():
    t = square(x=7.0)
    assert pickle.loads(pickle.dumps(t)) is t


def test_the_registry_forgets_dropped_tasks():
    for n in range(3000):
        square(x=float(n) + 0.5)  # built and dropped at once
    assert len(square._live.refs) < 3000  # dead entries are purged as it grows
