"""Tasks: validation, digest, lazy runs, results on disk, composition, memoisation."""

from __future__ import annotations

import os
import sys
import traceback

import numpy as np
import pytest

import smttask
from smttask import TaskDefinitionError, TaskExecutionError, TaskInputError

SEED_EXAMPLE = """
from typing import Tuple
import numpy as np
from smttask import RecordedTask
from smttask.typing import Array

CALLS = []

@RecordedTask
def analyze(arr: Array, dt: float, nbins: int) -> Tuple[float, float, float]:
    CALLS.append(1)
    hist, _ = np.histogram(arr, bins=nbins)
    μ, σ, p = float(np.mean(arr) * dt), float(np.std(arr)), float(hist.max())
    return (μ, σ, p)
"""


def test_seed_example_is_lazy_validated_and_runs_once(proj):
    tasks = proj.module(SEED_EXAMPLE)
    task = tasks.analyze(arr=np.array([1, 2, 3]), dt=0.5, nbins=2)
    assert tasks.CALLS == []  # construction runs nothing
    assert len(task.digest) >= 16
    assert task.run() == (1.0, pytest.approx(0.816496580927726), 2.0)
    assert tasks.CALLS == [1]
    # A fresh object with equal inputs loads the result from disk.
    again = tasks.analyze(arr=[1, 2, 3], dt=0.5, nbins=2)
    assert again.digest == task.digest
    assert again.run() == task.run()
    assert tasks.CALLS == [1]


def test_later_process_loads_from_disk_without_executing(proj):
    tasks = proj.module(SEED_EXAMPLE)
    first = tasks.analyze(arr=np.arange(10.0), dt=0.1, nbins=3).run()
    out = proj.run_python(f"""
        import numpy as np
        from {proj.pkg} import tasks
        print(tasks.analyze(arr=np.arange(10.0), dt=0.1, nbins=3).run(), len(tasks.CALLS))
    """).stdout
    assert out.strip() == f"{first} 0"


def test_outputs_written_once_and_linked(proj):
    tasks = proj.module(SEED_EXAMPLE)
    task = tasks.analyze(arr=[1.0, 2.0], dt=1.0, nbins=1)
    task.run()
    real = proj.root / "data/run_dump/analyze" / f"{task.digest}_result.json"
    link = proj.root / "data/analyze" / f"{task.digest}_result.json"
    assert real.is_file() and not real.is_symlink()
    assert link.is_symlink() and not os.path.isabs(os.readlink(link))
    assert link.resolve() == real.resolve()
    # Recompute never overwrites: a second file, and the link moves to it.
    task.run(recompute=True)
    second = real.with_name(f"{task.digest}_result_2.json")
    assert second.is_file() and real.is_file()
    assert link.resolve() == second.resolve()
    assert tasks.CALLS == [1, 1]
    # Deleting the link invalidates the cached result.
    link.unlink()
    task.run()
    assert tasks.CALLS == [1, 1, 1]
    assert real.with_name(f"{task.digest}_result_3.json").is_file()


def test_no_temporary_files_left_behind(proj):
    tasks = proj.module(SEED_EXAMPLE)
    tasks.analyze(arr=[1.0], dt=1.0, nbins=1).run()
    leftovers = [p for p in (proj.root / "data").rglob("*") if p.name.startswith(".tmp")]
    assert leftovers == []


def test_invalid_and_unknown_inputs_name_task_and_field(proj):
    tasks = proj.module(SEED_EXAMPLE)
    with pytest.raises(TaskInputError, match=r"analyze: nbins: .*integer"):
        tasks.analyze(arr=[1, 2], dt=0.1, nbins="many")
    with pytest.raises(TaskInputError, match=r"analyze: bins: unknown input"):
        tasks.analyze(arr=[1, 2], dt=0.1, nbins=2, bins=3)
    with pytest.raises(TaskInputError, match=r"analyze: dt: missing required input"):
        tasks.analyze(arr=[1, 2], nbins=2)


def test_positional_inputs_follow_the_signature(proj):
    tasks = proj.module(SEED_EXAMPLE)
    a = tasks.analyze([1, 2], 0.1, 2)
    b = tasks.analyze(arr=[1, 2], dt=0.1, nbins=2)
    assert a.digest == b.digest


