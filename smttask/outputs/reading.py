"""Reading a file and checksumming it in one pass.

A file is read in half-megabyte chunks into a buffer that is not zero-filled first (and
starts on a page boundary from 64 KiB up), and each chunk is hashed as soon as it is its
turn, while it is still in the CPU's cache. A large read can be shared with a helper
thread: both claim the next unread chunk (of a megabyte) in turn, the helper reads what
it claims, and this thread hashes the chunks in order as they are ready, reading the next
unclaimed one whenever the next to hash is not (xxh3 is sequential, so one thread hashes
everything; the copying, which costs most, is what runs in parallel). A late helper
leaves this thread more chunks; it only ever waits for a chunk the helper is reading. A
read is shared only while a CPU is idle (:func:`_idle_core`): an 8 MB verified load then
took 1.05–1.13× ``np.load``, against 1.2–1.3× read alone, and 1.8–2× shared with the
other core busy.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["CorruptResult", "Hashing", "read_file", "read_hashing"]

#: Bytes read, and hashed, at a time by one thread (the chunk just read is hashed while
#: the CPU's cache holds it).
CHUNK = 1 << 19
#: Bytes claimed at a time in a shared read: larger, as each chunk costs the two threads
#: a hand-over (a lock, a wake-up, the GIL).
SHARED_CHUNK = 1 << 20
#: Files from this size up may be read by two threads at once.
SHARE_MIN = 1 << 21
#: Buffers of this size and up start on a page boundary (4 KiB, the usual page size):
#: from here, allocations may be fresh pages, whose first 16 bytes malloc keeps.
ALIGN_MIN = 1 << 16
PAGE = 4096
#: Where Linux says how many tasks are runnable (``1/83``: one of 83 threads).
LOADAVG = "/proc/loadavg"


class CorruptResult(Exception):
    """A result file that must not be loaded: checksum, size or type do not match."""


def _idle_core() -> bool:
    """Whether to share a large read: this process may run on two CPUs, and fewer tasks
    are runnable on the machine right now than it has CPUs (the fourth field of
    :data:`LOADAVG`, read in 4 µs), so the helper gets a core of its own. A helper on a
    busy core is preempted mid-chunk, and the read waits for it. Unknown (no such file):
    no sharing."""
    if _cpus < 2:
        return False
    try:
        fd = os.open(LOADAVG, os.O_RDONLY | os.O_CLOEXEC)
        try:
            line = os.read(fd, 256)
        finally:
            os.close(fd)
        runnable = int(line.split()[3].split(b"/")[0])
    except (OSError, ValueError, IndexError):
        return False
    return runnable < _machine_cpus


def _affinity() -> int:
    """How many CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1


_cpus = _affinity()
_machine_cpus = os.cpu_count() or 1
_jobs: queue.SimpleQueue[_Shared] | None = None
_jobs_lock = threading.Lock()


def _helper() -> queue.SimpleQueue[_Shared]:
    """The helper thread's queue of reads to share (the thread starts at the first).
    A bare thread: a ``ThreadPoolExecutor``'s futures cost 0.1–0.25 ms per read more."""
    global _jobs
    with _jobs_lock:
        if _jobs is None:
            _jobs = queue.SimpleQueue()
            threading.Thread(target=_serve, args=(_jobs,), daemon=True,
                             name="smttask-read").start()
        return _jobs


def _serve(jobs: queue.SimpleQueue[_Shared]) -> None:
    while True:
        jobs.get().help()


def _forget_helper() -> None:
    global _jobs, _jobs_lock, _cpus
    # A forked child has no helper thread (and may be allowed fewer CPUs).
    _jobs, _jobs_lock, _cpus = None, threading.Lock(), _affinity()


os.register_at_fork(after_in_child=_forget_helper)


def _page_aligned(size: int) -> Any:
    """An uninitialised uint8 array of ``size`` bytes that starts on a page boundary, as
    the file's pages do: the kernel copied a page to an address 16 bytes past a page
    boundary (where a large allocation starts) at a quarter of the speed on the machine
    measured (docs/performance.md)."""
    import numpy as np

    buffer = np.empty(size + PAGE, dtype=np.uint8)
    skip = -buffer.__array_interface__["data"][0] % PAGE
    return buffer[skip:skip + size]


