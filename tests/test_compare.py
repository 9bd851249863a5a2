"""Comparing: smttask diff (task files, records), why, store list --params/--where, compare."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import cli

from smttask import UsageError
from smttask.compare import diff
from smttask.view import RSView, parse_condition

TASKS = """
from typing import Tuple

import numpy as np

from smttask import RecordedTask
from smttask.typing import Array


@RecordedTask
def analyze(arr: Array, dt: float, nbins: int) -> Tuple[float, float, float]:
    hist, _ = np.histogram(arr, bins=nbins)
    return float(np.mean(arr) / dt), float(np.std(arr) / dt), float(hist.max() / len(arr))


@RecordedTask
def make(n: int) -> float:
    return float(n)


@RecordedTask
def scale(x: float, factor: float) -> float:
    return x * factor
"""

SIGNAL = np.arange(8, dtype=float)


@pytest.fixture
def tasks(proj):
    return proj.module(TASKS)


@pytest.fixture
def sweep(proj, tasks):
    """Six recorded runs: dt in (0.1, 0.2, 0.5) × nbins in (2, 4), oldest first."""
    for dt in (0.1, 0.2, 0.5):
        for nbins in (2, 4):
            tasks.analyze(arr=SIGNAL, dt=dt, nbins=nbins).run()
    return {(r.inputs["dt"], r.inputs["nbins"]): r.label for r in RSView()}


def test_diff_of_two_task_files_names_inputs_and_array_elements(proj, tasks):
    other = SIGNAL.copy()
    other[5] = 50.0
    a = tasks.analyze(arr=SIGNAL, dt=0.1, nbins=2)
    b = tasks.analyze(arr=other, dt=0.2, nbins=2)
    pa, pb = a.save("tasks"), b.save("tasks")
    proc = proj.cli("diff", str(pa), str(pb))
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout.splitlines() == [
        f"A  task file {pa}: analyze {a.digest}",
        f"B  task file {pb}: analyze {b.digest}",
        "2 inputs differ (A → B):",
        "  arr: array float64 (8,): 1 of 8 elements differ, first at [5]: 5.0 → 50.0",
        "  dt: 0.1 → 0.2",
    ]
    same = proj.cli("diff", str(pa), str(pa))
    assert same.returncode == 0
    assert same.stdout.splitlines()[-1] == "same digest: the same task, and the same result"


def test_array_dtype_and_shape_come_first(tasks):
    base = tasks.analyze(arr=SIGNAL, dt=0.1, nbins=2).save("tasks")
    f32 = tasks.analyze(arr=SIGNAL.astype(np.float32), dt=0.1, nbins=2).save("tasks")
    short = tasks.analyze(arr=SIGNAL[:5], dt=0.1, nbins=2).save("tasks")
    nan = tasks.analyze(arr=np.where(SIGNAL > 6, np.nan, SIGNAL), dt=0.1, nbins=2).save("tasks")
    assert [str(d) for d in diff(base, f32).differences] == ["arr: array dtype <f8 → <f4"]
    assert [str(d) for d in diff(base, short).differences] == ["arr: array shape (8,) → (5,)"]
    assert [str(d) for d in diff(base, nan).differences] == [
        "arr: array float64 (8,): 1 of 8 elements differ, first at [7]: 7.0 → nan"]
    assert diff(nan, nan).same


def test_diff_reaches_upstream_inputs_and_records(proj, tasks):
    rec_task = tasks.scale(x=tasks.make(n=1), factor=2.0)
    rec_task.run()
    label = RSView().filter.task("scale").latest.label
    changed = tasks.scale(x=tasks.make(n=7), factor=2.0).save("tasks")
    proc = proj.cli("diff", label[:-2], str(changed))
    assert proc.returncode == 1, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == f"A  record {label}: scale {rec_task.digest}"
    assert lines[2:] == ["1 input differs (A → B):", "  x.n: 1 → 7"]
    make = RSView().filter.task("make").latest.label
    other = proj.cli("diff", label, make)
    assert "different tasks: scale → make" in other.stdout and other.returncode == 1
    assert proj.cli("diff", label, label).returncode == 0


def test_diff_of_something_else_is_one_line(proj, tasks):
    proc = proj.cli("diff", "nope", "nothing")
    assert proc.returncode == UsageError.exit_code
    assert proc.stderr == ("Error: nope is not a task file, and no record with a label "
                           "starting with 'nope'\n")
    (proj.root / "x.json").write_text("[1, 2]")
    bad = proj.cli("diff", "x.json", "x.json")
    assert bad.returncode == 5 and "x.json: not a task file" in bad.stderr


def test_why_reports_array_elements_like_diff(proj, tasks):
    tasks.analyze(arr=SIGNAL, dt=0.1, nbins=2).run()
    other = SIGNAL.copy()
    other[2] = -1.0
    path = tasks.analyze(arr=other, dt=0.1, nbins=2).save("tasks")
    out = proj.cli("why", str(path)).stdout
    assert "  arr: array float64 (8,): 1 of 8 elements differ, first at [2]: 2.0 → -1.0" in out


# --- parameters in the store CLI ---------------------------------------------------------

def test_list_with_params_and_where(proj, sweep):
    proc = proj.cli("store", "list", "--params", "--where", "dt>=0.2", "--where", "nbins=4")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["label", "task", "status", "duration", "reason", "version",
                                "arr", "dt", "nbins"]
    assert [ln.split()[0] for ln in lines[1:]] == [sweep[(0.5, 4)], sweep[(0.2, 4)]]
    assert "<array float64 (8,)>" in lines[1] and lines[1].split()[-2:] == ["0.5", "4"]
    named = proj.cli("store", "list", "--where", "dt<0.2", "--params", "nbins,dt")
    assert named.stdout.splitlines()[0].split()[-2:] == ["nbins", "dt"]
    assert len(named.stdout.splitlines()) == 3
    as_json = proj.cli("store", "list", "--json", "--params", "dt", "--where", "dt!=0.1",
                       "--limit", "1")
    rows = [json.loads(ln) for ln in as_json.stdout.splitlines()]
    assert [(r["label"], r["dt"]) for r in rows] == [(sweep[(0.5, 4)], 0.5)]
    assert "--limit 0 shows all" in as_json.stderr


def test_where_means_what_filter_params_means(proj, sweep):
    rs = RSView()
    assert parse_condition("dt >= 0.3") == ("ge", "dt", 0.3)
    assert parse_condition("name=abc") == ("eq", "name", "abc")
    assert [r.label for r in rs.filter.where("dt>0.1", "dt<=0.2", "nbins!=2")] == \
        [r.label for r in rs.filter.params(gt={"dt": 0.1}, le={"dt": 0.2}, ne={"nbins": 2})]
    assert len(rs.filter.where("dt>0.1", "dt>0.2")) == 2  # both bounds hold
    bad = proj.cli("store", "list", "--where", "dt>>1")
    assert bad.returncode == 2
    assert bad.stderr.startswith("Error: cannot read the condition 'dt>>1': write NAME OP VALUE")


def test_compare_shows_differing_inputs_and_scalar_outputs(proj, sweep):
    labels = [sweep[(0.1, 2)], sweep[(0.5, 2)], sweep[(0.5, 4)]]
    proc = proj.cli("store", "compare", *(label[:20] for label in labels))
    assert proc.returncode == 0, proc.stderr
    rows = [ln.split() for ln in proc.stdout.splitlines()]
    assert rows[0] == labels
    assert rows[1] == ["dt", "0.1", "0.5", "0.5"]
    assert rows[2] == ["nbins", "2", "2", "4"]
    assert [r[0] for r in rows[3:]] == ["result[0]", "result[1]", "result[2]"]
    mean = float(np.mean(SIGNAL))
    assert rows[3][1:] == [f"{mean / 0.1:.6g}", f"{mean / 0.5:.6g}", f"{mean / 0.5:.6g}"]
    assert rows[5][1:] == ["0.5", "0.5", "0.25"]
    # A fresh `smttask` process finds the project's task modules without PYTHONPATH.
    fresh = cli("store", "compare", *labels, cwd=proj.root, process=True)
    assert fresh.returncode == 0 and fresh.stdout == proc.stdout, fresh.stderr
    one = proj.cli("store", "compare", labels[0])
    assert one.returncode == 2 and "at least two records" in one.stderr