def test_int_and_float_spellings_agree(proj):
    tasks = proj.module(SEED_EXAMPLE)
    assert (tasks.analyze(arr=[1.0], dt=3, nbins=2).digest
            == tasks.analyze(arr=[1.0], dt=3.0, nbins=2).digest)


def test_unannotated_parameter_is_refused_at_decoration():
    with pytest.raises(TaskDefinitionError, match="parameter 'b' has no type annotation"):
        @smttask.RecordedTask
        def f(a: int, b) -> int:
            return a
    with pytest.raises(TypeError, match="return type must be annotated"):
        @smttask.MemoizedTask
        def g(a: int):
            return a
    with pytest.raises(TaskDefinitionError, match="'reason' cannot be an input name"):
        @smttask.MemoizedTask
        def h(reason: str) -> str:
            return reason


def test_decorator_arguments_cache_and_version():
    calls = []

    @smttask.MemoizedTask(cache=False)
    def plain(x: int) -> int:
        calls.append(x)
        return x

    plain(x=1).run()
    plain(x=1).run()
    assert calls == [1, 1]

    def body(x: int) -> int:
        return x

    v1 = smttask.MemoizedTask(version="1")(body)
    v2 = smttask.MemoizedTask(version="2")(body)
    bare = smttask.MemoizedTask(body)
    assert len({v1(x=1).digest, v2(x=1).digest, bare(x=1).digest}) == 3


def test_callable_class_task():
    @smttask.MemoizedTask
    class Scale:
        def helper(self, x: float) -> float:
            return x * 2

        def __call__(self, x: float) -> float:
            return self.helper(x) + self.inputs.x

    assert Scale(x=2).run() == 6.0
    assert isinstance(Scale(x=1), smttask.Task)


def test_named_outputs_one_file_each(proj):
    tasks = proj.module("""
        from smttask import RecordedTask, TaskOutput
        from smttask.typing import Array

        class Stats(TaskOutput):
            mean: float
            values: Array[float, 1]

        @RecordedTask
        def stats(n: int) -> Stats:
            import numpy as np
            v = np.arange(n, dtype=float)
            return v.mean(), v
    """)
    task = tasks.stats(n=4)
    result = task.run()
    assert result.mean == 1.5
    np.testing.assert_array_equal(result.values, [0, 1, 2, 3])
    folder = proj.root / "data/run_dump/stats"
    files = [f"{task.digest}_mean.json", f"{task.digest}_values.npy"]
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        files + [f + ".meta.json" for f in files])  # each file and its checksums
    reloaded = tasks.stats(n=4).run()
    assert reloaded.mean == 1.5 and reloaded.values.dtype == np.float64


def test_wrong_number_of_outputs_is_a_clear_failure(proj):
    tasks = proj.module("""
        from smttask import RecordedTask, TaskOutput

        class Two(TaskOutput):
            a: int
            b: int

        @RecordedTask
        def bad(x: int) -> Two:
            return (x,)
    """)
    with pytest.raises(TaskExecutionError, match="must return its 2 outputs"):
        tasks.bad(x=1).run()
    assert not (proj.root / "data/run_dump/bad").exists() or not any(
        (proj.root / "data/run_dump/bad").iterdir())


COMPOSED = """
from smttask import RecordedTask, MemoizedTask
from smttask.typing import Array
import numpy as np

CALLS = []

@RecordedTask
def make(n: int) -> Array[float, 1]:
    CALLS.append("make")
    return np.arange(n, dtype=float)

@RecordedTask
def make_other(n: int) -> Array[float, 1]:
    CALLS.append("make_other")
    return np.ones(n)

@RecordedTask
def total(arr: Array[float, 1], offset: float) -> float:
    CALLS.append("total")
    return float(arr.sum() + offset)
"""


def test_upstream_tasks_run_lazily_and_load_from_disk(proj):
    tasks = proj.module(COMPOSED)
    down = tasks.total(arr=tasks.make(n=4), offset=1.0)
    assert tasks.CALLS == []
    assert down.run() == 7.0
    assert tasks.CALLS == ["make", "total"]
    # A new downstream task reuses the upstream result on disk.
    assert tasks.total(arr=tasks.make(n=4), offset=2.0).run() == 8.0
    assert tasks.CALLS == ["make", "total", "total"]


def test_upstream_identity_enters_the_digest(proj):
    tasks = proj.module(COMPOSED)
    a = tasks.total(arr=tasks.make(n=3), offset=0.0)
    b = tasks.total(arr=tasks.make_other(n=3), offset=0.0)
    c = tasks.total(arr=tasks.make(n=4), offset=0.0)
    assert len({a.digest, b.digest, c.digest}) == 3
    assert a.digest == tasks.total(arr=tasks.make(n=3), offset=0.0).digest


