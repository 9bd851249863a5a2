"""The batch queue: run many task files in a persistent pool of worker processes.

``run(paths, jobs=4)`` is what ``smttask run`` calls. In order:

1. collect the task files (folders are walked recursively, sorted) and load every one;
   invalid files are reported one line each and do not stop the valid ones;
2. check the git tree once (recorded runs only): blocking changes refuse the batch;
3. plan: every distinct recorded task, upstream ones included, is one job, run once,
   after the jobs it depends on; a failed job skips its dependents;
4. run the jobs in ``jobs`` worker processes (stable ``SMTTASK_PROCESS_NUM`` = 1…N), or in
   this process when ``jobs == 1``; each worker records its own runs, the record store
   being protected by its lock;
5. Ctrl-C stops scheduling and interrupts running tasks (their records end ``_killed_``,
   no output is written); a second Ctrl-C stops at once.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import multiprocessing
import os
import re
import shlex
import signal
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from . import config, outputs, repo, taskfile
from .errors import SmttaskError, TaskFileError
from .task import Memoized, Recorded, Task

__all__ = ["BatchResult", "Job", "SlurmOptions", "collect", "run", "slurm_status", "snakefile"]

logger = logging.getLogger(__name__)

# Job states: pending -> running -> ran | loaded | failed | skipped | killed.
DONE_OK = ("ran", "loaded")


@dataclass
class Job:
    """One distinct task of the batch, with the files that asked for it."""

    task: Task
    files: list[Path] = field(default_factory=list)
    deps: list[Job] = field(default_factory=list)
    state: str = "pending"
    attempts: int = 0
    duration: float = 0.0
    label: str | None = None
    error: str = ""
    worker: int | None = None
    slurm_id: str | None = None
    log: Path | None = None
    handle: Any = None  # the submitit job running it
    slot: int = 0  # its place among the task files of that array element

    @property
    def name(self) -> str:
        return self.files[0].name if self.files else f"{self.task.taskname} (upstream)"


@dataclass
class BatchResult:
    """What happened to every task file of a batch."""

    jobs: list[Job]
    invalid: list[tuple[Path, str]]
    elapsed: float = 0.0
    interrupted: bool = False
    scan_from: int = field(default=0, repr=False)  # jobs before it are all settled

    def count(self, state: str) -> int:
        return sum(1 for j in self.jobs if j.state == state)

    @property
    def ok(self) -> bool:
        return (not self.invalid and not self.interrupted
                and all(j.state in DONE_OK for j in self.jobs))


def collect(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Task files named or found (recursively, sorted) in folders; duplicates dropped."""
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found.extend(sorted(p.rglob(f"*{taskfile.SUFFIX}")))
        else:
            found.append(p)
    seen: set[Path] = set()
    return [f for f in found if not (f.resolve() in seen or seen.add(f.resolve()))]


def _upstream(task: Task) -> Iterator[Recorded]:
    """The recorded tasks ``task`` needs directly (looking through memoized ones)."""
    for value in task.inputs.__dict__.values():
        if isinstance(value, Recorded):
            yield value
        elif isinstance(value, Memoized):
            yield from _upstream(value)


def plan(tasks: list[tuple[Path, Task]], project: config.Project | None = None,
         recompute: bool = False) -> list[Job]:
    """One job per distinct task (top-level and upstream recorded tasks), dependencies linked.

    A task whose result is on disk (and is not to be recomputed) needs no upstream job.
    """
    jobs: dict[tuple[type, str], Job] = {}

    def job_for(task: Task, top: bool) -> Job:
        key = (type(task), task.digest)
        if key not in jobs:
            job = jobs[key] = Job(task)
            if (recompute and top) or not _on_disk(project, task):
                job.deps = [job_for(up, False) for up in _upstream(task)]
        return jobs[key]

    for path, task in tasks:
        job_for(task, True).files.append(path)
    return list(jobs.values())


def _on_disk(project: config.Project | None, task: Task) -> bool:
    if project is None or not isinstance(task, Recorded):
        return False
    links = outputs.link_paths(project.input_dir, task.taskname, task.digest,
                               list(task.output_specs))
    return all(p.exists() for p in links)


