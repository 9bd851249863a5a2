"""Tables never split a record label, a task name or a task file across lines: at 80 and
at 40 columns each is whole on one line or cut in the middle with "…", and no line is
wider than the terminal (so the terminal does not wrap it either). Real commands on a
project with 60-character task names and deep task-file folders."""

from __future__ import annotations

import re

import pytest

from smttask import provenance

NAME = "integrate_membrane_potential_of_a_large_network_" + "x" * 12
assert len(NAME) == 60
TASKS = f"""
from smttask import RecordedTask


@RecordedTask
def {NAME}(rate: float, label_of_the_condition: str) -> float:
    return rate * 2
"""
DEEP = "tasks/figures/chapter_three/section_two/long_runs"


def shown(needle: str, lines: list[str]) -> bool:
    """``needle`` whole on one line, or cut in the middle: ``start…end`` of it."""
    for line in lines:
        if needle in line:
            return True
        for word in line.split():
            head, sep, tail = word.partition("…")
            if sep and head and tail and needle.startswith(head) and needle.endswith(tail):
                return True
    return False


def check(out: str, width: int, needles: list[str]) -> None:
    lines = out.splitlines()
    wide = [line for line in lines if len(line) > width]
    assert not wide, f"lines wider than {width} columns:\n" + "\n".join(wide)
    for needle in needles:
        assert shown(needle, lines), f"{needle!r} split or missing at {width} columns:\n{out}"


@pytest.fixture
def project(proj):
    tasks = proj.module(TASKS)
    task = getattr(tasks, NAME)
    files = [task(rate=r, label_of_the_condition=f"condition number {r}")
             .save(proj.root / DEEP) for r in (1.0, 2.0)]
    proj.commit("task files")
    return proj, [f.relative_to(proj.root).as_posix() for f in files]


@pytest.mark.parametrize("width", [80, 40])
def test_commands_fit_labels_and_task_files_whole_or_cut_in_the_middle(project, width):
    proj, files = project
    env = {"COLUMNS": str(width)}
    names = [f.rsplit("/", 1)[1] for f in files]

    dry = proj.cli("run", "--dry-run", "tasks", env=env)
    assert dry.returncode == 0, dry.stderr
    check(dry.stdout, width, names)

    ran = proj.cli("run", "-n", "1", "tasks", env=env)  # not a terminal: a line per task
    assert ran.returncode == 0, ran.stderr
    labels = sorted(provenance.labels(proj.project))
    assert len(labels) == 2
    check(ran.stderr, width, names + labels)

    status = proj.cli("status", "tasks", env=env)
    assert status.returncode == 0, status.stderr
    check(status.stdout, width, files)

    for args in (["store", "list"], ["store", "list", "--params"],
                 ["store", "compare", *labels]):
        proc = proj.cli(*args, env=env)
        assert proc.returncode == 0, proc.stderr
        check(proc.stdout, width, labels)
        if "list" in args:
            check(proc.stdout, width, [NAME])
            assert len(proc.stdout.splitlines()) == 3  # the head and one line per record
        if width == 40 and args[-1] == "--params":
            assert re.search(r"column\(s\) left out to fit 40 columns", proc.stderr)

    show = proj.cli("store", "show", labels[0], env=env)  # one field a line, values whole
    assert show.returncode == 0, show.stderr
    assert f"label: {labels[0]}" in show.stdout and f"task: {NAME}" in show.stdout


def test_through_a_pipe_nothing_is_cut(project):
    proj, files = project
    assert proj.cli("run", "-n", "1", "tasks").returncode == 0
    out = proj.cli("store", "list", "--params", env={"COLUMNS": ""}).stdout
    assert "…" not in out and all(NAME in line for line in out.splitlines()[1:])
    assert "condition number 1.0" in out
