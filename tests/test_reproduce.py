"""`smttask reproduce`: records rerun at their commit in a git worktree, outputs compared."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from smttask.view import RecordStoreView

SCALE = """
from smttask import RecordedTask

@RecordedTask
def scale(x: float, k: int) -> float:
    return x * k
"""

CONFIG_STORE_DIFF = """\
[project]
name = "testproj"

[repo]
on_changed = "store-diff"
"""

NOISE = """
import numpy as np
from smttask import RecordedTask
from smttask.typing import Array

@RecordedTask
def noise(n: int) -> Array[float, 1]:
    return np.random.default_rng().normal(size=n)  # unseeded: a new draw each run

@RecordedTask
def jitter(x: float) -> float:
    return x + 1e-12 * np.random.default_rng().uniform(0.5, 1.0)
"""


def datastore_files(proj) -> list[str]:
    data = proj.root / "data"
    return sorted(str(p.relative_to(data)) for p in data.rglob("*"))


def test_a_record_reproduces_at_its_commit_after_the_code_changed(proj):
    tasks = proj.module(SCALE)
    assert tasks.scale(x=1.5, k=3).run() == 4.5
    label = RecordStoreView().latest.label
    proj.write(f"{proj.pkg}/tasks.py", SCALE.replace("x * k", "x * k + 1"))
    proj.commit("scale: add one")
    before = datastore_files(proj)

    out = proj.cli("reproduce", label)

    assert out.returncode == 0, out.stdout + out.stderr
    assert f"{label}  scale  at " in out.stdout
    assert "reproduced (1 output identical)" in out.stdout
    assert out.stdout.rstrip().endswith("1 reproduced")
    record = RecordStoreView().get(label)
    assert "reproduced" in record.tags
    assert "smttask reproduce at" in record.outcome and "reproduced" in record.outcome
    # Nothing of the user's was touched: tree, worktrees, datastore, record store.
    assert "x * k + 1" in (proj.root / proj.pkg / "tasks.py").read_text()
    assert proj.git("status", "--porcelain") == ""
    assert len(proj.git("worktree", "list").splitlines()) == 1
    assert datastore_files(proj) == before
    assert len(RecordStoreView()) == 1


def test_the_current_code_would_differ_so_the_old_commit_really_ran(proj):
    tasks = proj.module(SCALE)
    tasks.scale(x=2.0, k=2).run()
    record = RecordStoreView().latest
    proj.write(f"{proj.pkg}/tasks.py", SCALE.replace("x * k", "x * k + 1"))
    proj.commit("scale: add one")
    importlib.reload(tasks)
    # The record's task description, rebuilt with today's code, gives another answer...
    assert record.task.run(recompute=True, record=False) == 5.0
    # ...but the reproduction ran the recorded commit's code.
    rep = record.reproduce(tag=False)
    assert rep.outcome == "reproduced", rep
    assert [(c.name, c.state) for c in rep.outputs] == [("result", "identical")]
    assert "reproduced" not in RecordStoreView().get(record.label).tags


def test_an_unseeded_random_task_is_reported_as_different(proj):
    tasks = proj.module(NOISE)
    tasks.noise(n=50).run()
    label = RecordStoreView().latest.label

    out = proj.cli("reproduce", label)

    assert out.returncode == 1, out.stdout + out.stderr
    assert "differs (result)" in out.stdout
    detail = next(line for line in out.stdout.splitlines() if "output result: differs" in line)
    assert "first difference at result[0]:" in detail
    assert "50 of 50 elements differ" in detail
    assert "max abs diff" in detail and "max rel diff" in detail
    record = RecordStoreView().get(label)
    assert "differs" in record.tags and "reproduced" not in record.tags
    assert "first difference at result[0]" in record.outcome


def test_a_tolerance_accepts_a_tiny_difference(proj):
    tasks = proj.module(NOISE)
    tasks.jitter(x=1.0).run()
    label = RecordStoreView().latest.label

    strict = proj.cli("reproduce", "--no-tag", label)
    assert strict.returncode == 1, strict.stdout + strict.stderr
    loose = proj.cli("reproduce", "--atol", "1e-9", label)
    assert loose.returncode == 0, loose.stdout + loose.stderr
    assert "output result: equal (within rtol=0, atol=1e-09)" in loose.stdout
    assert "reproduced" in RecordStoreView().get(label).tags


def test_a_record_whose_commit_is_gone_cannot_run(proj):
    tasks = proj.module(SCALE)
    proj.git("checkout", "-q", "-b", "experiment")
    proj.write(f"{proj.pkg}/tasks.py", SCALE.replace("x * k", "x * k * 10"))
    proj.commit("experiment")
    importlib.reload(tasks)
    tasks.scale(x=1.0, k=1).run()
    record = RecordStoreView().latest
    commit = record.version
    # The experiment branch is dropped and its commits garbage-collected.
    proj.git("checkout", "-q", "main")
    proj.git("branch", "-q", "-D", "experiment")
    proj.git("reflog", "expire", "--expire=now", "--all")
    proj.git("gc", "-q", "--prune=now")

    out = proj.cli("reproduce", record.label)

    assert out.returncode == 2, out.stdout + out.stderr
    assert f"could not run: commit {commit[:10]} is not in the repository" in out.stdout
    assert out.stdout.rstrip().endswith("1 could not run")
    assert "Traceback" not in out.stdout + out.stderr
    assert "could not run" in RecordStoreView().get(record.label).outcome


def test_untracked_code_recorded_under_store_diff_is_reproduced_from_the_diff(proj):
    """Under store-diff, a task may import a helper module git does not track: the record's
    diff holds it, and the reproduction applies that diff in its checkout."""
    proj.write("smttask.toml", (proj.root / "smttask.toml").read_text().replace(
        "[repo]", '[repo]\non_changed = "store-diff"'))
    helper = f"helper_{proj.pkg}"
    proj.write(f"{proj.pkg}/tasks.py", SCALE.replace("from smttask", f"import {helper}\n"
                                                     "from smttask")
               .replace("x * k", f"x * k + {helper}.OFFSET"))
    proj.commit("tasks")
    proj.write(f"{helper}.py", "OFFSET = 1.0\n")  # never committed
    importlib.invalidate_caches()
    tasks = importlib.import_module(f"{proj.pkg}.tasks")
    tasks.scale(x=1.0, k=2).run()
    record = RecordStoreView().latest

    assert f"+++ b/{helper}.py" in record.details().diff

    rep = record.reproduce(tag=False)

    assert rep.outcome == "reproduced", rep
    out = proj.cli("reproduce", record.label)
    assert out.returncode == 0 and "Traceback" not in out.stdout + out.stderr


def _fake_distribution(site: Path, version: str) -> None:
    for old in site.glob("labtool-*.dist-info"):
        for f in old.iterdir():
            f.unlink()
        old.rmdir()
    info = site / f"labtool-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: labtool\nVersion: {version}\n")
    (site / "labtool").mkdir(exist_ok=True)
    (site / "labtool" / "__init__.py").write_text("FACTOR = 2\n")


def test_package_versions_that_changed_are_listed(proj, tmp_path, monkeypatch, request):
    site = tmp_path / "site"
    _fake_distribution(site, "1.0")
    monkeypatch.syspath_prepend(str(site))
    # Later records on this worker must not list a package whose folder is gone.
    request.addfinalizer(lambda: sys.modules.pop("labtool", None))
    tasks = proj.module(SCALE.replace("from smttask", "import labtool\nfrom smttask")
                        .replace("x * k", "x * k * labtool.FACTOR"))
    assert tasks.scale(x=1.0, k=3).run() == 6.0
    record = RecordStoreView().latest
    assert ("labtool", "1.0") in record.details().packages
    _fake_distribution(site, "2.0")  # the environment moved on

    out = proj.cli("reproduce", record.label,
                   env={"PYTHONPATH": os.pathsep.join([str(proj.root), str(site)])})

    assert out.returncode == 0, out.stdout + out.stderr
    assert "reproduced (1 output identical) under other package versions (1 changed)" \
        in out.stdout
    assert "    package labtool 1.0 recorded, 2.0 now" in out.stdout


def test_records_by_task_name_and_task_file(proj):
    tasks = proj.module(SCALE)
    tasks.scale(x=1.0, k=1).run()
    path = tasks.scale(x=2.0, k=1).save(proj.root / "tasks")
    tasks.scale(x=2.0, k=1).run()

    by_file = proj.cli("reproduce", "--no-tag", str(path))
    assert by_file.returncode == 0, by_file.stdout + by_file.stderr
    assert by_file.stdout.count("reproduced (") == 1
    by_task = proj.cli("reproduce", "--no-tag", "--task", "scale")
    assert by_task.stdout.count("reproduced (") == 2
    nothing = proj.cli("reproduce")
    assert nothing.returncode == 2
    assert nothing.stderr.startswith("Error: name the records to reproduce")


def test_reproduce_as_a_command_line_program(proj):
    """The installed command, in its own process, and its exit status."""
    tasks = proj.module(SCALE)
    tasks.scale(x=1.0, k=4).run()
    out = proj.cli("reproduce", "--all", process=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 reproduced" in out.stdout


def test_the_replay_module_runs_standalone():
    """``python -m smttask.replay`` without arguments fails with a usage line, not a
    traceback deep inside."""
    proc = subprocess.run([sys.executable, "-m", "smttask.replay"], capture_output=True,
                          text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip() == textwrap.dedent("usage: python -m smttask.replay JOB.json")


def test_upstream_results_come_from_the_datastore(proj):
    """A composed record is rerun on the upstream result it used, not on a new draw."""
    tasks = proj.module(NOISE + """
