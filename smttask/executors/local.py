"""The local executor: jobs in this process, or in a persistent pool of worker processes.

Each worker (stable ``SMTTASK_PROCESS_NUM`` = 1…N) is fed one job at a time through its
own pipe and records its own runs, the record store being protected by its lock. Ctrl-C
stops scheduling and interrupts running tasks (their records end ``_killed_``, no output
is written); a second Ctrl-C stops at once.

Given an ``output`` callback, what the tasks print goes there line by line instead of
to the terminal (a progress display decides what to show): a worker's file descriptors
1 and 2 are pipes that this process reads, so even output from C code or subprocesses
cannot break into the display. Records still capture the task's output in the worker.

``breakpoint()`` in a task opens pdb on the terminal: a worker asks the batch to pause its
progress display first, and holds the terminal (one debugger at a time) until its task
ends.

Workers do not import the caller's main script again (as multiprocessing's spawn and
forkserver methods do; task files never name it): a script calling ``smttask.batch.run()``
needs no ``if __name__ == "__main__":`` guard.
"""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing
import os
import signal
import sys
import time
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

from ..jobs import (
    BatchResult,
    Event,
    Job,
    JobState,
    Output,
    Report,
    WorkerSettings,
    execute,
    message,
)
from .output import LineWriter, Stream, redirect

__all__ = ["LocalExecutor", "PRELOAD"]

# Imported once by the fork server, so that every worker starts with them: the worker,
# and the record path with the installed packages looked up (a few hundred milliseconds
# per process otherwise).
PRELOAD = ["smttask.executors.local", "smttask.provenance.preload"]


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


def _worker(conn: Connection, number: int, settings: WorkerSettings,
            streams: list[Connection], terminal_lock: Any) -> None:
    os.environ["SMTTASK_PROCESS_NUM"] = str(number)
    terminal = _Terminal(conn, terminal_lock)
    if streams:
        redirect(streams)
    handler = _Interrupt()
    signal.signal(signal.SIGINT, handler)
    settings.prepare()
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
        for stream in (sys.stdout, sys.stderr):  # the job's output before its report
            if stream is not None:
                with contextlib.suppress(OSError, ValueError):
                    stream.flush()
        conn.send(report)


class _Interrupt:
    """SIGINT handler for a worker: raise KeyboardInterrupt once, while a job runs."""

    def __init__(self) -> None:
        self.armed = False

    def __call__(self, signum: int, frame: Any) -> None:
        if self.armed:
            self.armed = False
            raise KeyboardInterrupt


@contextlib.contextmanager
def _main_script_hidden() -> Iterator[None]:
    """Start processes that do not run the main script again.

    multiprocessing's spawn and forkserver children import the parent's main script (as
    ``__mp_main__``) when its module has a ``__file__``; a script that calls
    ``batch.run()`` at its top level would start the batch again in each of them.
    While an empty ``__main__`` stands in for it, children skip that import.
    """
    main = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = main


@dataclass(eq=False)
class _Worker:
    proc: Any
    conn: Connection
    streams: list[Stream]


class _Pool:
    """N worker processes, each fed one job at a time through its own pipe (and, to
    capture their output, with their stdout and stderr piped here)."""

    def __init__(self, size: int, settings: WorkerSettings, capture: bool = False) -> None:
        methods = multiprocessing.get_all_start_methods()
        method = "forkserver" if "forkserver" in methods else "spawn"
        ctx: Any = multiprocessing.get_context(method)
        if method == "forkserver":
            ctx.set_forkserver_preload(PRELOAD if settings.record else PRELOAD[:1])
        self.settings = settings
        self.ctx = ctx
        self.capture = capture
        self.terminal = ctx.Lock()  # held by the worker whose debugger has the terminal
        self.workers = [self._start(number) for number in range(1, size + 1)]

    def _start(self, number: int) -> _Worker:
        ours, theirs = self.ctx.Pipe()
        pipes = [self.ctx.Pipe(duplex=False) for _ in range(2)] if self.capture else []
        proc = self.ctx.Process(target=_worker, name=f"smttask-worker-{number}", daemon=True,
                                args=(theirs, number, self.settings, [w for _, w in pipes],
                                      self.terminal))
        with _main_script_hidden():
            proc.start()
        theirs.close()
        streams = []
        for name, (reader, writer) in zip(("stdout", "stderr"), pipes, strict=False):
            writer.close()
            os.set_blocking(reader.fileno(), False)
            streams.append(Stream(name, reader))
        return _Worker(proc, ours, streams)

    def restart(self, index: int) -> None:
        for stream in self.workers[index].streams:
            stream.open = False
            stream.conn.close()
        self.workers[index] = self._start(index + 1)

    def interrupt(self) -> None:
        for worker in self.workers:
            if worker.proc.is_alive() and worker.proc.pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.proc.pid, signal.SIGINT)

    def close(self, force: bool = False, leftover: Callable[[str, str], None] | None = None
              ) -> None:
        """Stop the workers; ``leftover(stream, line)`` gets what they printed last."""
        for worker in self.workers:
            if not force:
                with contextlib.suppress(OSError):
                    worker.conn.send(None)
            worker.conn.close()
        limit = time.monotonic() + 0.5 if force else None
        for worker in self.workers:
            while worker.proc.is_alive() and (limit is None or time.monotonic() < limit):
                worker.proc.join(timeout=0.1)
                for stream in worker.streams:  # a full pipe would keep it from exiting
                    for line in stream.read():
                        if leftover is not None:
                            leftover(stream.name, line)
            if worker.proc.is_alive():
                worker.proc.terminate()
                worker.proc.join(timeout=2)
            for stream in worker.streams:
                for line in [*stream.read(), *stream.lines.end()]:
                    if leftover is not None:
                        leftover(stream.name, line)
                stream.conn.close()


