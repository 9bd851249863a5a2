"""What `smttask run` shows: the bar and the tasks' output in a real terminal (a
pseudo-terminal read by a terminal emulator), and the summary at 80 and 120 columns."""

from __future__ import annotations

import re

from terminal import Terminal

from smttask import provenance

TALK = """
import sys, time
from smttask import RecordedTask

@RecordedTask
def talk(n: int) -> int:
    for i in range(4):
        print(f"line {i} of task {n}", flush=True)
        time.sleep(0.15)
    print(f"note from task {n}", file=sys.stderr)
    if n == 2:
        raise ValueError(f"task {n} cannot talk any more")
    return n

@RecordedTask
def simulate_the_whole_population(n: int) -> int:
    raise ArithmeticError(f"no value for {n}: the quick brown fox jumps over the lazy dog "
                          "again and again until the line is long enough to be wrapped")
"""

BAR = re.compile("[━╸╺]")


def make_tasks(proj, n: int = 4):
    """``n`` task files of talking tasks (task 2 fails); the tasks' module."""
    tasks = proj.module(TALK)
    for i in range(n):
        tasks.talk(n=i).save(proj.root / "tasks")
    return tasks


def test_printing_tasks_leave_no_bar_fragment_at_80_columns(proj):
    tasks = make_tasks(proj)
    term = Terminal(["run", "-n", "2", "--show-output", "tasks"], proj.root, 80, 24,
                    env={"PYTHONPATH": str(proj.root)})
    frames: list[list[str]] = []

    def watch(t: Terminal) -> None:
        bars = [i for i, row in enumerate(t.rows()) if BAR.search(row)]
        if bars:
            frames.append(t.rows()[bars[0]:bars[0] + 2])

    assert term.finish(watch) == 1
    seen = term.transcript()
    # One bar in the whole transcript: the last one; no copy of it was left behind and
    # no printed line was glued to it.
    bar_lines = [line for line in seen if BAR.search(line)]
    assert len(bar_lines) == 1, "\n".join(seen)
    [bar] = bar_lines
    assert re.fullmatch(r"[━╸╺ ]+ 4/4 0:00:\d\d", bar), bar  # elapsed time whole
    row = term.rows().index(bar)
    assert term.colours(row, BAR) == {"red"}  # a task failed: the finished bar is red
    assert term.rows()[row + 1] == "ran 3 · loaded 0 · failed 1"  # counts below at 80 cols
    # Every line the tasks printed arrived whole, on its own line, named by its task.
    digests = {i: tasks.talk(n=i).digest[:6] for i in range(4)}
    for n, digest in digests.items():
        for i in range(4):
            assert f"talk {digest} │ line {i} of task {n}" in seen
        assert f"talk {digest} │ note from task {n}" in seen
    # The counts were there from the first frame on, never blank, never cut.
    assert frames
    cut = [frame for frame in frames
           if not re.fullmatch(r"ran \d · loaded 0 · failed \d( · running \d)?", frame[1])
           or not re.search(r" \d/4 0:00:\d\d( ETA (-:--:--|0:00:\d\d))?$", frame[0])]
    assert not cut, cut


def test_at_120_columns_the_counts_share_the_bar_line(proj):
    make_tasks(proj, 3)
    term = Terminal(["run", "-n", "2", "tasks"], proj.root, 120, 40,
                    env={"PYTHONPATH": str(proj.root)})
    assert term.finish() == 1
    [bar] = [line for line in term.transcript() if BAR.search(line)]
    assert re.fullmatch(r"[━╸╺ ]+ 3/3 · ran 2 · loaded 0 · failed 1 · 0:00:\d\d", bar), bar
    assert not any("line 0 of task" in line for line in term.transcript())  # stdout: hidden
    assert any(line.endswith("│ note from task 1") for line in term.transcript())  # stderr
    assert term.transcript()[-1] == \
        "output of 3 tasks: in their records (smttask store show), or use --show-output"


