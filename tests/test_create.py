"""Create(cls): an in-memory task that builds an object; NotComputed, the "no value yet"."""

from __future__ import annotations

import pickle

import pytest

import smttask
from smttask import Create, NotComputed, Task, TaskDefinitionError, TaskInputError

GEOMETRY = """
from dataclasses import dataclass, field
from pydantic import BaseModel
from smttask import RecordedTask

CALLS = []

class Point(BaseModel):
    x: float
    y: float = 0.0

    def model_post_init(self, context):
        CALLS.append((self.x, self.y))

@dataclass
class Box:
    corner: tuple[float, float]
    size: float = 1.0
    tags: list[str] = field(default_factory=list)

@RecordedTask
def norm(p: Point) -> float:
    return (p.x ** 2 + p.y ** 2) ** 0.5
"""

# Pinned: the xxh3-128 of the canonical text (a change would be a digest-scheme change):
# {"inputs":{"x":3.0,"y":4.0},"scheme":"smttask-digest/1","task":"Create(Point)"}
POINT_DIGEST = "ccdf73677b1683e07a8a"


def test_create_builds_the_object_lazily_in_memory(proj):
    geo = proj.module(GEOMETRY)
    task = Create(geo.Point)(x=3, y=4)
    assert geo.CALLS == []  # nothing built yet
    assert task.taskname == "Create(Point)"
    assert task.digest == POINT_DIGEST
    point = task.run()
    assert point == geo.Point(x=3.0, y=4.0) and isinstance(point, geo.Point)
    assert task.run() is point  # memoized: built once
    assert geo.CALLS == [(3.0, 4.0), (3.0, 4.0)]  # the task's object, then the comparison
    assert not (proj.root / "data").exists() and not (proj.root / ".smt").exists()
    assert task.run(recompute=True) is not point


def test_create_accepts_a_kwargs_dict_and_validates_like_the_class(proj):
    geo = proj.module(GEOMETRY)
    assert Create(geo.Point)(kwargs={"x": 3, "y": 4}) is Create(geo.Point)(x=3.0, y=4.0)
    with pytest.raises(TaskInputError, match=r"Create\(Point\): x: Input should be a valid "
                                             "number"):
        Create(geo.Point)(x="far")
    with pytest.raises(TaskInputError, match=r"Create\(Point\): z: unknown input"):
        Create(geo.Point)(x=1, z=2)


def test_create_works_for_dataclasses(proj):
    geo = proj.module(GEOMETRY)
    task = Create(geo.Box)(corner=[0, 1])
    box = task.run()
    assert box == geo.Box(corner=(0.0, 1.0), size=1.0, tags=[])
    assert Create(geo.Box) is Create(geo.Box)


def test_create_round_trips_through_a_task_file(proj):
    geo = proj.module(GEOMETRY)
    task = Create(geo.Point)(x=3, y=4, reason="origin")
    assert Task.from_desc(task.desc) is task
    path = task.save("tasks")
    assert path.name == f"Create(Point)__{POINT_DIGEST}.taskdesc.json"
    out = proj.run_python(f"""
        from smttask import Task
        t = Task.from_desc({str(path)!r})
        print(t.taskname, t.digest, t.reason, t.run())
    """).stdout
    assert out.strip() == f"Create(Point) {POINT_DIGEST} origin x=3.0 y=4.0"


def test_a_created_object_feeds_a_recorded_task(proj):
    geo = proj.module(GEOMETRY)
    down = geo.norm(p=Create(geo.Point)(x=3, y=4))
    assert down.run() == 5.0
    assert Task.from_desc(down.desc) is down


def test_create_refuses_what_it_cannot_build():
    with pytest.raises(TaskDefinitionError, match="Create takes a pydantic model or a "
                                                  "dataclass, not int"):
        Create(int)


def test_not_computed_is_a_falsy_singleton_that_survives_pickling():
    assert repr(NotComputed) == "NotComputed" and not NotComputed
    assert pickle.loads(pickle.dumps(NotComputed)) is NotComputed
    assert smttask.NotComputed is NotComputed

    @smttask.MemoizedTask
    def anything(x: object) -> int:
        return 1

    with pytest.raises(TaskInputError, match="cannot compute a digest"):
        anything(x=NotComputed)