@dataclass
class LocalExecutor:
    """Run the jobs here (``jobs == 1`` or ``pdb``) or in ``jobs`` worker processes.

    ``output``: where the lines the tasks print go (None: this process's stdout and
    stderr, as they are; with ``pdb`` always so, the debugger needs the terminal).
    """

    jobs: int = 1
    retries: int = 0
    fail_fast: bool = False
    pdb: bool = False
    output: Output | None = None

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
                with self._captured(job):
                    report = execute(settings, message(job, settings.root),
                                     pdb_on_error=self.pdb, inline=True,
                                     on_breakpoint=lambda: notify("debugging", job, batch))
                if report.state is JobState.KILLED:
                    job.state = JobState.KILLED
                    batch.interrupted = True
                    notify("finished", job, batch)
                    return
                self._conclude(batch, job, report, notify)
                if self.fail_fast and job.state is JobState.FAILED:
                    return

    @contextlib.contextmanager
    def _captured(self, job: Job) -> Iterator[None]:
        """While a job runs in this process: what it prints goes to ``output``."""
        if self.output is None or self.pdb:
            yield
            return
        output = self.output
        out = LineWriter(lambda line: output(job, "stdout", line))
        err = LineWriter(lambda line: output(job, "stderr", line))
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                yield
        finally:
            out.close()
            err.close()

    def _run_pool(self, batch: BatchResult, settings: WorkerSettings, notify: Event) -> None:
        pool = _Pool(min(self.jobs, max(1, len(batch.jobs))), settings,
                     capture=self.output is not None)
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
                        pool.workers[index].conn.send(message(job, settings.root))
                        busy[index] = job
                        notify("started", job, batch)
                if not busy:
                    break
                conns = {pool.workers[i].conn: i for i in busy}
                sentinels = {pool.workers[i].proc.sentinel: i for i in busy}
                streams = {s.conn: (i, s) for i, w in enumerate(pool.workers)
                           for s in w.streams if s.open}
                for done in wait([*conns, *sentinels, *streams]):
                    if done in streams:
                        index, stream = streams[done]
                        self._show(busy.get(index), stream, stream.read())
                        continue
                    index = conns.get(done, sentinels.get(done))  # type: ignore[call-overload]
                    if index not in busy:
                        continue
                    received = self._receive(pool, index, done in conns)
                    if received == DEBUGGING:  # breakpoint(): pause the display, say go
                        notify("debugging", busy[index], batch)
                        with contextlib.suppress(OSError):
                            pool.workers[index].conn.send(GO)
                        continue
                    job, report = busy.pop(index), received
                    for stream in pool.workers[index].streams:  # what it printed, then its end
                        self._show(job, stream, [*stream.read(), *stream.lines.end()])
                    if report.state is JobState.KILLED:
                        job.state, job.error = JobState.KILLED, report.error or "interrupted"
                        job.label = report.label or job.label
                        notify("finished", job, batch)
                        continue
                    self._conclude(batch, job, report, notify)
                    if self.fail_fast and job.state is JobState.FAILED:
                        stopping = True
        except KeyboardInterrupt:
            pool.close(force=True, leftover=self._leftover)
            raise
        finally:
            signal.signal(signal.SIGINT, previous)
        pool.close(leftover=self._leftover)

    def _show(self, job: Job | None, stream: Stream, lines: list[str]) -> None:
        if self.output is not None:
            for line in lines:
                self.output(job, stream.name, line)

    def _leftover(self, stream: str, line: str) -> None:
        if self.output is not None:
            self.output(None, stream, line)

    @staticmethod
    def _receive(pool: _Pool, index: int, readable: bool) -> Any:
        """What the worker sent (its report, or DEBUGGING), or a failure if it died (the
        worker is then replaced)."""
        try:
            report = pool.workers[index].conn.recv() if readable else None
        except (EOFError, OSError):
            report = None
        if report is None:
            pool.workers[index].proc.join(timeout=5)
            code = pool.workers[index].proc.exitcode
            pool.restart(index)
            return Report(JobState.FAILED, error=f"worker process died (exit code {code})")
        return report