# --- the worker side ---------------------------------------------------------------------

@dataclass
class _Settings:
    root: str | None
    allow: tuple[str, ...]
    record: bool
    recompute: bool
    reason: str | None
    pinned: tuple[Any, str] | None


def _prepare(settings: _Settings) -> None:
    if settings.root and settings.root not in sys.path:
        sys.path.insert(0, settings.root)
    config.record = settings.record
    repo.pin(settings.pinned)


def _execute(settings: _Settings, desc: dict[str, Any], script: str, top: bool,
             pdb_on_error: bool = False) -> dict[str, Any]:
    """Run one job in this process; a JSON-able report."""
    from .provenance import script_arguments

    start = time.perf_counter()
    report: dict[str, Any] = {"state": "failed", "label": None, "error": ""}
    token = script_arguments.set(script)
    task = None
    try:
        task = taskfile.load(desc, allow=settings.allow)
        if settings.reason is not None and top:
            task.reason = settings.reason
        task.run(recompute=settings.recompute and top, record=settings.record)
        report["state"] = "ran" if task.result_source == "run" else "loaded"
    except KeyboardInterrupt:
        report.update(state="killed", error="interrupted")
    except Exception as exc:
        cause = exc.__cause__ if exc.__cause__ is not None else exc
        report["error"] = (str(exc) if isinstance(exc, SmttaskError)
                           else f"{type(exc).__name__}: {exc}")
        report["traceback"] = "".join(traceback.format_exception(cause))
        if pdb_on_error:
            import pdb

            pdb.post_mortem(exc.__traceback__)
    finally:
        script_arguments.reset(token)
    if task is not None:
        report["label"] = task.record_label
    report["duration"] = time.perf_counter() - start
    return report


class _Interrupt:
    """SIGINT handler for a worker: raise KeyboardInterrupt once, while a job runs."""

    def __init__(self) -> None:
        self.armed = False

    def __call__(self, signum: int, frame: Any) -> None:
        if self.armed:
            self.armed = False
            raise KeyboardInterrupt


def _worker(conn: Connection, number: int, settings: _Settings) -> None:
    os.environ["SMTTASK_PROCESS_NUM"] = str(number)
    handler = _Interrupt()
    signal.signal(signal.SIGINT, handler)
    _prepare(settings)
    while True:
        try:
            message = conn.recv()
        except (EOFError, KeyboardInterrupt):
            return
        if message is None:
            return
        desc, script, top = message
        handler.armed = True
        try:
            report = _execute(settings, desc, script, top)
        except KeyboardInterrupt:  # arrived between the task and its report
            report = {"state": "killed", "label": None, "error": "interrupted", "duration": 0}
        handler.armed = False
        conn.send(report)


# Imported once by the fork server, so that every worker starts with them (Sumatra and
# Django alone cost a few hundred milliseconds per process).
PRELOAD = ["smttask.runner", "smttask.provenance", "sumatra.records", "sumatra.parameters",
           "sumatra.recordstore.django_store", "django.db"]


class _Pool:
    """N worker processes, each fed one job at a time through its own pipe."""

    def __init__(self, jobs: int, settings: _Settings) -> None:
        methods = multiprocessing.get_all_start_methods()
        method = "forkserver" if "forkserver" in methods else "spawn"
        ctx = multiprocessing.get_context(method)
        if method == "forkserver":
            ctx.set_forkserver_preload(PRELOAD if settings.record else PRELOAD[:1])
        self.settings = settings
        self.ctx = ctx
        self.workers: list[tuple[multiprocessing.process.BaseProcess, Connection]] = []
        for number in range(1, jobs + 1):
            self.workers.append(self._start(number))

    def _start(self, number: int) -> tuple[Any, Connection]:
        ours, theirs = self.ctx.Pipe()
        proc = self.ctx.Process(target=_worker, args=(theirs, number, self.settings),
                                name=f"smttask-worker-{number}", daemon=True)
        proc.start()
        theirs.close()
        return proc, ours

    def restart(self, index: int) -> None:
        self.workers[index] = self._start(index + 1)

    def interrupt(self) -> None:
        for proc, _ in self.workers:
            if proc.is_alive() and proc.pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGINT)

    def close(self, force: bool = False) -> None:
        for _, conn in self.workers:
            if not force:
                with contextlib.suppress(OSError):
                    conn.send(None)
            conn.close()
        for proc, _ in self.workers:
            proc.join(timeout=None if not force else 0.5)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=2)


