"""The job model shared by the executors: jobs, their states, worker reports, the batch.

A batch is planned once (:func:`plan`): every distinct recorded task, upstream ones
included, is one :class:`Job`, run once, after the jobs it depends on. An executor runs
jobs with :func:`execute` (in a worker process, a SLURM array element, or here) and
settles each :class:`Report` into its job.
"""

from __future__ import annotations

import contextlib
import enum
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import config, repo, taskfile
from .errors import SmttaskError
from .memoized import Memoized
from .outputs import Datastore
from .provenance.records import script_arguments
from .recorded import Recorded
from .task import Task

__all__ = [
    "BatchResult",
    "Event",
    "Job",
    "JobState",
    "Message",
    "Output",
    "Report",
    "WorkerSettings",
    "check_repo",
    "debugger_on_terminal",
    "execute",
    "load_all",
    "on_disk",
    "plan",
    "upstream",
]


class JobState(enum.StrEnum):
    """Where a job is: pending → running → ran | loaded | failed | skipped | killed."""

    PENDING = "pending"
    RUNNING = "running"
    RAN = "ran"
    LOADED = "loaded"
    FAILED = "failed"
    SKIPPED = "skipped"
    KILLED = "killed"
    SUBMITTED = "submitted"  # SLURM, --no-wait
    WOULD_RUN = "would run"  # dry runs
    WOULD_LOAD = "would load"

    @property
    def succeeded(self) -> bool:
        return self in (JobState.RAN, JobState.LOADED)

    @property
    def fine(self) -> bool:
        """Nothing went wrong: it ran, loaded, would run or load (a dry run), or was
        submitted (SLURM, without waiting)."""
        return self.succeeded or self in (JobState.WOULD_RUN, JobState.WOULD_LOAD,
                                          JobState.SUBMITTED)

    @property
    def stopped(self) -> bool:
        """Ended without a result: its dependents cannot run."""
        return self in (JobState.FAILED, JobState.SKIPPED, JobState.KILLED)


@dataclass
class Report:
    """What running one job said: its new state, record label, error and duration."""

    state: JobState
    label: str | None = None
    error: str = ""
    traceback: str = ""
    duration: float = 0.0


@dataclass(eq=False)
class Job:
    """One distinct task of the batch, with what asked for it: task files, or the labels
    of records whose task runs again."""

    task: Task
    sources: list[Path | str] = field(default_factory=list)
    deps: list[Job] = field(default_factory=list)
    state: JobState = JobState.PENDING
    attempts: int = 0
    duration: float = 0.0
    label: str | None = None
    error: str = ""
    traceback: str = ""  # of the last failure (the task's own code), '' if none
    worker: int | None = None
    slurm_id: str | None = None
    log: Path | None = None
    handle: Any = None  # the submitit job running it
    slot: int = 0  # its place among the task files of that array element

    @property
    def name(self) -> str:
        if not self.sources:
            return f"{self.task.taskname} (upstream)"
        source = self.sources[0]
        return source.name if isinstance(source, Path) else f"record {source}"

    @property
    def files(self) -> list[Path]:
        """The task files that asked for it."""
        return [s for s in self.sources if isinstance(s, Path)]

    def settle(self, report: Report, retries: int) -> bool:
        """Apply a report; True if the job is finished (False: it is pending, to retry)."""
        self.attempts += 1
        self.duration += report.duration
        self.label = report.label or self.label
        self.error = report.error
        self.traceback = report.traceback
        if report.state is JobState.FAILED and self.attempts <= retries:
            self.state = JobState.PENDING
            return False
        self.state = report.state
        return True


@dataclass
class BatchResult:
    """What happened to every task file of a batch."""

    jobs: list[Job]
    invalid: list[tuple[Path, str]]
    elapsed: float = 0.0
    interrupted: bool = False
    scan_from: int = field(default=0, repr=False)  # jobs before it are all settled

    def count(self, state: JobState | str) -> int:
        return sum(1 for j in self.jobs if j.state == state)

    @property
    def ok(self) -> bool:
        """True if nothing failed: every task file valid, not interrupted, every job
        ran, loaded, would run or load (dry run) or was submitted (SLURM, no wait)."""
        return (not self.invalid and not self.interrupted
                and all(j.state.fine for j in self.jobs))

    def ready(self) -> Iterator[Job]:
        """Pending jobs whose upstream jobs succeeded (marking those whose upstream
        stopped as skipped). Scanning resumes after the leading settled jobs, so a batch
        of n files schedules in about linear time rather than n²/2 steps."""
        jobs = self.jobs
        while self.scan_from < len(jobs) and jobs[self.scan_from].state is not JobState.PENDING:
            self.scan_from += 1
        for i in range(self.scan_from, len(jobs)):
            job = jobs[i]
            if job.state is not JobState.PENDING:
                continue
            failed = next((d for d in job.deps if d.state.stopped), None)
            if failed is not None:
                job.state = JobState.SKIPPED
                job.error = f"upstream {failed.task.taskname} did not finish"
                continue
            if all(d.state.succeeded for d in job.deps):
                yield job