class _Shared:
    """One read shared by two threads, each claiming the next unread chunk in turn: the
    helper reads what it claims; the reading thread hashes the chunks in order as they
    are ready, and reads the next unclaimed one whenever the next to hash is not."""

    def __init__(self, fd: int, data: Any, size: int) -> None:
        self.fd, self.data, self.view, self.size = fd, data, data.data, size
        self.count = -(-size // SHARED_CHUNK)
        self.next = 0  # the first unclaimed chunk
        self.ready = [False] * self.count
        self.claimed = 0  # chunks the helper is reading
        self.changed = threading.Condition(threading.Lock())
        self.short = False  # a read came back short: the file shrank meanwhile
        self.error: Exception | None = None  # what the helper's reading raised

    def claim(self, helper: bool) -> int | None:
        """The next chunk to read (its index), or None when every chunk is taken."""
        with self.changed:
            if self.next >= self.count:
                return None
            self.next += 1
            if helper:
                self.claimed += 1
            return self.next - 1

    def read(self, index: int) -> bool:
        """Read one chunk; False if it came back short."""
        start = index * SHARED_CHUNK
        end = min(start + SHARED_CHUNK, self.size)
        if os.preadv(self.fd, [self.view[start:end]], start) != end - start:
            self.short = True
        return not self.short

    def help(self) -> None:
        """The helper's part: chunks until none is left. What goes wrong is kept for the
        reading thread to raise (the helper must outlive it)."""
        try:
            while (index := self.claim(helper=True)) is not None:
                try:
                    if not self.read(index):
                        break
                finally:
                    with self.changed:
                        self.ready[index] = True
                        self.claimed -= 1
                        self.changed.notify()
        except Exception as exc:  # raised again by the reading thread
            self.error = exc

    def read_and_hash(self, hasher: Any) -> None:
        """The reading thread's part: every chunk hashed in order (or just read)."""
        hashed, ready = 0, self.ready
        while hashed < self.count and not self.short and self.error is None:
            if ready[hashed]:
                if hasher is not None:
                    start = hashed * SHARED_CHUNK
                    hasher.update(self.view[start:start + SHARED_CHUNK])
                hashed += 1
            elif (index := self.claim(helper=False)) is not None:
                ready[index] = self.read(index)
            else:  # the helper is reading the next to hash
                with self.changed:
                    while not ready[hashed] and self.claimed:
                        self.changed.wait()

    def finish(self) -> None:
        """Leave the helper nothing more to claim, and wait until it has read what it
        claimed: the file and the buffer may go after that."""
        with self.changed:
            self.next = self.count
            self.changed.wait_for(lambda: self.claimed == 0)


def read_file(path: str) -> Any:
    """A file's bytes, as a writable uint8 array (arrays loaded from it need no copy)."""
    return read_hashing(path, None)[0]


def read_hashing(path: str, hasher: Any) -> tuple[Any, str | None]:
    """A file's bytes (as :func:`read_file`) and the hex digest of ``hasher`` (an xxhash
    object, or None) over them. CorruptResult if the file shrank while it was read."""
    with Hashing(path, hasher) as result:
        return result()


class Hashing:
    """:func:`read_hashing` begun: entering gives the function that returns the bytes and
    the digest, and what the block does before calling it (reading a small file) overlaps
    the start of a shared read. The file is closed on leaving the block."""

    def __init__(self, path: str, hasher: Any) -> None:
        self.hasher = hasher
        self.fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)  # FIFO: no hang
        self.shared: _Shared | None = None
        try:
            self.size = os.fstat(self.fd).st_size
            if self.size >= SHARE_MIN and _idle_core():
                self.shared = _Shared(self.fd, _page_aligned(self.size), self.size)
                _helper().put(self.shared)
        except BaseException:
            os.close(self.fd)
            raise

    def __enter__(self) -> Callable[[], tuple[Any, str | None]]:
        return self.result

    def __exit__(self, *exc: object) -> None:
        if self.shared is not None:
            self.shared.finish()
        os.close(self.fd)

    def result(self) -> tuple[Any, str | None]:
        if self.shared is None:
            data = _read_alone(self.fd, self.size, self.hasher)
        else:
            data = self.shared.data
            try:
                self.shared.read_and_hash(self.hasher)
            finally:
                self.shared.finish()
            if self.shared.error is not None:
                raise self.shared.error
            if self.shared.short:
                raise CorruptResult(f"the file shrank while it was read (it had {self.size} "
                                    "bytes)")
        if self.hasher is None:
            return data, None
        return data, self.hasher.hexdigest()


def _read_alone(fd: int, size: int, hasher: Any) -> Any:
    """Read a whole file in this thread, hashing each chunk as it lands."""
    import numpy as np

    data = _page_aligned(size) if size >= ALIGN_MIN else np.empty(size, dtype=np.uint8)
    view = data.data
    done = 0
    while done < size:
        n = os.readv(fd, [view[done:done + CHUNK]])
        if not n:
            break
        if hasher is not None:
            hasher.update(view[done:done + n])
        done += n
    if done != size:
        raise CorruptResult(f"the file shrank while it was read (it had {size} bytes)")
    return data