# --- the batch ---------------------------------------------------------------------------

Event = Callable[[str, Job | None, "BatchResult"], None]


def _load_all(files: list[Path], allow: tuple[str, ...]) -> tuple[list[tuple[Path, Task]], list]:
    tasks, invalid = [], []
    for path in files:
        try:
            tasks.append((path, taskfile.load(path, allow=allow)))
        except SmttaskError as exc:
            invalid.append((path, str(exc)))
    return tasks, invalid


def _check_repo(project: config.Project, tasks: list[Task]) -> tuple[Any, str]:
    root = repo.repo_root(project.root)
    code_paths = sorted({repo.code_location(type(t).__module__, root)[1] for t in tasks
                         if isinstance(t, Recorded)})
    cfg = project.config.repo
    return repo.require_recordable(project.root, cfg.dirty_directories, code_paths,
                                   cfg.on_changed)


def run(
    paths: Iterable[str | os.PathLike[str]],
    *,
    jobs: int | None = None,
    record: bool = True,
    recompute: bool = False,
    reason: str | None = None,
    retries: int = 0,
    fail_fast: bool = False,
    keep: bool = True,
    dry_run: bool = False,
    pdb: bool = False,
    allow: Iterable[str] = (),
    on_event: Event | None = None,
    executor: str = "local",
    slurm: SlurmOptions | None = None,
    wait: bool = True,
) -> BatchResult:
    """Run the task files in ``paths``; see the module docstring for the semantics.

    ``on_event(kind, job, result)`` is called with kind ``"planned"``, ``"started"``,
    ``"finished"`` (job state set) and ``"done"``, for progress displays.
    ``executor="slurm"`` submits the jobs as SLURM job arrays (``slurm`` options, else the
    ``[executor.slurm]`` defaults of smttask.toml); ``wait=False`` returns once submitted.
    """
    started = time.perf_counter()
    allow = tuple(allow)
    notify = on_event or (lambda kind, job, result: None)
    project = config.find_project() if record else _optional_project()
    if project is not None and str(project.root) not in sys.path:
        sys.path.insert(0, str(project.root))
    files = collect(paths)
    if not files:
        raise TaskFileError("no task files found (task files end in .taskdesc.json)")
    loaded, invalid = _load_all(files, allow)
    pinned = _check_repo(project, [t for _, t in loaded]) if record and loaded else None  # type: ignore[arg-type]
    batch = BatchResult(plan(loaded, project, recompute), invalid)
    notify("planned", None, batch)
    if dry_run:
        for job in batch.jobs:
            job.state = "would load" if (_on_disk(project, job.task) and not (
                recompute and job.files)) else "would run"
        batch.elapsed = time.perf_counter() - started
        notify("done", None, batch)
        return batch
    jobs = max(1, jobs or os.cpu_count() or 1)
    settings = _Settings(str(project.root) if project else None, allow, record, recompute,
                         reason, pinned)
    try:
        if executor == "slurm":
            if project is None:
                raise TaskFileError("the SLURM executor needs a project (smttask.toml)")
            options = slurm or SlurmOptions.from_config(project)
            _run_slurm(batch, settings, project, options, retries, notify, wait)
        elif executor == "local":
            runner = _run_inline if jobs == 1 or pdb else _run_pool
            runner(batch, settings, jobs, retries, fail_fast, notify, pdb)
        else:
            raise TaskFileError(f"unknown executor {executor!r}: use local or slurm")
    finally:
        batch.elapsed = time.perf_counter() - started
    if record and not keep:
        for job in batch.jobs:
            if job.state in DONE_OK:
                for path in job.files:
                    path.unlink(missing_ok=True)
    notify("done", None, batch)
    return batch


def _optional_project() -> config.Project | None:
    from .errors import ProjectNotFoundError

    try:
        return config.find_project()
    except ProjectNotFoundError:
        return None


