"""Separate outputs: a variable-length output saved one file per item, named from inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from smttask import (
    RecordedTask,
    RecordStoreView,
    TaskDefinitionError,
    TaskExecutionError,
    TaskInputError,
)
from smttask.maintenance import rebuild_links
from smttask.typing import separate_outputs

TASKS = """
from smttask import RecordedTask, TaskOutput
from smttask.typing import Array, separate_outputs

CALLS = []

class Powers(TaskOutput):
    sqr: float
    cube: float
    more: separate_outputs(float, lambda pmax: [str(p) for p in range(4, pmax + 1)])

@RecordedTask
def powers(x: float, pmax: int) -> Powers:
    CALLS.append(x)
    return x**2, x**3, [x**p for p in range(4, pmax + 1)]

@RecordedTask
def wrong_count(x: float, pmax: int) -> Powers:
    return x**2, x**3, [x**4]

@RecordedTask
def rows(arr: Array[float, 2], names: list[str]
         ) -> separate_outputs(Array[float, 1], lambda names: names):
    return list(arr)
"""


def test_items_are_saved_as_separate_files_and_reassembled(proj):
    tasks = proj.module(TASKS)
    task = tasks.powers(x=2.0, pmax=6)
    assert task.run() == (4.0, 8.0, (16.0, 32.0, 64.0))
    d = task.digest
    folder = proj.root / "data/powers"
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        f"{d}_{n}.json" for n in ("sqr", "cube", "4", "5", "6"))
    assert all(p.is_symlink() for p in folder.iterdir())
    assert json.loads((folder / f"{d}_5.json").read_text()) == 32.0
    # A fresh object in another process loads the pieces, reassembled in order.
    out = proj.run_python(f"""
        from {proj.pkg} import tasks
        print(tasks.powers(x=2.0, pmax=6).run().more, len(tasks.CALLS))
    """).stdout
    assert out.strip() == "(16.0, 32.0, 64.0) 0"
    rec = RecordStoreView().get(task.record_label)
    assert len(rec.output_files) == 5
    assert rec.get_output("more") == (16.0, 32.0, 64.0)
    assert rec.get_output("sqr") == 4.0


def test_a_missing_item_means_the_result_is_not_on_disk(proj):
    tasks = proj.module(TASKS)
    task = tasks.powers(x=3.0, pmax=5)
    task.run()
    (proj.root / "data/powers" / f"{task.digest}_5.json").unlink()
    assert task.run().more == (81.0, 243.0)
    assert tasks.CALLS == [3.0, 3.0]


def test_a_length_mismatch_is_an_error_and_writes_nothing(proj):
    tasks = proj.module(TASKS)
    task = tasks.wrong_count(x=2.0, pmax=6)
    with pytest.raises(TaskExecutionError, match=r"more: 1 values for the 3 names "
                                                 r"\['4', '5', '6'\]"):
        task.run()
    assert not (proj.root / "data/run_dump/wrong_count").exists() or not any(
        (proj.root / "data/run_dump/wrong_count").iterdir())
    assert RecordStoreView().get(task.record_label).status == "crashed"


def test_array_items_and_names_from_a_list_input(proj):
    tasks = proj.module(TASKS)
    task = tasks.rows(arr=np.arange(6.0).reshape(3, 2), names=["a", "b", "c"])
    first = task.run()
    assert [list(r) for r in first] == [[0, 1], [2, 3], [4, 5]]
    names = sorted(p.name for p in (proj.root / "data/rows").iterdir())
    assert names == [f"{task.digest}_{n}.npy" for n in "abc"]
    again = tasks.rows(arr=np.arange(6.0).reshape(3, 2), names=["a", "b", "c"])
    assert [list(r) for r in again.run()] == [[0, 1], [2, 3], [4, 5]]
    assert again.result_source == "disk"


def test_links_rebuilt_from_records_include_every_item(proj):
    tasks = proj.module(TASKS)
    task = tasks.powers(x=2.0, pmax=5)
    task.run()
    for link in (proj.root / "data/powers").iterdir():
        link.unlink()
    rebuild_links()
    assert len(list((proj.root / "data/powers").iterdir())) == 4
    assert task.run().more == (16.0, 32.0)
    assert task.result_source == "disk"


def test_bad_names_are_clear_errors(proj):
    tasks = proj.module("""
        from smttask import RecordedTask
        from smttask.typing import separate_outputs

        @RecordedTask
        def split(labels: list[str]) -> separate_outputs(int, lambda labels: labels):
            return list(range(len(labels)))
    """)
    for labels, problem in ((["a", "a"], "'a' is used twice"), (["a/b"], "'a/b' is not a valid"),
                            (["x", "x_2"], "'x_2' would read as version 2 of 'x'"),
                            ([""], "'' is not a valid")):
        with pytest.raises(TaskInputError, match=f"split: separate output 'result': {problem}"):
            tasks.split(labels=labels).run()


def test_get_names_must_ask_for_inputs_by_name():
    with pytest.raises(TaskDefinitionError, match=r"get_names of 'result' asks for 'n', "
                                                  "which is not an input"):
        @RecordedTask
        def f(m: int) -> separate_outputs(int, lambda n: [str(i) for i in range(n)]):
            return list(range(m))


def test_names_from_an_upstream_task_are_refused(proj):
    tasks = proj.module("""
        from smttask import MemoizedTask, RecordedTask
        from smttask.typing import separate_outputs

        @MemoizedTask
        def count() -> int:
            return 2

        @RecordedTask
        def split(n: int) -> separate_outputs(int, lambda n: [str(i) for i in range(n)]):
            return list(range(n))
    """)
    with pytest.raises(TaskInputError, match="'n' is an upstream task"):
        tasks.split(n=tasks.count()).run()
