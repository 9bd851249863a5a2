"""`smttask run` and `smttask.batch.run`: batches of task files in a worker pool."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from smttask import DirtyRepositoryError, provenance
from smttask import batch as batches
from smttask.view import RecordStoreView

TASKS = """
import os, time
from smttask import RecordedTask

@RecordedTask
def square(x: float) -> float:
    if x == 13:
        raise ValueError("unlucky 13")
    return x * x

@RecordedTask
def where(x: int) -> int:
    return int(os.environ.get("SMTTASK_PROCESS_NUM", "0"))

@RecordedTask
def base(n: int) -> float:
    return float(n)

@RecordedTask
def plus(y: float, z: float) -> float:
    return y + z

@RecordedTask
def slow(x: float) -> float:
    time.sleep(60)
    return x

@RecordedTask
def paused(x: float) -> float:
    y = x * 3
    breakpoint()
    return y + 1
"""



def labels_by_tag(proj, tag):
    """The project's records carrying ``tag`` (one query)."""
    return list(RecordStoreView(proj.project).filter.tags(tag))


def test_batch_of_200_with_a_malformed_file_and_a_failing_task(proj):
    tasks = proj.module(TASKS)
    folder = proj.root / "tasks"
    for x in range(199):
        tasks.square(x=x).save(folder)
    (folder / "broken.taskdesc.json").write_text('{"smttask": "taskdesc/1", "taskname": ')
    proc = proj.cli("run", "-n", "2", "tasks")
    assert proc.returncode == 1
    err = proc.stderr
    assert "invalid" in err and "broken.taskdesc.json: not valid JSON" in err
    assert "198 ran, 1 failed, 1 invalid" in err
    assert "ValueError: unlucky 13" in err  # the summary gives the reason
    finished = labels_by_tag(proj, "_finished_")
    crashed = labels_by_tag(proj, "_crashed_")
    assert len(finished) == 198 and len(crashed) == 1
    assert len({r.label for r in finished + crashed}) == 199
    assert "unlucky 13" in crashed[0].outcome
    assert crashed[0].script_arguments.endswith(".taskdesc.json")
    assert len(list((proj.root / "data/run_dump/square").glob("*_result.json"))) == 198
    # A second run loads every result and records nothing new (but the failure again).
    again = proj.cli("run", "-n", "2", "tasks")
    assert again.returncode == 1
    assert "198 loaded, 1 failed, 1 invalid" in again.stderr
    assert len(labels_by_tag(proj, "_finished_")) == 198


def test_workers_have_stable_process_numbers(proj):
    tasks = proj.module(TASKS)
    paths = [tasks.where(x=i).save(proj.root / "tasks") for i in range(8)]
    batch = batches.run(paths, jobs=2)
    assert batch.ok and batch.count("ran") == 8
    seen = {tasks.where(x=i).run() for i in range(8)}
    assert seen <= {1, 2} and seen


def test_shared_upstream_runs_once(proj):
    tasks = proj.module(TASKS)
    up = tasks.base(n=3)
    paths = [tasks.plus(y=up, z=float(z)).save(proj.root / "tasks") for z in range(6)]
    batch = batches.run(paths, jobs=2)
    assert batch.ok and batch.count("ran") == 7
    assert len(labels_by_tag(proj, "base")) == 1
    assert len(labels_by_tag(proj, "plus")) == 6


def test_failed_upstream_skips_its_dependents(proj):
    tasks = proj.module(TASKS)
    path = tasks.plus(y=tasks.square(x=13), z=1.0).save(proj.root / "tasks")
    batch = batches.run([path], jobs=2)
    assert not batch.ok
    states = {j.task.taskname: j.state for j in batch.jobs}
    assert states == {"square": "failed", "plus": "skipped"}
    assert labels_by_tag(proj, "plus") == []


def test_dirty_repository_refuses_the_whole_batch(proj):
    tasks = proj.module(TASKS)
    tasks.square(x=1).save(proj.root / "tasks")
    proj.write(f"{proj.pkg}/tasks.py", TASKS + "\n# uncommitted\n")
    proc = proj.cli("run", "tasks")
    assert proc.returncode == DirtyRepositoryError.exit_code
    assert proc.stderr.startswith("Error: uncommitted changes block recording")
    assert f"{proj.pkg}/tasks.py. Commit it" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (proj.root / ".smt").exists() and not (proj.root / "data").exists()
    with pytest.raises(DirtyRepositoryError):
        batches.run([proj.root / "tasks"])