def test_record_false_writes_and_records_nothing(proj):
    tasks = proj.module(SEED_EXAMPLE)
    smttask.config.record = False
    assert tasks.analyze(arr=[1.0], dt=1.0, nbins=1).run() == (1.0, 0.0, 1.0)
    assert not (proj.root / "data").exists()
    assert not (proj.root / ".smt").exists()


def test_record_false_allows_tasks_in_main_without_a_project(tmp_path):
    script = tmp_path / "notebook.py"
    script.write_text(
        "import smttask\n"
        "smttask.config.record = False\n"
        "@smttask.RecordedTask\n"
        "def double(x: float) -> float:\n"
        "    return 2 * x\n"
        "print(double(x=2).run())\n"
    )
    import subprocess

    out = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "4.0"
    assert list(tmp_path.iterdir()) == [script]


def test_recorded_task_in_main_is_refused_when_recording(proj):
    proc = proj.run_python("""
        import smttask
        @smttask.RecordedTask
        def double(x: float) -> float:
            return 2 * x
        try:
            double(x=2).run()
        except smttask.TaskDefinitionError as exc:
            print("refused:", exc)
    """)
    assert "refused: double is defined in __main__" in proc.stdout


def test_memoized_task_keeps_results_in_memory_only(proj):
    tasks = proj.module("""
        from smttask import MemoizedTask
        CALLS = []

        class Opaque:  # not serialisable
            pass

        @MemoizedTask
        def make(n: int) -> Opaque:
            CALLS.append(n)
            return Opaque()
    """)
    first = tasks.make(n=1).run()
    assert tasks.make(n=1).run() is first
    assert tasks.CALLS == [1]
    assert not (proj.root / "data").exists() and not (proj.root / ".smt").exists()
    tasks.make(n=1).clear()
    assert tasks.make(n=1).run() is not first


def test_unpure_memoized_digest_follows_output(tmp_path):
    folder = tmp_path / "watched"
    folder.mkdir()

    @smttask.UnpureMemoizedTask
    def listing(path: str) -> list[str]:
        return sorted(p.name for p in (tmp_path / path).iterdir())

    @smttask.MemoizedTask
    def count(files: list[str]) -> int:
        return len(files)

    before = listing(path="watched")
    d0 = before.digest  # runs the task
    (folder / "new.txt").write_text("x")
    assert before.digest == d0  # frozen until recomputed
    after = listing(path="watched")
    assert after.digest != d0
    assert count(files=after).run() == 1
    assert count(files=after).digest != count(files=before).digest
    before.run(recompute=True)
    assert before.digest == after.digest
    with pytest.raises(ValueError, match="always cached"):
        before.run(cache=False)


def test_failure_raises_task_execution_error_chained_to_user_code():
    @smttask.MemoizedTask
    def explode(x: int) -> int:
        return 1 // x

    with pytest.raises(TaskExecutionError, match=r"explode .* failed: ZeroDivisionError") as info:
        explode(x=0).run()
    assert isinstance(info.value.__cause__, ZeroDivisionError)
    last = traceback.extract_tb(info.value.__traceback__)[-1]
    assert last.name == "explode"  # pdb.post_mortem lands in the task's own code


def test_breakpoint_inside_a_task_works(proj):
    proj.module("""
        from smttask import RecordedTask
        @RecordedTask
        def probe(x: float) -> float:
            y = x * 3
            breakpoint()
            return y
    """)
    proc = proj.run_python(f"""
        import smttask
        smttask.config.record = False
        from {proj.pkg}.tasks import probe
        print("result", probe(x=2).run())
    """, input="p y + 1000\nc\n", env={"PYTHONBREAKPOINT": "pdb.set_trace"})
    assert "1006.0" in proc.stdout
    assert "result 6.0" in proc.stdout


def test_post_mortem_reaches_the_failing_frame():
    @smttask.MemoizedTask
    def fail(x: int) -> int:
        local_marker = x + 41
        raise RuntimeError(local_marker)

    try:
        fail(x=1).run()
    except TaskExecutionError as exc:
        tb = exc.__traceback__
    frames = []
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    assert frames[-1].f_locals["local_marker"] == 42
