"""The SLURM executor: the batch's task files as submitit job arrays.

Jobs are grouped by depth (a job's upstream jobs are in earlier levels); each level is
one array that starts after the previous one (``afterany``). Each array element runs
``tasks_per_job`` task files one after the other, after checking that the project's
repository is still at the commit pinned at submission. A manifest in
``.smt/slurm/<stamp>/`` lets ``smttask run --status`` report on the latest submission.
"""

from __future__ import annotations

import json
import logging
import math
import os
import pickle
import subprocess
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import config, repo, taskfile
from ..config import SlurmSection
from ..errors import ExecutorError, SmttaskError
from ..jobs import (
    BatchResult,
    Event,
    Job,
    JobState,
    Message,
    Report,
    WorkerSettings,
    check_repo,
    execute,
    message,
    on_disk,
    upstream,
)

if TYPE_CHECKING:
    from ..task import Task

__all__ = ["ELEMENT_STARTUP", "SlurmExecutor", "idle_cpus", "parameters", "status",
           "tasks_per_job"]

logger = logging.getLogger(__name__)


def parameters(options: SlurmSection) -> dict[str, Any]:
    """submitit parameters for each array element."""
    params: dict[str, Any] = {"timeout_min": config.minutes(options.time),
                              "cpus_per_task": options.cpus,
                              "slurm_array_parallelism": options.array_parallelism}
    if options.partition:
        params["slurm_partition"] = options.partition
    if options.mem:
        params["slurm_mem"] = options.mem
    return params


def _element(settings: WorkerSettings, messages: list[Message], commit: str | None
             ) -> list[Report]:
    """One array element: check the repository still matches the submission, then run its
    task files one after the other; one report each."""
    os.environ["SMTTASK_PROCESS_NUM"] = str(int(os.environ.get("SLURM_ARRAY_TASK_ID", 0)) + 1)
    if settings.root:
        os.chdir(settings.root)
    WorkerSettings(**{**settings.__dict__, "pinned": None}).prepare()
    project = None
    tasks: list[Task] | None = None
    if settings.record:
        project = config.find_project(settings.root)
        try:
            tasks = [taskfile.load(desc, allow=settings.allow) for desc, _, _ in messages]
            checked = check_repo(project, tasks)
        except SmttaskError as exc:
            return [Report(JobState.FAILED, error=f"refused on the node: {exc}")
                    for _ in messages]
        if checked.state.commit != commit:
            moved = (f"the project's HEAD moved from {str(commit)[:10]} to "
                     f"{str(checked.state.commit)[:10]} since submission; submit again")
            return [Report(JobState.FAILED, error=moved) for _ in messages]
        repo.pin(checked)
    reports: list[Report] = []
    for i, msg in enumerate(messages):
        if reports and reports[-1].state is JobState.KILLED:
            reports.append(Report(JobState.KILLED, error="interrupted"))
            continue
        if tasks is not None and project is not None:
            missing = [up.taskname for up in upstream(tasks[i]) if not on_disk(project, up)]
            if missing:
                reports.append(Report(JobState.FAILED,
                                      error=f"upstream {missing[0]} did not finish"))
                continue
        reports.append(execute(settings, msg, loaded=tasks[i] if tasks else None))
    return reports


def _element_report(result_pickle: Path, slot: int,
                    read: dict[Path, tuple[str, Any]] | None = None) -> Report:
    """The report for one slot from an element's result file (submitit's pickle; read
    once per ``read`` cache)."""
    read = {} if read is None else read
    if result_pickle not in read:
        with open(result_pickle, "rb") as f:
            read[result_pickle] = pickle.load(f)
    outcome, payload = read[result_pickle]
    if outcome == "success":
        return payload[slot]
    lines = [ln for ln in str(payload).strip().splitlines() if ln.strip()]
    return Report(JobState.FAILED, error=lines[-1] if lines else "the array element failed")


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