def test_no_record_dry_run_clean_and_reason(proj):
    tasks = proj.module(TASKS)
    folder = proj.root / "tasks"
    paths = [tasks.square(x=x).save(folder) for x in (2, 3)]
    dry = proj.cli("run", "--dry-run", "tasks")
    assert dry.returncode == 0 and dry.stdout.count("would run") == 2
    norec = batches.run(paths, jobs=1, record=False)
    assert norec.ok and not (proj.root / "data").exists()
    batch = batches.run(paths, jobs=2, reason="second look", keep=False)
    assert batch.ok and not any(p.exists() for p in paths)
    assert {r.reason for r in labels_by_tag(proj, "square")} == {"second look"}
    paths = [tasks.square(x=x).save(folder) for x in (2, 5)]
    dry = proj.cli("run", "--dry-run", "tasks")
    assert "would load" in dry.stdout and "would run" in dry.stdout


def test_retries_and_fail_fast(proj):
    tasks = proj.module(TASKS)
    folder = proj.root / "tasks"
    bad = tasks.square(x=13).save(folder)
    good = [tasks.square(x=x).save(folder) for x in (20, 21, 22)]
    batch = batches.run([bad], jobs=1, retries=2)
    assert batch.jobs[0].attempts == 3 and batch.jobs[0].state == "failed"
    assert len(labels_by_tag(proj, "_crashed_")) == 3
    batch = batches.run([bad, *good], jobs=1, fail_fast=True)
    assert batch.count("failed") == 1 and batch.count("pending") == 3