def _ready(batch: BatchResult) -> Iterator[Job]:
    """Pending jobs whose upstream jobs are done (marking those whose upstream failed).

    Scanning resumes after the leading settled jobs, so a batch of n files schedules in
    about linear time rather than n²/2 steps.
    """
    jobs = batch.jobs
    while batch.scan_from < len(jobs) and jobs[batch.scan_from].state != "pending":
        batch.scan_from += 1
    for i in range(batch.scan_from, len(jobs)):
        job = jobs[i]
        if job.state != "pending":
            continue
        if any(d.state in ("failed", "skipped", "killed") for d in job.deps):
            failed = next(d for d in job.deps if d.state in ("failed", "skipped", "killed"))
            job.state, job.error = "skipped", f"upstream {failed.task.taskname} did not finish"
            continue
        if all(d.state in DONE_OK for d in job.deps):
            yield job


def _message(job: Job) -> tuple[dict[str, Any], str, bool]:
    script = str(job.files[0]) if job.files else ""
    return taskfile.describe(job.task), script, bool(job.files)


def _settle(job: Job, report: dict[str, Any], retries: int) -> bool:
    """Apply a worker report; True if the job is finished (False: retry it)."""
    job.attempts += 1
    job.duration += report.get("duration", 0.0)
    job.label = report.get("label") or job.label
    job.error = report.get("error", "")
    if report["state"] == "failed" and job.attempts <= retries:
        job.state = "pending"
        return False
    job.state = report["state"]
    if job.state == "failed" and report.get("traceback"):
        logger.debug("%s failed:\n%s", job.name, report["traceback"])
    return True


def _conclude(batch: BatchResult, job: Job, report: dict[str, Any], retries: int,
              notify: Event) -> None:
    """Settle a local job's report: announce it, or queue it again for a retry."""
    if _settle(job, report, retries):
        notify("finished", job, batch)
    else:
        batch.scan_from = 0  # it is pending again


def _run_inline(batch: BatchResult, settings: _Settings, jobs: int, retries: int,
                fail_fast: bool, notify: Event, pdb: bool) -> None:
    _prepare(settings)
    try:
        while True:
            ready = next(_ready(batch), None)
            if ready is None:
                break
            ready.state = "running"
            notify("started", ready, batch)
            report = _execute(settings, *_message(ready), pdb_on_error=pdb)
            if report["state"] == "killed":
                ready.state = "killed"
                batch.interrupted = True
                notify("finished", ready, batch)
                return
            _conclude(batch, ready, report, retries, notify)
            if fail_fast and ready.state == "failed":
                return
    finally:
        repo.pin(None)


def _run_pool(batch: BatchResult, settings: _Settings, jobs: int, retries: int,
              fail_fast: bool, notify: Event, pdb: bool) -> None:
    pool = _Pool(min(jobs, max(1, len(batch.jobs))), settings)
    busy: dict[int, Job] = {}
    stopping = False
    interrupts = 0
    previous = signal.getsignal(signal.SIGINT)

    def on_sigint(signum: int, frame: Any) -> None:
        nonlocal stopping, interrupts
        interrupts += 1
        stopping = True
        batch.interrupted = True
        if interrupts == 1:
            pool.interrupt()
        else:
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_sigint)
    try:
        while True:
            if not stopping:
                free = [i for i in range(len(pool.workers)) if i not in busy]
                for index, job in zip(free, list(itertools.islice(_ready(batch), len(free))),
                                      strict=False):
                    job.state, job.worker = "running", index + 1
                    pool.workers[index][1].send(_message(job))
                    busy[index] = job
                    notify("started", job, batch)
            if not busy:
                break
            conns = {pool.workers[i][1]: i for i in busy}
            sentinels = {pool.workers[i][0].sentinel: i for i in busy}
            for ready in wait([*conns, *sentinels]):
                index = conns.get(ready, sentinels.get(ready))
                if index not in busy:
                    continue
                job = busy.pop(index)
                try:
                    report = pool.workers[index][1].recv() if ready in conns else None
                except (EOFError, OSError):  # the worker died
                    report = None
                if report is None:
                    code = pool.workers[index][0].exitcode
                    report = {"state": "failed", "label": None,
                              "error": f"worker process died (exit code {code})"}
                    pool.restart(index)
                if report["state"] == "killed":
                    job.state, job.error = "killed", report.get("error", "interrupted")
                    job.label = report.get("label") or job.label
                    notify("finished", job, batch)
                    continue
                _conclude(batch, job, report, retries, notify)
                if fail_fast and job.state == "failed":
                    stopping = True
    except KeyboardInterrupt:
        pool.close(force=True)
        raise
    finally:
        signal.signal(signal.SIGINT, previous)
    pool.close()


