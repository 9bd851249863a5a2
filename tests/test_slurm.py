"""`smttask run --executor slurm` on a real single-node SLURM cluster."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from services import wait_for

from smttask import ExecutorError, provenance
from smttask.executors.slurm import idle_cpus
from smttask.view import RecordStoreView

# One server per test session: these tests run on one xdist worker.
pytestmark = pytest.mark.xdist_group("slurm")

TASKS = """
import time
from pathlib import Path
from smttask import RecordedTask

@RecordedTask
def square(x: float) -> float:
    if x == 13:
        raise ValueError("unlucky 13")
    return x * x

@RecordedTask
def nap(x: float, seconds: float) -> float:
    time.sleep(seconds)
    return x

@RecordedTask
def flaky(x: int, marker: str) -> int:
    path = Path(marker)
    if not path.exists():
        path.write_text("failed once")
        raise RuntimeError("first attempt fails")
    return x
"""



def test_job_array_runs_records_and_reports_failures(proj, slurm):
    tasks = proj.module(TASKS)
    for x in (1, 2, 3, 13):
        tasks.square(x=float(x)).save(proj.root / "tasks")
    out = proj.cli("run", "--executor", "slurm", "--time", "5:00", "tasks")
    assert out.returncode == 1, out.stderr
    assert "3 ran, 1 failed" in out.stderr
    assert "unlucky 13" in out.stderr and "log: " in out.stderr  # the log is linked
    log = Path(out.stderr.split("log: ")[1].split(")")[0].split()[0])
    assert log.exists()
    finished = RecordStoreView().filter.status("finished")
    assert len(finished) == 3 and len(RecordStoreView().filter.status("crashed")) == 1
    labels = provenance.labels(proj.project)
    assert len(labels) == len(set(labels)) == 4
    t = tasks.square(x=3.0)
    assert t.run() == 9.0 and t.result_source == "disk"  # the outputs landed here
    again = proj.cli("run", "--executor", "slurm", "tasks")
    assert "3 loaded, 1 failed" in again.stderr


def test_head_moved_after_submission_is_refused(proj, slurm):
    tasks = proj.module(TASKS)
    tasks.nap(x=0.0, seconds=4.0).save(proj.root / "tasks")
    for x in (1.0, 2.0):
        tasks.nap(x=x, seconds=0.0).save(proj.root / "tasks")
    sub = proj.cli("run", "--executor", "slurm", "--no-wait", "--array-parallelism", "1",
              "tasks")
    assert sub.returncode == 0 and "submitted 3 task(s)" in sub.stdout
    proj.write("notes.txt", "a new commit while the array waits\n")
    proj.commit("moved on")
    deadline = time.time() + 120
    while time.time() < deadline:
        status = proj.cli("run", "--status")
        if "queued" not in status.stdout:
            break
        time.sleep(1)
    lines = status.stdout.splitlines()
    refused = [ln for ln in lines if "failed" in ln and "HEAD moved" in ln]
    # The first element naps with parallelism 1: the others start after the commit.
    assert len(refused) >= 2, status.stdout
    assert all(ln in refused or ln.split()[1] == "ran" for ln in lines), status.stdout
    assert len(provenance.labels(proj.project)) == 3 - len(refused)


def test_retries_resubmit_failed_elements(proj, slurm, tmp_path):
    tasks = proj.module(TASKS)
    marker = tmp_path / "marker"
    tasks.flaky(x=5, marker=str(marker)).save(proj.root / "tasks")
    out = proj.cli("run", "--executor", "slurm", "--retries", "1", "tasks")
    assert out.returncode == 0, out.stderr
    assert "1 ran" in out.stderr
    assert len(RecordStoreView().filter.status("crashed")) == 1
    assert len(RecordStoreView().filter.status("finished")) == 1


def test_slurm_defaults_come_from_smttask_toml(proj, slurm):
    text = (proj.root / "smttask.toml").read_text()
    proj.write("smttask.toml", text + '\n[executor.slurm]\npartition = "nosuchpartition"\n')
    proj.commit("a partition")
    tasks = proj.module(TASKS)
    tasks.square(x=4.0).save(proj.root / "tasks")
    out = proj.cli("run", "--executor", "slurm", "tasks")
    assert out.returncode == ExecutorError.exit_code
    error = out.stderr.splitlines()[-1]
    assert error.startswith("Error: SLURM refused the jobs:")
    assert "Invalid partition name" in error and "Traceback" not in out.stderr
    ok = proj.cli("run", "--executor", "slurm", "--partition", "test", "tasks")
    assert ok.returncode == 0 and "1 ran" in ok.stderr


def test_several_task_files_per_array_element(proj, slurm):
    tasks = proj.module(TASKS)
    for x in range(5):
        tasks.square(x=float(x)).save(proj.root / "tasks")
    out = proj.cli("run", "--executor", "slurm", "--tasks-per-job", "2", "tasks")
    assert out.returncode == 0 and "5 ran" in out.stderr, out.stderr
    status = proj.cli("run", "--status").stdout.splitlines()
    elements = {line.split()[0] for line in status}
    assert len(status) == 5 and len(elements) == 3  # 2 + 2 + 1
    assert len(provenance.labels(proj.project)) == 5


def test_auto_packing_spreads_short_tasks_over_the_idle_cpus(proj, slurm):
    """Tasks known to be short (from an earlier record) are packed many to an element,
    but over as many elements as the cluster has idle CPUs, not into one."""
    tasks = proj.module(TASKS)
    assert tasks.square(x=1.0).run() == 1.0  # its record says how long a square takes
    for x in range(2, 8):
        tasks.square(x=float(x)).save(proj.root / "tasks")
    # The packing follows the CPUs sinfo reports idle at submission: the node may still be
    # releasing an earlier test's job (one CPU seen busy once, in a fresh-clone run).
    cpus = os.cpu_count() or 1
    assert wait_for(lambda: idle_cpus(None) == cpus), "the test cluster stays busy"
    out = proj.cli("run", "--executor", "slurm", "tasks")
    assert out.returncode == 0 and "6 ran" in out.stderr, out.stderr
    elements = {line.split()[0] for line in proj.cli("run", "--status").stdout.splitlines()}
    assert len(elements) == min(6, cpus)  # the test node: one CPU per core