@RecordedTask
def total(values: Array[float, 1]) -> float:
    return float(values.sum())

@RecordedTask
def double(x: float) -> float:
    return 2 * x
""")
    tasks.double(x=tasks.total(values=tasks.noise(n=20))).run()

    # The records share a commit, hence one process: the upstream's new draw must not
    # leak into the rerun of the records that used the old one.
    reps = {r.taskname: r for r in RecordStoreView().reproduce(tag=False)}

    assert reps["total"].outcome == "reproduced", reps["total"]
    assert list(reps["total"].upstream.values()) == ["loaded from the datastore"]
    assert reps["noise"].outcome == "differs"
    # Only the nearest result on disk is loaded; what lies behind it is not rerun.
    assert reps["double"].outcome == "reproduced", reps["double"]
    assert [k.split()[0] for k in reps["double"].upstream] == ["total"]


def test_the_recorded_diff_is_applied(proj):
    """A run recorded under on_changed = "store-diff" is reproduced with its diff."""
    proj.write("smttask.toml", CONFIG_STORE_DIFF)
    tasks = proj.module(SCALE)
    proj.write(f"{proj.pkg}/tasks.py", SCALE.replace("x * k", "x * k * 100"))  # uncommitted
    importlib.reload(tasks)
    assert tasks.scale(x=1.0, k=2).run() == 200.0
    record = RecordStoreView().latest
    assert "x * k * 100" in record.details().diff
    proj.git("checkout", "--", ".")  # the change is dropped from the tree

    rep = record.reproduce(tag=False)

    assert rep.outcome == "reproduced", rep
    assert proj.git("status", "--porcelain") == ""
