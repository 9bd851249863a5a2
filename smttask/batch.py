"""``run()``: a batch of task files, planned once, run by an executor, summarised.

What ``smttask run`` calls. In order:

1. collect the task files (folders are walked recursively, sorted; record labels name the
   task of that record) and load every one; invalid files are reported one line each and
   do not stop the valid ones;
2. check the git tree once (recorded runs only): blocking changes refuse the batch;
3. plan (:func:`smttask.jobs.plan`): shared upstream tasks run once, first;
4. run the jobs with the local executor (a pool of worker processes) or the SLURM one.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from . import config, jobs, taskfile
from .config import SlurmSection
from .errors import ExecutorError, ProjectNotFoundError, SmttaskError, TaskFileError, UsageError
from .jobs import BatchResult, Event, JobState, Output, WorkerSettings
from .provenance import Query
from .view import RecordStoreView

__all__ = ["BatchResult", "RunOptions", "run"]


@dataclass(frozen=True)
class RunOptions:
    """How to run a batch (the options of ``smttask run``)."""

    jobs: int | None = None  # worker processes (default: the number of CPUs)
    record: bool = True  # False: no repository check, no records, nothing written
    recompute: bool = False  # run the top-level tasks even if their results exist
    recompute_stale: bool = False  # run again results whose task code changed since
    reason: str | None = None  # overrides the task files' reasons
    retries: int = 0  # run a failed task again up to N times
    fail_fast: bool = False  # stop scheduling after the first failure
    keep: bool = True  # False: delete each task file once its result is recorded
    dry_run: bool = False  # only say what would run and what would load
    pdb: bool = False  # run in this process; open the debugger where a task fails
    allow: tuple[str, ...] = ()  # more packages task files may import
    executor: str = "local"  # or "slurm"
    slurm: SlurmSection | None = None  # default: [executor.slurm] in smttask.toml
    wait: bool = True  # SLURM: follow the arrays until they end


def run(paths: Iterable[str | os.PathLike[str]], options: RunOptions | None = None, *,
        on_event: Event | None = None, on_output: Output | None = None,
        **settings: Any) -> BatchResult:
    """Run the task files in ``paths``; see the module docstring.

    Options come as a :class:`RunOptions` or as keywords (``run("tasks", jobs=4)``).
    ``on_event(kind, job, batch)`` is called with kind ``"planned"``, ``"started"``,
    ``"finished"`` (job state set) and ``"done"``, for progress displays.
    ``on_output(job, stream, line)``, if given, gets every line the tasks print (stream
    ``"stdout"`` or ``"stderr"``) instead of the terminal (local executor, not ``pdb``);
    records capture the output either way.
    """
    opts = replace(options or RunOptions(), **settings)
    opts = replace(opts, allow=tuple(opts.allow))
    started = time.perf_counter()
    notify: Event = on_event or (lambda kind, job, batch: None)
    if isinstance(paths, str | os.PathLike):
        paths = [paths]  # one task file or folder
    arguments: list[str] = [os.fspath(p) for p in paths]
    project = config.project_of(arguments) if opts.record else _optional_project(arguments)
    if project is not None:
        project.add_to_path()
    loaded, invalid = _load(arguments, project, opts.allow)
    pinned = (jobs.check_repo(project, [t for _, t in loaded])  # type: ignore[arg-type]
              if opts.record and loaded else None)
    batch = BatchResult(jobs.plan(loaded, project, opts.recompute), invalid)
    notify("planned", None, batch)
    if opts.dry_run:
        for job in batch.jobs:
            loads = jobs.on_disk(project, job.task) and not (opts.recompute and job.sources)
            job.state = JobState.WOULD_LOAD if loads else JobState.WOULD_RUN
        batch.elapsed = time.perf_counter() - started
        notify("done", None, batch)
        return batch
    settings_ = WorkerSettings(str(project.root) if project else None, opts.allow, opts.record,
                               opts.recompute, opts.reason, pinned,
                               "recompute" if opts.recompute_stale else None)
    try:
        expected = {}
        if opts.executor == "slurm" and project is not None:
            expected = typical_durations(project, (j.task.taskname for j in batch.jobs))
        _executor(opts, project, expected, on_output).run(batch, settings_, notify)
    finally:
        batch.elapsed = time.perf_counter() - started
    if opts.record and not opts.keep:
        for job in batch.jobs:
            if job.state.succeeded:
                for path in job.files:
                    path.unlink(missing_ok=True)
    notify("done", None, batch)
    return batch


def _load(arguments: Iterable[str | os.PathLike[str]], project: config.Project | None,
          allow: tuple[str, ...]) -> tuple[list[tuple[Path | str, Any]], list[tuple[Path, str]]]:
    """The tasks the arguments name: task files and folders of them, record labels (the
    record's task runs again), and ``.py`` files (each task must be defined in one of
    them); with the invalid ones and why."""
    files, labels, modules = [], [], []
    for argument in arguments:
        arg = os.fspath(argument)
        path = Path(arg)
        if path.suffix == ".py":
            if not path.is_file():
                raise UsageError(f"{arg}: no such module file")
            modules.append(path.resolve())
        elif path.exists() or "/" in arg or path.suffix == ".json":
            if not path.exists():
                raise UsageError(f"{arg}: no such task file or folder")
            files.append(path)
        else:
            labels.append(arg)
    found = taskfile.collect(files)
    if not found and not labels:
        raise TaskFileError("no task files found (task files end in .taskdesc.json)")
    loaded, invalid = jobs.load_all(found, allow, project)
    tasks: list[tuple[Path | str, Any]] = list(loaded)
    for label in labels:
        if project is None:
            raise UsageError(f"{label}: not a task file, and without a project it cannot be "
                             "a record label")
        try:
            record = RecordStoreView(project).get(label)
            tasks.append((record.label, record.task))
        except SmttaskError as exc:
            invalid.append((Path(label), str(exc)))
    if modules:
        kept = []
        for source, task in tasks:
            file = Path(sys.modules[type(task).__module__].__file__ or "").resolve()
            if file in modules:
                kept.append((source, task))
            else:
                invalid.append((Path(str(source)), f"{source}: its task {task.taskname} is "
                                f"defined in {file}, not in {', '.join(map(str, modules))}"))
        tasks = kept
    return tasks, invalid


def typical_durations(project: config.Project, tasknames: Iterable[str]) -> dict[str, float]:
    """The median duration of the last 20 finished runs of each task (those with records)."""
    found = {}
    for name in sorted(set(tasknames)):
        runs = RecordStoreView.select(Query(tasks=(name,), statuses=("finished",), limit=20),
                                      project)
        durations = sorted(r.duration for r in runs if r.duration is not None)
        if durations:
            found[name] = durations[len(durations) // 2]
    return found


def _executor(opts: RunOptions, project: config.Project | None,
              expected: dict[str, float], on_output: Output | None = None) -> Any:
    if opts.executor == "local":
        from .executors.local import LocalExecutor

        size = max(1, opts.jobs or os.cpu_count() or 1)
        return LocalExecutor(size, opts.retries, opts.fail_fast, opts.pdb, on_output)
    if opts.executor == "slurm":
        from .executors.slurm import SlurmExecutor

        if project is None:
            raise ExecutorError("the SLURM executor needs a project (smttask.toml)")
        options = opts.slurm or project.config.executor.slurm
        return SlurmExecutor(project, options, opts.retries, opts.wait, expected)
    raise ExecutorError(f"unknown executor {opts.executor!r}: use local or slurm")


def _optional_project(paths: list[str]) -> config.Project | None:
    try:
        return config.project_of(paths)
    except ProjectNotFoundError:
        return None