def test_ctrl_c_kills_running_tasks_cleanly(proj):
    tasks = proj.module(TASKS)
    for x in range(4):
        tasks.slow(x=float(x)).save(proj.root / "tasks")
    exe = str(Path(sys.executable).with_name("smttask"))
    proc = subprocess.Popen([exe, "run", "-n", "2", "tasks"], cwd=proj.root,
                            env={**os.environ, "PYTHONPATH": str(proj.root)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline:
        if (proj.root / ".smt/records").exists() and len(labels_by_tag(proj, "_running_")) == 2:
            break
        time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("the tasks never started")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "interrupted" in err
    killed = labels_by_tag(proj, "_killed_")
    assert len(killed) == 2
    assert labels_by_tag(proj, "_running_") == []
    assert not (proj.root / "data/run_dump/slow").exists() or not any(
        p for p in (proj.root / "data/run_dump/slow").iterdir())
    # The store still works.
    assert tasks.square(x=4).run() == 16.0
    assert len(provenance.labels(proj.project)) == 3


def test_python_api_matches_the_cli(proj):
    tasks = proj.module(TASKS)
    path = tasks.square(x=9).save(proj.root / "tasks")
    batch = batches.run([path], jobs=2)
    assert batch.ok and batch.jobs[0].state == "ran" and batch.jobs[0].label
    rec = provenance.get_record(proj.project, batch.jobs[0].label)
    assert json.loads(rec.parameters.pretty())["_smttask"]["digest"] == tasks.square(x=9).digest


SCRIPT = """
from smttask import batch

result = batch.run("tasks", jobs=2)
print("RESULT", result.ok, result.count("ran"), all(j.label for j in result.jobs))
"""


def test_a_script_without_a_main_guard_runs_its_batch(proj):
    """Workers do not import the caller's script again: no `__main__` guard needed."""
    tasks = proj.module(TASKS)
    for x in (1, 2, 3):
        tasks.square(x=x).save(proj.root / "tasks")
    proj.write("sweep.py", SCRIPT)
    proj.commit("the script")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "sweep.py"], cwd=proj.root, capture_output=True,
                          text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["RESULT True 3 True"]  # once: not in the workers


MAIN_TASK_SCRIPT = """
from smttask import RecordedTask

@RecordedTask
def here(x: int) -> int:
    return x

here(x=1).save("tasks")
"""


def test_a_task_defined_in_the_script_is_not_saved_as_a_task_file(proj):
    """A task file must name a module every process can import; the running script is
    not one, so saving says what to do instead of writing a file nothing can load."""
    proj.write("here.py", MAIN_TASK_SCRIPT)
    proc = subprocess.run([sys.executable, "here.py"], cwd=proj.root, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 1
    assert ("here is defined in the script being run (__main__), which a task file cannot "
            "name: move the task into a module") in proc.stderr
    assert not (proj.root / "tasks").exists()


def test_ok_means_nothing_failed(proj):
    tasks = proj.module(TASKS)
    folder = proj.root / "tasks"
    paths = [tasks.square(x=x).save(folder) for x in (2, 13)]
    dry = batches.run(paths, dry_run=True)
    assert dry.ok and dry.count("would run") == 2
    ran = batches.run(paths, jobs=2)
    assert not ran.ok and ran.count("failed") == 1
    assert proj.cli("run", "-n", "2", "tasks").returncode == 1
    (folder / "broken.taskdesc.json").write_text("{")
    assert not batches.run([paths[0], folder / "broken.taskdesc.json"], dry_run=True).ok
    assert proj.cli("run", "--dry-run", "tasks").returncode == 1


def test_pdb_opens_the_debugger_in_the_failing_task(proj):
    import pexpect

    tasks = proj.module(TASKS)
    path = tasks.square(x=13.0).save(proj.root / "tasks")
    exe = str(Path(sys.executable).with_name("smttask"))
    child = pexpect.spawn(exe, ["run", "--pdb", str(path)], cwd=str(proj.root),
                          env={**os.environ, "PYTHONPATH": str(proj.root),
                               "PROMPT_TOOLKIT_NO_CPR": "1"},
                          encoding="utf-8", timeout=60)
    child.expect(r"\(Pdb\)")
    child.sendline("p x * 2")
    child.expect("26.0")
    child.sendline("c")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 1


@pytest.mark.parametrize("jobs", ["2", "1"])
def test_breakpoint_under_the_runner_gets_the_terminal(proj, jobs):
    """`breakpoint()` in a task under `smttask run`: the progress display pauses, pdb
    works on the terminal (in a worker process too), one debugger at a time, and the runs
    are recorded as usual."""
    import pexpect

    tasks = proj.module(TASKS)
    for x in (1.0, 2.0):
        tasks.paused(x=x).save(proj.root / "tasks")
    child = pexpect.spawn(str(Path(sys.executable).with_name("smttask")),
                          ["run", "-n", jobs, "tasks"], cwd=str(proj.root),
                          env={**os.environ, "TERM": "xterm"}, encoding="utf-8", timeout=60,
                          dimensions=(30, 120))
    seen = []
    for _ in range(2):
        child.expect("pdb has the terminal")
        child.expect(r"\(Pdb\) ")
        child.sendline("p y")
        child.expect(r"(\d\.0)\r\n\(Pdb\) ")
        seen.append(child.match.group(1))
        child.sendline("c")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    assert sorted(seen) == ["3.0", "6.0"]
    assert "2 ran" in child.before
    assert len(labels_by_tag(proj, "_finished_")) == 2


def test_breakpoint_without_a_terminal_says_how_to_debug(proj):
    tasks = proj.module(TASKS)
    tasks.paused(x=1.0).save(proj.root / "tasks")
    proc = subprocess.run([str(Path(sys.executable).with_name("smttask")), "run", "-n", "2",
                           "tasks"], cwd=proj.root, capture_output=True, text=True,
                          start_new_session=True, stdin=subprocess.DEVNULL, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(proj.root)})
    assert proc.returncode == 1
    assert "breakpoint() needs a terminal" in proc.stderr
    assert "smttask run -n 1 TASKFILE" in proc.stderr
    [crashed] = labels_by_tag(proj, "_crashed_")
    assert "breakpoint() needs a terminal" in crashed.outcome


def test_breakpoint_in_this_process_keeps_the_callers_debugger(proj, monkeypatch):
    """Jobs run in the caller's process (-n 1) keep its own breakpoint hook (an IDE's,
    Jupyter's); the progress display is told first."""
    tasks = proj.module(TASKS)
    path = tasks.paused(x=2.0).save(proj.root / "tasks")
    calls = []
    monkeypatch.setattr(sys, "breakpointhook", lambda *a, **k: calls.append("hook"))
    events = []
    batch = batches.run([path], jobs=1, on_event=lambda kind, job, b: events.append(kind))
    assert batch.ok and calls == ["hook"]
    assert events == ["planned", "started", "debugging", "finished", "done"]
    assert tasks.paused(x=2.0).run() == 7.0


def test_verbose_run_prints_the_traceback_of_a_failed_task(proj):
    tasks = proj.module(TASKS)
    tasks.square(x=13).save(proj.root / "tasks")
    quiet = proj.cli("run", "-n", "2", "tasks")
    assert quiet.returncode == 1 and "ValueError: unlucky 13" in quiet.stderr
    assert "Traceback" not in quiet.stderr
    loud = proj.cli("-v", "run", "-n", "2", "tasks")
    assert loud.returncode == 1
    assert "Traceback of square__" in loud.stderr, loud.stderr
    assert f"{proj.pkg}/tasks.py\", line 8, in square" in loud.stderr, loud.stderr
    assert 'raise ValueError("unlucky 13")' in loud.stderr
