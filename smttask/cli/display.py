"""What ``smttask run`` shows: a progress bar (one line per task when not on a terminal),
the lines the tasks print, and a summary.

Everything goes through one rich console on the standard error, so that a task's output
is printed above the bar and never into it. Imported by ``smttask run`` only (rich is not
needed for ``smttask --help``).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from datetime import timedelta
from typing import TYPE_CHECKING

from rich.console import Console, RenderableType
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Column, Table
from rich.text import Text

from .columns import fit_line, middle, terminal_width

if TYPE_CHECKING:
    from ..jobs import BatchResult, Job

__all__ = ["WIDE", "Display"]

#: From this many columns on, the counts share the bar's line; narrower, they go below it.
WIDE = 100


class Display:
    """Progress, output and summary of one batch (the ``on_event`` and ``on_output`` of
    :func:`smttask.batch.run`).

    ``show_output``: print what the tasks write to stdout (otherwise it is kept for their
    records only); what they write to stderr is shown unless ``quiet``. ``parallel``:
    prefix each printed line with its task. ``verbose``: print each failed task's
    traceback. While a task's debugger has the terminal, the bar stops and what would be
    printed waits.
    """

    def __init__(self, *, quiet: bool = False, live: bool = True, show_output: bool = False,
                 parallel: bool = False, verbose: int = 0) -> None:
        # The console keeps the stream it started with: while a task runs in this
        # process, sys.stderr is the task's (captured) stream.
        self.console = Console(file=sys.stderr)
        self.quiet = quiet
        self.show_output = show_output
        self.parallel = parallel
        self.prefixed = False
        self.live = live and self.console.is_terminal and not quiet
        self.progress: _Bar | None = None
        self.done = 0
        self.hidden: set[str] = set()  # the tasks whose printed output was not shown
        self.verbose = verbose
        self.debugging: set[int] = set()  # ids of the jobs whose debugger is open
        self.held: list[RenderableType] = []  # what to print once no debugger is open

    # --- events ----------------------------------------------------------------------------

    def __call__(self, kind: str, job: Job | None, batch: BatchResult) -> None:
        if kind == "planned":
            for _, reason in batch.invalid:
                self.console.print(Text.assemble(("invalid ", "red"), reason), soft_wrap=True)
            self.prefixed = self.parallel and len(batch.jobs) > 1
            if self.live:
                self.progress = _Bar(self.console, len(batch.jobs), _counts(batch))
                self.progress.start()
        elif kind == "debugging" and job is not None:
            self._pause(job)
        elif kind == "finished" and job is not None:
            self.done += 1
            if self.progress is None and (not self.quiet or not job.state.succeeded):
                self._line(job, len(batch.jobs))
            if self.verbose and job.traceback and job.state == "failed":
                self._print(Text(f"Traceback of {job.name} (record {job.label or 'none'}):\n"
                                 + job.traceback.rstrip()))
            if id(job) in self.debugging:
                self._resume(job)
            if self.progress is not None and not self.debugging:
                self._update(batch)
        elif kind == "started" and self.progress is not None and not self.debugging:
            self._update(batch)
        elif kind == "done" and self.progress is not None:
            self._update(batch, done=True)
            self.progress.stop()

    def output(self, job: Job | None, stream: str, line: str) -> None:
        """One line a task printed: shown above the bar, or kept for the record only."""
        if self.quiet:
            return
        if stream == "stdout" and not self.show_output:
            if job is not None:
                self.hidden.add(job.name)
            return
        text = Text()
        if self.prefixed:
            who = f"{job.task.taskname} {job.task.digest[:6]}" if job is not None else "worker"
            text.append(f"{who} │ ", style="dim")
        text.append_text(Text.from_ansi(line))
        self._print(text)

    def _print(self, text: RenderableType) -> None:
        if self.debugging:
            self.held.append(text)
        else:
            self.console.print(text, soft_wrap=True, highlight=False)

    def _pause(self, job: Job) -> None:
        if not self.debugging and self.progress is not None:
            self.progress.stop()
        self.debugging.add(id(job))
        self.console.print(Text(f"breakpoint() in {job.name}: pdb has the terminal (`c` lets "
                                "the task go on, `q` fails it); the progress display waits"),
                           soft_wrap=True)

    def _resume(self, job: Job) -> None:
        self.debugging.discard(id(job))
        if not self.debugging:
            for text in self.held:
                self.console.print(text, soft_wrap=True, highlight=False)
            self.held.clear()
            if self.progress is not None:
                self.progress.start()

    def _update(self, batch: BatchResult, done: bool = False) -> None:
        assert self.progress is not None
        if done:
            self.progress.colour(_outcome(batch))
        self.progress.update(self.progress.bar, completed=self.done,
                             counts=_counts(batch, done))

    def _line(self, job: Job, total: int) -> None:
        """``[i/n] state name duration record LABEL error``: on a narrow terminal the
        name is cut in the middle and the record and error go below, never split."""
        digits = len(str(total))
        first = f"[{self.done:>{digits}}/{total}] {job.state:<7} "
        after = f"  {job.duration:.2f}s"
        record = f"  record {job.label}" if job.label else ""
        error = f"  {job.error}" if job.error else ""
        screen = terminal_width(sys.stderr)
        name = job.name
        if screen is not None and len(first + name + after + record + error) > screen:
            name = _middle(name, screen - len(first + after))
            indent = len(first) if len(first + record) <= screen + 2 else 4
            self._print(Text(fit_line(f"{first}{name}{after}", record + error, screen,
                                      indent=indent)))
            return
        self._print(Text(f"{first}{name}{after}{record}{error}"))

    # --- the summary -----------------------------------------------------------------------

    def summary(self, batch: BatchResult) -> None:
        """The tasks that did not finish (names and labels whole, whatever the width),
        the counts, and where hidden output went."""
        problems = [j for j in batch.jobs if not j.state.succeeded]
        if problems:
            self.console.print(Text("Tasks that did not finish:", style="bold"))
            self.console.print(_failures(problems, self.console.width))
        states = ("ran", "loaded", "failed", "skipped", "killed")
        parts = [f"{batch.count(s)} {s}" for s in states if batch.count(s)]
        if batch.invalid:
            parts.append(f"{len(batch.invalid)} invalid")
        self.console.print(f"{', '.join(parts) or 'nothing to do'} in {batch.elapsed:.1f}s"
                           + (" (interrupted)" if batch.interrupted else ""),
                           highlight=False, markup=False)
        if self.hidden and not self.quiet:
            n = len(self.hidden)
            whose = "1 task: in its record" if n == 1 else f"{n} tasks: in their records"
            self.console.print(Text(f"output of {whose} (smttask store show), or use "
                                    "--show-output", style="dim"))


def _failures(jobs: Iterable[Job], width: int) -> RenderableType:
    """One entry per task: state, task file and record label (never split: a name too
    long for the terminal is cut in the middle), the reason below them, wrapped."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(no_wrap=True)
    grid.add_column(overflow="fold")
    room = width - 2 - len("skipped")  # the second column's width
    for job in jobs:
        name = _middle(job.name, room)
        head = Text(name)
        if job.label:
            record = f"record {job.label}"
            head.append(("  " if len(name) + 2 + len(record) <= room else "\n") + record,
                        style="cyan")
        body = Text.assemble(head, "\n", (job.error or "", "dim")) if job.error else head
        grid.add_row(Text(str(job.state), style="red" if job.state == "failed" else "yellow"),
                     body)
    return grid