#: ``on_event(kind, job, batch)``: kind is "planned", "started", "finished" or "done".
Event = Callable[[str, "Job | None", BatchResult], None]

#: ``on_output(job, stream, line)``: one line a task printed; stream is "stdout" or
#: "stderr"; job is None for what a worker printed between jobs.
Output = Callable[["Job | None", str, str], None]


def load_all(files: list[Path], allow: tuple[str, ...], project: config.Project | None = None
             ) -> tuple[list[tuple[Path, Task]], list[tuple[Path, str]]]:
    """Every task file loaded (``project``'s packages allowed; default: the project of
    each file); the invalid ones with their one-line reason."""
    taskfile.check_imports(allow)
    tasks, invalid = [], []
    for path in files:
        try:
            tasks.append((path, taskfile.load(path, allow=allow, project=project)))
        except SmttaskError as exc:
            invalid.append((path, str(exc)))
    return tasks, invalid


def upstream(task: Task) -> Iterator[Recorded]:
    """The recorded tasks ``task`` needs directly (looking through memoized ones)."""
    for value in task.inputs.__dict__.values():
        if isinstance(value, Recorded):
            yield value
        elif isinstance(value, Memoized):
            yield from upstream(value)


def on_disk(project: config.Project | None, task: Task) -> bool:
    """True if ``task`` is recorded and its result is in the project's datastore."""
    if project is None or not isinstance(task, Recorded):
        return False
    return task.result_ref(Datastore.of(project)).on_disk


def plan(tasks: Sequence[tuple[Path | str, Task]], project: config.Project | None = None,
         recompute: bool = False) -> list[Job]:
    """One job per distinct task (top-level and upstream recorded tasks), dependencies linked.

    A task whose result is on disk (and is not to be recomputed) needs no upstream job.
    """
    jobs: dict[tuple[type, str], Job] = {}

    def job_for(task: Task, top: bool) -> Job:
        key = (type(task), task.digest)
        if key not in jobs:
            job = jobs[key] = Job(task)
            if (recompute and top) or not on_disk(project, task):
                job.deps = [job_for(up, False) for up in upstream(task)]
        return jobs[key]

    for source, task in tasks:
        job_for(task, True).sources.append(source)
    return list(jobs.values())


def check_repo(project: config.Project, tasks: list[Task]) -> repo.Checked:
    """The repository check for a batch of recorded runs (once, before anything runs)."""
    root = repo.repo_root(project.root)
    modules = {type(t).__module__ for t in tasks if isinstance(t, Recorded)}
    code_paths = sorted({repo.code_location(name, root)[1] for name in modules})
    cfg = project.config.repo
    checked = repo.require_recordable(project.root, cfg.dirty_directories, code_paths,
                                      cfg.on_changed)
    return repo.require_tracked(checked, cfg.dirty_directories, cfg.on_changed)


# --- running one job (in a worker, an array element, or here) ------------------------------

#: What a worker receives for one job: (task description, what its record's launch
#: arguments are (None: the record's own label), is it a top-level job).
Message = tuple[dict[str, Any], str | None, bool]


def message(job: Job, root: str | None = None) -> Message:
    """What a worker gets for ``job``; the launch arguments a record keeps are the task file
    (relative to the project root) or the record label it came from."""
    script = None
    if job.sources:
        source = job.sources[0]
        if isinstance(source, Path):
            path = source.resolve()
            base = Path(root) if root else Path.cwd()
            script = str(path.relative_to(base) if path.is_relative_to(base) else path)
        else:
            script = source
    return taskfile.describe(job.task), script, bool(job.sources)


@dataclass(frozen=True)
class WorkerSettings:
    """What every worker of a batch needs to know (picklable)."""

    root: str | None
    allow: tuple[str, ...]
    record: bool
    recompute: bool
    reason: str | None
    pinned: repo.Checked | None
    on_code_change: str | None = None  # overrides smttask.toml's [cache] setting

    def prepare(self) -> config.Project | None:
        """Make this (worker) process ready to run the batch's jobs: the batch's project
        active (wherever the working directory is), its code importable; the project
        active before."""
        previous = config.activate(config.load_project(self.root) if self.root else None)
        config.record = self.record
        config.on_code_change = self.on_code_change
        repo.pin(self.pinned)
        return previous

    @contextlib.contextmanager
    def applied(self) -> Iterator[None]:
        """:meth:`prepare` this process for the block, then restore the active project,
        the recording switch and the pinned repository state (for batches run in the
        caller's process)."""
        saved = config.record, config.on_code_change
        active = self.prepare()
        try:
            yield
        finally:
            config.record, config.on_code_change = saved
            config.activate(active)
            repo.pin(None)