# --- the SLURM executor ------------------------------------------------------------------

@dataclass
class SlurmOptions:
    """Resources of each array element (defaults: ``[executor.slurm]`` in smttask.toml)."""

    partition: str | None = None
    time: str = "1:00:00"
    cpus: int = 1
    mem: str | None = None
    array_parallelism: int = 64
    tasks_per_job: int = 1

    @classmethod
    def from_config(cls, project: config.Project, **overrides: Any) -> SlurmOptions:
        base = project.config.executor.slurm.model_dump()
        return cls(**{**base, **{k: v for k, v in overrides.items() if v is not None}})

    def parameters(self) -> dict[str, Any]:
        params: dict[str, Any] = {"timeout_min": config.minutes(self.time),
                                  "cpus_per_task": self.cpus,
                                  "slurm_array_parallelism": self.array_parallelism}
        if self.partition:
            params["slurm_partition"] = self.partition
        if self.mem:
            params["slurm_mem"] = self.mem
        return params


def _slurm_element(settings: _Settings, messages: list[tuple[dict[str, Any], str, bool]],
                   commit: str | None) -> list[dict[str, Any]]:
    """One array element: check the repository still matches the submission, then run its
    task files one after the other; one report each."""
    os.environ["SMTTASK_PROCESS_NUM"] = str(int(os.environ.get("SLURM_ARRAY_TASK_ID", 0)) + 1)
    if settings.root:
        os.chdir(settings.root)
    _prepare(_Settings(**{**settings.__dict__, "pinned": None}))
    failed = {"state": "failed", "label": None, "duration": 0.0}
    project = None
    if settings.record:
        project = config.find_project(settings.root)
        try:
            tasks = [taskfile.load(desc, allow=settings.allow) for desc, _, _ in messages]
            checked = _check_repo(project, tasks)
        except SmttaskError as exc:
            return [{**failed, "error": f"refused on the node: {exc}"}] * len(messages)
        if checked[0].commit != commit:
            moved = (f"the project's HEAD moved from {str(commit)[:10]} to "
                     f"{str(checked[0].commit)[:10]} since submission; submit again")
            return [{**failed, "error": moved}] * len(messages)
        repo.pin(checked)
    reports: list[dict[str, Any]] = []
    for desc, script, top in messages:
        if reports and reports[-1]["state"] == "killed":
            reports.append({**failed, "state": "killed", "error": "interrupted"})
            continue
        if project is not None:
            task = taskfile.load(desc, allow=settings.allow)
            missing = [up.taskname for up in _upstream(task) if not _on_disk(project, up)]
            if missing:
                reports.append({**failed, "error": f"upstream {missing[0]} did not finish"})
                continue
        reports.append(_execute(settings, desc, script, top))
    return reports


def _levels(jobs: list[Job]) -> list[list[Job]]:
    depth: dict[int, int] = {}

    def level(job: Job) -> int:
        if id(job) not in depth:
            depth[id(job)] = 1 + max((level(d) for d in job.deps), default=-1)
        return depth[id(job)]

    grouped: dict[int, list[Job]] = {}
    for job in jobs:
        grouped.setdefault(level(job), []).append(job)
    return [grouped[k] for k in sorted(grouped)]


def _executor(folder: Path, options: SlurmOptions, after: list[str]) -> Any:
    try:
        import submitit
    except ImportError:
        raise SmttaskError("the SLURM executor needs submitit: pip install 'smttask[slurm]'") \
            from None
    logging.getLogger("submitit").setLevel(logging.ERROR)  # no sacct noise
    executor = submitit.AutoExecutor(folder=folder / "%j", cluster="slurm")
    extra = {"dependency": "afterany:" + ":".join(after)} if after else {}
    executor.update_parameters(**options.parameters(), slurm_additional_parameters=extra,
                               name="smttask")
    return executor


