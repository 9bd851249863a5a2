"""The local executor: jobs in this process, or in a persistent pool of worker processes.

Each worker (stable ``SMTTASK_PROCESS_NUM`` = 1…N) is fed one job at a time through its
own pipe and records its own runs, the record store being protected by its lock. Ctrl-C
stops scheduling and interrupts running tasks (their records end ``_killed_``, no output
is written); a second Ctrl-C stops at once.

``breakpoint()`` in a task opens pdb on the terminal: a worker asks the batch to pause its
progress display first, and holds the terminal (one debugger at a time) until its task
ends.

Workers do not import the caller's main script again (as multiprocessing's spawn and
forkserver methods do), unless a task of the batch is defined in it: a script calling
``smttask.batch.run()`` needs no ``if __name__ == "__main__":`` guard.
"""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing
import os
import signal
import sys
import types
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

from ..jobs import BatchResult, Event, Job, JobState, Report, WorkerSettings, execute, message
from ..task import Task

__all__ = ["LocalExecutor", "PRELOAD"]

# Imported once by the fork server, so that every worker starts with them (Sumatra and
# Django alone cost a few hundred milliseconds per process).
PRELOAD = ["smttask.executors.local", "smttask.provenance", "sumatra.records",
           "sumatra.parameters", "sumatra.recordstore.django_store", "django.db"]


#: What a worker sends before ``breakpoint()`` opens the debugger; the batch answers
#: :data:`GO` once its progress display is paused.
DEBUGGING, GO = "debugging", "go"


class _Terminal:
    """A worker's claim on the terminal for a debugger, until its job ends."""

    def __init__(self, conn: Connection, lock: Any) -> None:
        self.conn, self.lock, self.held = conn, lock, False

    def claim(self) -> None:
        if not self.held:
            self.lock.acquire()
            self.held = True
            self.conn.send(DEBUGGING)
            with contextlib.suppress(EOFError, OSError):
                self.conn.recv()  # GO: the display is paused

    def release(self) -> None:
        if self.held:
            self.held = False
            self.lock.release()


def _worker(conn: Connection, number: int, settings: WorkerSettings, terminal_lock: Any
            ) -> None:
    os.environ["SMTTASK_PROCESS_NUM"] = str(number)
    handler = _Interrupt()
    signal.signal(signal.SIGINT, handler)
    settings.prepare()
    terminal = _Terminal(conn, terminal_lock)
    while True:
        try:
            msg = conn.recv()
        except (EOFError, KeyboardInterrupt):
            return
        if msg is None:
            return
        handler.armed = True
        try:
            report = execute(settings, msg, on_breakpoint=terminal.claim)
        except KeyboardInterrupt:  # arrived between the task and its report
            report = Report(JobState.KILLED, error="interrupted")
        handler.armed = False
        terminal.release()
        conn.send(report)


class _Interrupt:
    """SIGINT handler for a worker: raise KeyboardInterrupt once, while a job runs."""

    def __init__(self) -> None:
        self.armed = False

    def __call__(self, signum: int, frame: Any) -> None:
        if self.armed:
            self.armed = False
            raise KeyboardInterrupt


def _defined_in_main(task: Task) -> bool:
    """True if ``task`` or a task among its inputs is defined in the main script."""
    return type(task).__module__ == "__main__" or any(
        _defined_in_main(v) for v in task.inputs.__dict__.values() if isinstance(v, Task))


@contextlib.contextmanager
def _main_script_hidden(hidden: bool) -> Iterator[None]:
    """Start processes that do not run the main script again.

    multiprocessing's spawn and forkserver children import the parent's main script (as
    ``__mp_main__``) when its module has a ``__file__``; a script that calls
    ``batch.run()`` at its top level would start the batch again in each of them.
    While an empty ``__main__`` stands in for it, children skip that import.
    """
    if not hidden:
        yield
        return
    main = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = main