def _live_ids(array_ids: set[str]) -> set[str] | None:
    """Element ids (``<array>_<index>``) still queued or running; None if squeue failed."""
    proc = subprocess.run(["squeue", "-h", "-r", "-o", "%i", "-j", ",".join(sorted(array_ids))],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        return set() if "Invalid job id" in proc.stderr else None
    return {line.strip() for line in proc.stdout.splitlines() if line.strip()}


#: What starting one array element costs (the scheduler, a Python process, smttask's
#: imports), in seconds: what `--tasks-per-job auto` weighs the tasks against.
ELEMENT_STARTUP = 2.0
#: The duration assumed for a task never run before.
UNKNOWN_DURATION = 0.5


def idle_cpus(partition: str | None) -> int | None:
    """The CPUs idle now in the partitions named (comma-separated), or in the default
    partition; None if sinfo cannot tell."""
    try:
        proc = subprocess.run(["sinfo", "-h", "-o", "%P %C"], capture_output=True, text=True,
                              timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    wanted = set(partition.split(",")) if partition else None
    idle = None
    for line in proc.stdout.splitlines():
        name, _, cpus = line.strip().partition(" ")
        counts = cpus.split("/")  # allocated/idle/other/total
        chosen = name.rstrip("*") in wanted if wanted else name.endswith("*")
        if chosen and len(counts) == 4 and counts[1].isdigit():
            idle = (idle or 0) + int(counts[1])
    return idle if proc.returncode == 0 else None


def tasks_per_job(jobs: list[Job], options: SlurmSection, expected: dict[str, float],
                  idle: int | None = None) -> int:
    """The task files per array element: the option when it is a number. With "auto",
    enough tasks that an element's start-up (ELEMENT_STARTUP) costs at most as much as the
    tasks it runs (so each task costs at most twice its own time), from their typical
    durations; tasks longer than the start-up run one per element. Short tasks are still
    spread over the ``idle`` CPUs (at most ``array_parallelism`` elements), so that the
    batch runs on as many CPUs as the local pool would have."""
    if options.tasks_per_job != "auto":
        return max(1, int(options.tasks_per_job))
    if not jobs:
        return 1
    durations = [expected.get(j.task.taskname, UNKNOWN_DURATION) for j in jobs]
    mean = max(sum(durations) / len(durations), 1e-3)
    size = max(1, min(math.ceil(ELEMENT_STARTUP / mean), len(jobs)))
    if idle:
        slots = min(len(jobs), options.array_parallelism, max(1, idle // options.cpus))
        size = min(size, math.ceil(len(jobs) / slots))
    return size


@dataclass
class SlurmExecutor:
    """Submit the batch as job arrays; with ``wait``, follow them until they end.

    ``expected`` holds the typical duration (seconds) of each task, from earlier records,
    for `tasks_per_job = "auto"`.
    """

    project: config.Project
    options: SlurmSection
    retries: int = 0
    wait: bool = True
    expected: dict[str, float] = field(default_factory=dict)

    def run(self, batch: BatchResult, settings: WorkerSettings, notify: Event) -> None:
        commit = settings.pinned.state.commit if settings.pinned else None
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        folder = self.project.smt_dir / "slurm" / stamp
        folder.mkdir(parents=True, exist_ok=True)
        arrays: set[str] = set()
        after: list[str] = []
        for level in _levels(batch.jobs):
            todo = [j for j in level if j.state is JobState.PENDING]
            if not todo:
                continue
            array = self._submit(todo, settings, folder, after, commit)
            arrays.add(array)
            after = [array]
            for job in todo:
                notify("started", job, batch)
        self._write_manifest(folder, batch, commit)
        if not self.wait:
            for job in batch.jobs:
                if job.state is JobState.RUNNING:
                    job.state = JobState.SUBMITTED
            return
        self._follow(batch, settings, folder, notify, arrays, commit)

    def _executor(self, folder: Path, after: list[str]) -> Any:
        try:
            import submitit
        except ImportError:
            raise ExecutorError("the SLURM executor needs submitit: pip install "
                                "'smttask[slurm]'") from None
        logging.getLogger("submitit").setLevel(logging.ERROR)  # no sacct noise
        executor = submitit.AutoExecutor(folder=folder / "%j", cluster="slurm")
        extra = {"dependency": "afterany:" + ":".join(after)} if after else {}
        executor.update_parameters(**parameters(self.options), slurm_additional_parameters=extra,
                                   name="smttask")
        return executor

    def _submit(self, jobs: list[Job], settings: WorkerSettings, folder: Path,
                after: list[str], commit: str | None) -> str:
        """Submit ``jobs`` as one array (``tasks_per_job`` per element); its job id."""
        executor = self._executor(folder, after)
        idle = idle_cpus(self.options.partition) if self.options.tasks_per_job == "auto" \
            else None
        size = tasks_per_job(jobs, self.options, self.expected, idle)
        chunks = [jobs[i:i + size] for i in range(0, len(jobs), size)]
        try:
            messages = [[message(job, settings.root) for job in chunk] for chunk in chunks]
            submitted = executor.map_array(_element, [settings] * len(chunks), messages,
                                           [commit] * len(chunks))
        except (OSError, RuntimeError) as exc:  # sbatch missing, or refusing the array
            first = str(exc).strip().splitlines()
            raise ExecutorError(f"SLURM refused the jobs: {first[-1] if first else exc}") \
                from exc
        for chunk, sj in zip(chunks, submitted, strict=True):
            for slot, job in enumerate(chunk):
                job.state, job.slurm_id, job.slot = JobState.RUNNING, sj.job_id, slot
                job.handle, job.log = sj, Path(sj.paths.stderr)
        return str(submitted[0].job_id).split("_")[0]

    @staticmethod
    def _write_manifest(folder: Path, batch: BatchResult, commit: str | None) -> None:
        elements = [{"slurm_id": j.slurm_id, "slot": j.slot,
                     "task": j.task.taskname, "digest": j.task.digest,
                     "files": [str(f) for f in j.sources], "log": str(j.log)}
                    for j in batch.jobs if j.slurm_id]
        (folder / "manifest.json").write_text(json.dumps(
            {"commit": commit, "elements": elements}, indent=2))

    def _follow(self, batch: BatchResult, settings: WorkerSettings, folder: Path,
                notify: Event, arrays: set[str], commit: str | None) -> None:
        """Collect results as they appear (result files looked for ten times a second, the
        queue asked once a second); elements gone from the queue without one failed."""
        gone_since: dict[str, float] = {}
        live: set[str] | None = None
        asked = 0.0
        # Each element's result file, looked for once per pass: submitit builds its path
        # slowly (a few hundred µs) and an element runs many jobs.
        results: dict[str, Path] = {}  # element id → its result file
        try:
            while True:
                running = [j for j in batch.jobs if j.state is JobState.RUNNING]
                if not running:
                    return
                now = time.time()
                if now - asked >= 1.0:
                    live, asked = _live_ids(arrays), now
                read: dict[Path, tuple[str, Any]] = {}
                ended: dict[str, bool] = {}  # element id → its result is there (this pass)
                for job in running:
                    element = job.slurm_id or ""
                    if element not in results:
                        results[element] = Path(job.handle.paths.result_pickle)
                    if element not in ended:
                        ended[element] = results[element].exists()
                    result = results[element] if ended[element] else None
                    report = self._report(job, result, live, gone_since, now, read)
                    if report is None:
                        continue
                    if report.state is JobState.FAILED and job.log:
                        report.error = f"{report.error} (log: {job.log})"
                    if job.settle(report, self.retries):
                        notify("finished", job, batch)
                    else:  # retry: a new one-element array, in the queue's next answer
                        arrays.add(self._submit([job], settings, folder, [], commit))
                        asked = 0.0
                        notify("started", job, batch)
                time.sleep(0.1)
        except KeyboardInterrupt:
            batch.interrupted = True
            subprocess.run(["scancel", "--signal=INT", *sorted(arrays)], capture_output=True)
            for job in batch.jobs:
                if job.state is JobState.RUNNING:
                    job.state = JobState.KILLED
                    job.error = "interrupted; the SLURM jobs were signalled"

    @staticmethod
    def _report(job: Job, result: Path | None, live: set[str] | None,
                gone_since: dict[str, float], now: float,
                read: dict[Path, tuple[str, Any]]) -> Report | None:
        """The report of a job whose element ended (``result``: its result file, when
        there), else None."""
        if result is not None:
            return _element_report(result, job.slot, read)
        if live is None:
            return None
        if job.slurm_id in live:
            gone_since.pop(job.slurm_id or "", None)
            return None
        first_seen = gone_since.setdefault(job.slurm_id or "", now)
        if now - first_seen < 10:  # the result file may still be on its way
            return None
        return Report(JobState.FAILED, error="the SLURM job ended without a result (time "
                                             "limit, memory or node failure?)")


def status(project: config.Project | None = None) -> list[dict[str, Any]]:
    """The elements of the latest SLURM submission: state, record label, error, log."""
    project = project or config.find_project()
    folders = sorted((project.smt_dir / "slurm").glob("*/manifest.json"))
    if not folders:
        raise ExecutorError("no SLURM submission in this project (smttask run --executor slurm)")
    manifest = json.loads(folders[-1].read_text())
    arrays = {e["slurm_id"].split("_")[0] for e in manifest["elements"]}
    live = _live_ids(arrays) or set()
    rows = []
    for element in manifest["elements"]:
        results = list((folders[-1].parent / element["slurm_id"]).glob("*_result.pkl"))
        row = {**element, "state": "queued" if element["slurm_id"] in live else "lost",
               "label": None, "error": ""}
        if results:
            report = _element_report(results[0], element.get("slot", 0))
            row.update(state=str(report.state), label=report.label, error=report.error)
        rows.append(row)
    return rows