def _submit(jobs: list[Job], settings: _Settings, folder: Path, options: SlurmOptions,
            after: list[str], commit: str | None) -> str:
    """Submit ``jobs`` as one array (``options.tasks_per_job`` per element); its job id."""
    executor = _executor(folder, options, after)
    size = max(1, options.tasks_per_job)
    chunks = [jobs[i:i + size] for i in range(0, len(jobs), size)]
    submitted = executor.map_array(_slurm_element, [settings] * len(chunks),
                                   [[_message(job) for job in chunk] for chunk in chunks],
                                   [commit] * len(chunks))
    for chunk, sj in zip(chunks, submitted, strict=True):
        for slot, job in enumerate(chunk):
            job.state, job.slurm_id, job.log = "running", sj.job_id, Path(sj.paths.stderr)
            job.handle, job.slot = sj, slot
    return submitted[0].job_id.split("_")[0]


def _live_ids(array_ids: set[str]) -> set[str] | None:
    """Element ids (``<array>_<index>``) still queued or running; None if squeue failed."""
    import subprocess

    proc = subprocess.run(["squeue", "-h", "-r", "-o", "%i", "-j", ",".join(sorted(array_ids))],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        return set() if "Invalid job id" in proc.stderr else None
    return {line.strip() for line in proc.stdout.splitlines() if line.strip()}


def _write_manifest(folder: Path, batch: BatchResult, commit: str | None) -> None:
    import json

    elements = [{"slurm_id": j.slurm_id, "slot": j.slot,
                 "task": j.task.taskname, "digest": j.task.digest,
                 "files": [str(f) for f in j.files], "log": str(j.log)}
                for j in batch.jobs if j.slurm_id]
    (folder / "manifest.json").write_text(json.dumps(
        {"commit": commit, "elements": elements}, indent=2))


def _run_slurm(batch: BatchResult, settings: _Settings, project: config.Project,
               options: SlurmOptions, retries: int, notify: Event, wait: bool) -> None:
    from datetime import datetime, timezone

    commit = settings.pinned[0].commit if settings.pinned else None
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    folder = project.smt_dir / "slurm" / stamp
    folder.mkdir(parents=True, exist_ok=True)
    arrays: set[str] = set()
    after: list[str] = []
    for level in _levels(batch.jobs):
        todo = [j for j in level if j.state == "pending"]
        if not todo:
            continue
        array = _submit(todo, settings, folder, options, after, commit)
        arrays.add(array)
        after = [array]
        for job in todo:
            notify("started", job, batch)
    _write_manifest(folder, batch, commit)
    if not wait:
        for job in batch.jobs:
            if job.state == "running":
                job.state = "submitted"
        return
    _wait_slurm(batch, settings, folder, options, retries, notify, arrays, commit)


def _wait_slurm(batch: BatchResult, settings: _Settings, folder: Path, options: SlurmOptions,
                retries: int, notify: Event, arrays: set[str], commit: str | None) -> None:
    """Collect results as they appear; elements gone from the queue without one failed."""
    import subprocess

    gone_since: dict[str, float] = {}
    try:
        while True:
            running = [j for j in batch.jobs if j.state == "running"]
            if not running:
                return
            live = _live_ids(arrays)
            now = time.time()
            for job in running:
                sj = job.handle
                if Path(sj.paths.result_pickle).exists():
                    try:
                        report = sj.result()[job.slot]
                    except Exception as exc:  # the element itself failed to start
                        report = {"state": "failed", "label": None,
                                  "error": f"{type(exc).__name__}: {str(exc).splitlines()[0]}"}
                elif live is not None and job.slurm_id not in live:
                    first = gone_since.setdefault(job.slurm_id or "", now)
                    if now - first < 10:  # the result file may still be on its way
                        continue
                    report = {"state": "failed", "label": None,
                              "error": "the SLURM job ended without a result (time limit, "
                                       "memory or node failure?)"}
                else:
                    continue
                if report["state"] == "failed" and job.log:
                    report["error"] = f"{report.get('error', '')} (log: {job.log})"
                if _settle(job, report, retries):
                    notify("finished", job, batch)
                else:  # retry: a new one-element array
                    arrays.add(_submit([job], settings, folder, options, [], commit))
                    notify("started", job, batch)
            time.sleep(0.5)
    except KeyboardInterrupt:
        batch.interrupted = True
        subprocess.run(["scancel", "--signal=INT", *sorted(arrays)], capture_output=True)
        for job in batch.jobs:
            if job.state == "running":
                job.state, job.error = "killed", "interrupted; the SLURM jobs were signalled"


def slurm_status(project: config.Project | None = None) -> list[dict[str, Any]]:
    """The elements of the latest SLURM submission: state, record label, error, log."""
    import json
    import pickle

    project = project or config.find_project()
    folders = sorted((project.smt_dir / "slurm").glob("*/manifest.json"))
    if not folders:
        raise SmttaskError("no SLURM submission in this project (smttask run --executor slurm)")
    manifest = json.loads(folders[-1].read_text())
    arrays = {e["slurm_id"].split("_")[0] for e in manifest["elements"]}
    live = _live_ids(arrays) or set()
    rows = []
    for element in manifest["elements"]:
        results = list((folders[-1].parent / element["slurm_id"]).glob("*_result.pkl"))
        row = {**element, "state": "queued" if element["slurm_id"] in live else "lost",
               "label": None, "error": ""}
        if results:
            with open(results[0], "rb") as f:
                outcome, report = pickle.load(f)
            if outcome == "success":
                report = report[element.get("slot", 0)]
                row.update(state=report["state"], label=report.get("label"),
                           error=report.get("error", ""))
            else:
                row.update(state="failed", error=str(report).splitlines()[0])
        rows.append(row)
    return rows


# --- Snakemake export --------------------------------------------------------------------

def snakefile(paths: Iterable[str | os.PathLike[str]], *, allow: Iterable[str] = (),
              target: Path | None = None) -> str:
    """A Snakefile with one rule per task (upstream tasks included) running ``smttask run``.

    Outputs are the result links in the input datastore, inputs the upstream tasks'
    links, so ``snakemake --cores N`` (or a cluster executor) runs the batch in the right
    order. Upstream tasks without a task file get one in the project's task folder.
    Paths in the Snakefile are relative to the project root, where Snakemake must run.
    """
    project = config.find_project()
    if str(project.root) not in sys.path:
        sys.path.insert(0, str(project.root))
    allow = tuple(allow)
    loaded, invalid = _load_all(collect(paths), allow)
    if invalid:
        raise TaskFileError(invalid[0][1])
    jobs = plan(loaded, project)
    rel = lambda p: os.path.relpath(p, project.root)  # noqa: E731

    def links(job: Job) -> list[str]:
        return [rel(p) for p in outputs.link_paths(project.input_dir, job.task.taskname,
                                                   job.task.digest, list(job.task.output_specs))]

    names = {id(j): re.sub(r"\W", "_", f"{j.task.taskname}_{j.task.digest[:12]}") for j in jobs}
    lines = ["# Generated by `smttask export snakemake`: run `snakemake --cores N` in "
             f"{project.root}.", ""]
    top = [j for j in jobs if j.files]
    lines += ["rule all:", "    input:"]
    lines += [f"        {json.dumps(p)}," for j in top for p in links(j)]
    for job in jobs:
        taskfile_path = job.files[0] if job.files else job.task.save(project.tasks_dir)
        imports = "".join(f" --import {shlex.quote(a)}" for a in allow)
        lines += ["", f"rule {names[id(job)]}:"]
        deps = [p for d in job.deps for p in links(d)]
        lines += ["    input:"] + [f"        {json.dumps(p)}," for p in deps]
        lines += [f"        task={json.dumps(rel(Path(taskfile_path).resolve()))},"]
        lines += ["    output:"] + [f"        {json.dumps(p)}," for p in links(job)]
        lines += ["    shell:", f"        \"smttask -q run -n 1{imports} {{input.task:q}}\""]
    text = "\n".join(lines) + "\n"
    if target is not None:
        Path(target).write_text(text)
    return text