def debugger_on_terminal(on_open: Callable[[], None] | None = None,
                         previous: Callable[..., Any] | None = None) -> Callable[..., Any]:
    """A ``sys.breakpointhook`` for tasks run by a batch: ``breakpoint()`` opens pdb on the
    process's terminal (``/dev/tty``; a worker process's stdin is not one), after
    ``on_open()`` (which pauses the progress display).

    ``previous`` is the hook of the caller's process, for jobs run there: one that is not
    Python's default (an IDE's, Jupyter's) is kept, and the default one is used when there
    is no terminal. In a worker (no ``previous``) and without a terminal, ``breakpoint()``
    raises an error that says how to debug instead. ``PYTHONBREAKPOINT`` works as usual.
    """

    def hook(*args: Any, **kwargs: Any) -> Any:
        choice = os.environ.get("PYTHONBREAKPOINT", "")
        own = previous if previous is not sys.__breakpointhook__ else None  # an IDE's…
        if own is None and choice == "0":
            return None
        if own is not None or choice not in ("", "pdb.set_trace"):
            if on_open is not None:
                on_open()
            return (own or sys.__breakpointhook__)(*args, **kwargs)
        try:
            tty = open("/dev/tty"), open("/dev/tty", "w")
        except OSError:
            if previous is None:
                raise RuntimeError(
                    "breakpoint() needs a terminal, and the process running this task has "
                    "none; debug it in a terminal with `smttask run -n 1 TASKFILE` (or "
                    "`smttask run --pdb TASKFILE` to stop where it fails)") from None
            if on_open is not None:
                on_open()
            return previous(*args, **kwargs)
        if on_open is not None:
            on_open()
        import pdb

        pdb.Pdb(stdin=tty[0], stdout=tty[1]).set_trace(sys._getframe(1))
        return None

    return hook


def execute(settings: WorkerSettings, msg: Message, *, pdb_on_error: bool = False,
            on_breakpoint: Callable[[], None] | None = None, inline: bool = False,
            loaded: Task | None = None) -> Report:
    """Run one job in this process; its report (never raises, except KeyboardInterrupt
    when it arrives outside the task). ``breakpoint()`` in the task opens the debugger on
    the terminal, after ``on_breakpoint()`` (see :func:`debugger_on_terminal`; ``inline``:
    this is the caller's process, whose own breakpoint hook is respected). ``loaded``:
    the message's task, already loaded by the caller."""
    desc, script, top = msg
    start = time.perf_counter()
    report = Report(JobState.FAILED)
    token = script_arguments.set(script)
    saved_hook = sys.breakpointhook
    sys.breakpointhook = debugger_on_terminal(on_breakpoint, saved_hook if inline else None)
    task = None
    try:
        task = loaded if loaded is not None else taskfile.load(desc, allow=settings.allow)
        if settings.reason is not None and top:
            task.reason = settings.reason
        task.run(recompute=settings.recompute and top, record=settings.record)
        report.state = JobState.RAN if task.result_source == "run" else JobState.LOADED
    except KeyboardInterrupt:
        report.state, report.error = JobState.KILLED, "interrupted"
    except Exception as exc:  # a worker reports every failure, the project's own bugs too
        cause = exc.__cause__ if exc.__cause__ is not None else exc
        report.error = _reason(exc, task)
        report.traceback = "".join(traceback.format_exception(cause))
        if pdb_on_error:
            import pdb

            pdb.post_mortem(exc.__traceback__)
    finally:
        sys.breakpointhook = saved_hook
        script_arguments.reset(token)
    if task is not None:
        report.label = task.record_label
    report.duration = time.perf_counter() - start
    return report


def _reason(exc: Exception, task: Task | None) -> str:
    """Why a job failed, without the task's name and digest (a summary shows them)."""
    text = str(exc) if isinstance(exc, SmttaskError) else f"{type(exc).__name__}: {exc}"
    if task is None:
        return text
    for prefix in (f"{task.taskname} ({task.digest}) failed: ",
                   f"{task.taskname} ({task.digest}): ", f"{task.taskname} "):
        if text.startswith(prefix):
            return text.removeprefix(prefix)
    return text