def _middle(name: str, room: int) -> str:
    """``name``, or its start and end around "…" if it is longer than ``room``."""
    return name if room < 9 else middle(name, room)


def _counts(batch: BatchResult, done: bool = False) -> str:
    stopped = batch.count("failed") + batch.count("skipped") + batch.count("killed")
    parts = [f"[green]ran {batch.count('ran')}[/]", f"loaded {batch.count('loaded')}",
             f"[red]failed {stopped}[/]" if stopped else "failed 0"]
    if not done:
        parts.append(f"running {batch.count('running')}")
    return " · ".join(parts)


def _outcome(batch: BatchResult) -> str:
    """The finished bar's colour."""
    if batch.interrupted:
        return "yellow"
    if batch.invalid or any(not j.state.succeeded for j in batch.jobs):
        return "red"
    return "green"


class _Eta(ProgressColumn):
    """``ETA 0:01:02`` while the batch runs; nothing once it is finished."""

    def render(self, task: Task) -> Text:
        if task.finished:
            return Text("")
        left = task.time_remaining
        when = "-:--:--" if left is None else str(timedelta(seconds=int(left)))
        return Text(f"ETA {when}", style="progress.remaining")


class _Bar(Progress):
    """The bar, done/total, elapsed time and ETA, with the counts beside them on a wide
    terminal and on a line below on a narrow one (never cut)."""

    def __init__(self, console: Console, total: int, counts: str) -> None:
        self.bar_column = BarColumn(bar_width=None, table_column=Column(ratio=1))
        fixed = [MofNCompleteColumn(), TimeElapsedColumn(), _Eta()]
        counts_column = TextColumn("· {task.fields[counts]} ·")
        self.wide = (self.bar_column, fixed[0], counts_column, *fixed[1:])
        self.narrow = (self.bar_column, *fixed)
        self.term = console
        super().__init__(*self.wide, console=console, expand=True)
        self.bar = self.add_task("run", total=total, counts=counts)

    def colour(self, style: str) -> None:
        self.bar_column.complete_style = self.bar_column.finished_style = style

    def get_renderables(self) -> Iterable[RenderableType]:
        wide = self.term.width >= WIDE
        self.columns = self.wide if wide else self.narrow
        yield self.make_tasks_table(self.tasks)
        if not wide and self.tasks:
            yield Text.from_markup(self.tasks[0].fields["counts"])