class _Pool:
    """N worker processes, each fed one job at a time through its own pipe."""

    def __init__(self, size: int, settings: WorkerSettings, main_script: bool = False
                 ) -> None:
        methods = multiprocessing.get_all_start_methods()
        method = "forkserver" if "forkserver" in methods else "spawn"
        ctx: Any = multiprocessing.get_context(method)
        if method == "forkserver":
            ctx.set_forkserver_preload(PRELOAD if settings.record else PRELOAD[:1])
        self.settings = settings
        self.ctx = ctx
        self.main_script = main_script  # the workers need it: tasks are defined there
        self.terminal = ctx.Lock()  # held by the worker whose debugger has the terminal
        self.workers = [self._start(number) for number in range(1, size + 1)]

    def _start(self, number: int) -> tuple[Any, Connection]:
        ours, theirs = self.ctx.Pipe()
        proc = self.ctx.Process(target=_worker, name=f"smttask-worker-{number}", daemon=True,
                                args=(theirs, number, self.settings, self.terminal))
        with _main_script_hidden(not self.main_script):
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


@dataclass
class LocalExecutor:
    """Run the jobs here (``jobs == 1`` or ``pdb``) or in ``jobs`` worker processes."""

    jobs: int = 1
    retries: int = 0
    fail_fast: bool = False
    pdb: bool = False

    def run(self, batch: BatchResult, settings: WorkerSettings, notify: Event) -> None:
        if self.jobs == 1 or self.pdb:
            self._run_inline(batch, settings, notify)
        else:
            self._run_pool(batch, settings, notify)

    def _conclude(self, batch: BatchResult, job: Job, report: Report, notify: Event) -> None:
        """Settle a job's report: announce it, or queue it again for a retry."""
        if job.settle(report, self.retries):
            notify("finished", job, batch)
        else:
            batch.scan_from = 0  # it is pending again

    def _run_inline(self, batch: BatchResult, settings: WorkerSettings, notify: Event) -> None:
        with settings.applied():
            while (job := next(batch.ready(), None)) is not None:
                job.state = JobState.RUNNING
                notify("started", job, batch)
                report = execute(settings, message(job, settings.root), pdb_on_error=self.pdb,
                                 on_breakpoint=lambda: notify("debugging", job, batch),
                                 inline=True)
                if report.state is JobState.KILLED:
                    job.state = JobState.KILLED
                    batch.interrupted = True
                    notify("finished", job, batch)
                    return
                self._conclude(batch, job, report, notify)
                if self.fail_fast and job.state is JobState.FAILED:
                    return

    def _run_pool(self, batch: BatchResult, settings: WorkerSettings, notify: Event) -> None:
        pool = _Pool(min(self.jobs, max(1, len(batch.jobs))), settings,
                     main_script=any(_defined_in_main(job.task) for job in batch.jobs))
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
                    ready = list(itertools.islice(batch.ready(), len(free)))
                    for index, job in zip(free, ready, strict=False):
                        job.state, job.worker = JobState.RUNNING, index + 1
                        pool.workers[index][1].send(message(job, settings.root))
                        busy[index] = job
                        notify("started", job, batch)
                if not busy:
                    break
                conns = {pool.workers[i][1]: i for i in busy}
                sentinels = {pool.workers[i][0].sentinel: i for i in busy}
                for done in wait([*conns, *sentinels]):
                    index = conns.get(done, sentinels.get(done))  # type: ignore[call-overload]
                    if index not in busy:
                        continue
                    received = self._receive(pool, index, done in conns)
                    if received == DEBUGGING:  # breakpoint(): pause the display, say go
                        notify("debugging", busy[index], batch)
                        with contextlib.suppress(OSError):
                            pool.workers[index][1].send(GO)
                        continue
                    job, report = busy.pop(index), received
                    if report.state is JobState.KILLED:
                        job.state, job.error = JobState.KILLED, report.error or "interrupted"
                        job.label = report.label or job.label
                        notify("finished", job, batch)
                        continue
                    self._conclude(batch, job, report, notify)
                    if self.fail_fast and job.state is JobState.FAILED:
                        stopping = True
        except KeyboardInterrupt:
            pool.close(force=True)
            raise
        finally:
            signal.signal(signal.SIGINT, previous)
        pool.close()

    @staticmethod
    def _receive(pool: _Pool, index: int, readable: bool) -> Any:
        """What the worker sent (its report, or DEBUGGING), or a failure if it died (the
        worker is then replaced)."""
        try:
            report = pool.workers[index][1].recv() if readable else None
        except (EOFError, OSError):
            report = None
        if report is None:
            pool.workers[index][0].join(timeout=5)
            code = pool.workers[index][0].exitcode
            pool.restart(index)
            return Report(JobState.FAILED, error=f"worker process died (exit code {code})")
        return report