def test_output_is_kept_for_the_record_and_the_summary_says_where(proj):
    tasks = make_tasks(proj)
    by_digest = {tasks.talk(n=i).digest[:6]: i for i in range(4)}
    proc = proj.cli("run", "-n", "2", "tasks")  # not a terminal: one line per task
    assert proc.returncode == 1
    assert "line 0 of task" not in proc.stderr  # stdout is for the records by default
    assert re.search(r"^talk \w{6} │ note from task 3$", proc.stderr, re.M)  # stderr is shown
    assert "output of 4 tasks: in their records (smttask store show), or use --show-output" \
        in proc.stderr
    records = [provenance.get_record(proj.project, label)
               for label in provenance.labels(proj.project)]
    assert len(records) == 4
    for rec in records:  # each record holds its own task's output, stdout and stderr
        k = by_digest[rec.label.rsplit("_", 1)[-1]]
        assert rec.stdout_stderr == "".join(f"line {i} of task {k}\n" for i in range(4)) \
            + f"note from task {k}\n"


def test_one_worker_shows_output_unprefixed(proj):
    make_tasks(proj, 2)
    proc = proj.cli("run", "-n", "1", "--show-output", "tasks")
    assert proc.returncode == 0
    lines = proc.stderr.splitlines()
    assert "line 3 of task 0" in lines and "note from task 1" in lines  # in this process
    assert "output of" not in proc.stderr
    rec = provenance.get_record(proj.project, provenance.labels(proj.project)[0])
    assert "line 0 of task" in rec.stdout_stderr and "note from task" in rec.stdout_stderr


def summary_of(text: str) -> list[str]:
    lines = [line.rstrip() for line in text.splitlines()]
    return lines[lines.index("Tasks that did not finish:"):]


def test_the_summary_at_80_columns_keeps_names_and_labels_whole(proj):
    tasks = proj.module(TALK)
    folder = proj.root / "tasks"
    paths = [tasks.talk(n=2).save(folder),
             tasks.simulate_the_whole_population(n=1).save(folder)]
    proc = proj.cli("run", "-n", "2", "tasks", env={"COLUMNS": "80"})
    assert proc.returncode == 1
    summary = summary_of(proc.stderr)
    assert all(len(line) <= 80 for line in summary), summary
    labels = sorted(provenance.labels(proj.project))
    assert len(labels) == 2
    for label in labels:
        assert any(line.endswith(f" record {label}") for line in summary), summary
    for path in paths:
        assert any(path.name in line for line in summary), (path.name, summary)
    # The reason is the message alone, wrapped at words.
    text = " ".join(line.strip() for line in summary)
    assert "ValueError: task 2 cannot talk any more" in text
    assert ("ArithmeticError: no value for 1: the quick brown fox jumps over the lazy dog "
            "again and again until the line is long enough to be wrapped") in text
    digests = {tasks.talk(n=2).digest, tasks.simulate_the_whole_population(n=1).digest}
    reasons = [line for line in summary if "Error" in line]
    assert reasons and not any(d in line for d in digests for line in reasons)


def test_the_summary_at_120_columns_gives_one_line_per_failure_head(proj):
    tasks = proj.module(TALK)
    path = tasks.talk(n=2).save(proj.root / "tasks")
    proc = proj.cli("run", "-n", "1", "tasks", env={"COLUMNS": "120"})
    [label] = provenance.labels(proj.project)
    assert f"failed  {path.name}  record {label}" in summary_of(proc.stderr)
    assert "        ValueError: task 2 cannot talk any more" in summary_of(proc.stderr)


def test_a_name_longer_than_the_terminal_is_cut_in_the_middle():
    from smttask.cli.display import _middle

    name = "a_task_with_a_rather_long_descriptive_name__0123456789abcdef0123.taskdesc.json"
    cut = _middle(name, 40)
    assert len(cut) == 40 and cut.startswith("a_task_with") and cut.endswith(".taskdesc.json")
    assert "…" in cut and _middle("short.taskdesc.json", 40) == "short.taskdesc.json"
