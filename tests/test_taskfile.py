"""Task files: save, load, round trip, validation errors, the import allow-list."""

from __future__ import annotations

import json

import numpy as np
import pytest

import smttask
from smttask import TaskFileError, TaskInputError
from smttask.task import Task

TASKS = """
from typing import Tuple
import numpy as np
from smttask import RecordedTask
from smttask.typing import Array

@RecordedTask
def make(n: int, scale: float = 1.0) -> Array[float, 1]:
    return np.arange(n) * scale

@RecordedTask
def analyze(arr: Array, dt: float, nbins: int, labels: Tuple[str, ...] = ()) -> float:
    return float(arr.sum() * dt)
"""


def test_save_names_the_file_and_round_trips(proj):
    tasks = proj.module(TASKS)
    arr = np.array([[1.5, np.nan], [np.inf, -0.0]], dtype=">f8")
    task = tasks.analyze(arr=arr, dt=0.1, nbins=2, labels=("a", "é"), reason="round trip")
    path = task.save(proj.root / "tasks")
    assert path.name == f"analyze__{task.digest}.taskdesc.json"
    desc = json.loads(path.read_text())
    assert desc["smttask"] == "taskdesc/1"
    assert desc["taskname"] == "analyze" and desc["module"] == f"{proj.pkg}.tasks"
    assert desc["reason"] == "round trip" and desc["digest"] == task.digest
    again = Task.from_desc(path)
    assert type(again) is type(task) and again.digest == task.digest
    assert again.reason == "round trip"
    loaded = again.inputs.arr
    assert loaded.dtype == np.dtype(">f8")
    assert np.array_equal(loaded.view(np.uint64), arr.view(np.uint64))  # bit-exact
    assert again.inputs.labels == ("a", "é")
    # JSON text and dict sources work too.
    assert Task.from_desc(path.read_text()).digest == task.digest
    assert tasks.analyze.from_desc(desc).digest == task.digest


def test_nested_tasks_round_trip(proj):
    tasks = proj.module(TASKS)
    task = tasks.analyze(arr=tasks.make(n=5, scale=2.0), dt=1.0, nbins=3)
    path = task.save(proj.root / "tasks")
    desc = json.loads(path.read_text())
    assert desc["inputs"]["arr"]["taskname"] == "make"
    again = Task.from_desc(path)
    assert again.digest == task.digest
    assert isinstance(again.inputs.arr, tasks.make)
    assert again.run() == 20.0


def test_existing_file_is_never_silently_overwritten(proj):
    tasks = proj.module(TASKS)
    target = proj.root / "tasks" / "mine.json"
    tasks.make(n=1).save(target)
    tasks.make(n=1).save(target)  # same content: fine
    with pytest.raises(TaskFileError, match="exists with a different content"):
        tasks.make(n=2).save(target)
    assert Task.from_desc(target).inputs.n == 1
    tasks.make(n=2).save(target, overwrite=True)
    assert Task.from_desc(target).inputs.n == 2


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d["inputs"].update(nbins="lots"), r"inputs\.nbins: .*integer"),
    (lambda d: d["inputs"].update(bogus=1), r"inputs\.bogus: unknown input"),
    (lambda d: d["inputs"].pop("dt"), r"inputs\.dt: missing required input"),
    (lambda d: d.update(smttask="taskdesc/99"), r"smttask: expected 'taskdesc/1'"),
    (lambda d: d.update(taskname="nope"), r"taskname: .* has no task 'nope'"),
    (lambda d: d["inputs"].update(arr={"npy": "!!!"}), r"inputs\.arr: .*invalid npy"),
])
def test_invalid_files_name_the_file_and_the_field(proj, mutate, message):
    tasks = proj.module(TASKS)
    path = tasks.analyze(arr=[1.0], dt=1.0, nbins=1).save(proj.root / "tasks")
    desc = json.loads(path.read_text())
    mutate(desc)
    path.write_text(json.dumps(desc))
    with pytest.raises(TaskFileError, match=message) as info:
        Task.from_desc(path)
    assert str(info.value).startswith(str(path))


def test_a_key_that_is_no_name_stays_on_the_error_line(proj):
    """A dict input's wrong value under a key holding a newline: the error is one line,
    the key quoted (found by the fuzz suite)."""
    tasks = proj.module(TASKS + """
@RecordedTask
def counts(table: dict[str, int]) -> int:
    return sum(table.values())
""")
    path = tasks.counts(table={"a": 1}).save(proj.root / "tasks")
    desc = json.loads(path.read_text())
    desc["inputs"]["table"] = {"\u00e0d\n": "many"}
    path.write_text(json.dumps(desc))
    with pytest.raises(TaskFileError) as info:
        Task.from_desc(path)
    assert "\n" not in str(info.value)
    assert "inputs.table['àd\\n']: Input should be a valid integer" in str(info.value)


def test_a_dict_input_with_the_key_smttask_is_refused_up_front(proj):
    """A task file would read it back as a nested task: refused when the task is made,
    not when its file or record is loaded."""
    tasks = proj.module(TASKS + """
@RecordedTask
def counts(table: dict[str, int]) -> int:
    return sum(table.values())
""")
    with pytest.raises(TaskInputError, match=r"counts: table: a dict input may not have the "
                                             r"key 'smttask'"):
        tasks.counts(table={"smttask": 1})
    assert tasks.counts(table={"smttasks": 1}).run() == 1


def test_malformed_json_is_reported(proj):
    bad = proj.root / "tasks" / "bad.taskdesc.json"
    bad.parent.mkdir()
    bad.write_text('{"smttask": "taskdesc/1", ')
    with pytest.raises(TaskFileError, match=r"bad.taskdesc.json: not valid JSON"):
        Task.from_desc(bad)


def test_only_project_modules_may_be_imported(proj):
    desc = {"smttask": "taskdesc/1", "taskname": "dump", "module": "antigravity",
            "inputs": {}, "reason": None}
    with pytest.raises(TaskFileError, match=r"module 'antigravity' is not in the project's"):
        Task.from_desc(desc)
    assert "antigravity" not in __import__("sys").modules
    # An explicitly allowed package is imported (and then has no such task).
    with pytest.raises(TaskFileError, match="has no task 'dump'"):
        Task.from_desc({**desc, "module": "json"}, allow=("json",))


def test_from_desc_on_a_subclass_checks_the_type(proj):
    tasks = proj.module(TASKS)
    desc = tasks.make(n=1).desc
    with pytest.raises(TaskFileError, match="is a make task, not a analyze"):
        tasks.analyze.from_desc(desc)
    assert isinstance(smttask.Task.from_desc(desc), tasks.make)
