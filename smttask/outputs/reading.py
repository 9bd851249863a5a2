"""Reading a file and checksumming it in one pass.

A file is read in half-megabyte chunks into a buffer that is not zero-filled first (and
starts on a page boundary from 64 KiB up), and each chunk is hashed as soon as it is its
turn, while it is still in the CPU's cache. A large read can be shared with a helper
thread: both claim the next unread chunk in turn, the helper reads what it claims, and
this thread hashes the chunks in order as they are ready, reading the next unclaimed one
whenever the next to hash is not (xxh3 is sequential, so one thread hashes everything; the
copying, which costs most, is what runs in parallel). A late helper leaves this thread
more chunks; it only ever waits for a chunk the helper is reading. With the second core
free, an 8 MB verified read took 0.8–0.9× ``np.load`` shared against 1.1–1.2× alone; with
it busy, sharing costs more. Which holds is not known in advance (on a shared VM even an
idle guest's second core can be slow to wake), so each process compares both
(:class:`_Choice`).
"""

from __future__ import annotations

import collections
import os
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["CorruptResult", "Hashing", "read_file", "read_hashing"]

#: Bytes read, and hashed, at a time.
CHUNK = 1 << 19
#: Files from this size up may be read by two threads at once.
SHARE_MIN = 1 << 21
#: Buffers of this size and up start on a page boundary (4 KiB, the usual page size):
#: from here, allocations may be fresh pages, whose first 16 bytes malloc keeps.
ALIGN_MIN = 1 << 16
PAGE = 4096


class CorruptResult(Exception):
    """A result file that must not be loaded: checksum, size or type do not match."""


class _Choice:
    """Whether the next large read is shared with the helper thread. Sharing is the way
    in use at first; every 16th read the other way is tried, for two reads in a row of
    which only the second is timed (a helper that has been idle is slow to wake, which a
    run of shared reads pays less), and taken up if it cost less per byte than the way
    in use has lately (the mean of its last three reads): neighbouring reads are
    compared, as the machine's speed drifts. With the other core busy, a shared read is
    now and then very slow (the helper descheduled mid-chunk), which one trial rarely
    shows: sharing is taken up again only if it cost a fifth less, and each trial it
    loses doubles the reads until the next (up to 256). A process allowed one CPU never
    shares."""

    EXPLORE = 16
    MOST = 256
    GAIN = 0.8

    def __init__(self) -> None:
        self.cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
        self.way = True  # sharing
        self.every = self.EXPLORE  # reads from one trial of the other way to the next
        self.recent: collections.deque[float] = collections.deque(maxlen=3)  # cost/byte
        self.reads = 0
        self.last: bool | None = None
        self.timed = False  # whether the read just chosen is to be timed

    def helper(self) -> bool:
        if self.cpus < 2:
            return False
        self.reads += 1
        way = self.way != (self.reads % self.every >= self.every - 2)
        self.timed, self.last = way == self.last, way
        return way

    def note(self, helper: bool, seconds: float, size: int) -> None:
        cost = seconds / size
        if helper != self.way:
            lately = sum(self.recent) / len(self.recent) if self.recent else 0.0
            if cost >= lately * (self.GAIN if helper else 1.0):
                if helper:
                    self.every = min(2 * self.every, self.MOST)
                return
            self.way, self.every = helper, self.EXPLORE
            self.recent.clear()
        self.recent.append(cost)


_choice = _Choice()
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
    global _jobs, _jobs_lock, _choice
    # A forked child has no helper thread (nor the parent's cores).
    _jobs, _jobs_lock, _choice = None, threading.Lock(), _Choice()


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
        self.count = -(-size // CHUNK)
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
        start = index * CHUNK
        end = min(start + CHUNK, self.size)
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
                    hasher.update(self.view[hashed * CHUNK:(hashed + 1) * CHUNK])
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
        self.started = time.perf_counter()
        try:
            self.size = os.fstat(self.fd).st_size
            large = self.size >= SHARE_MIN
            self.way, self.timed = (_choice.helper(), _choice.timed) if large else (False, False)
            if self.way:
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
        digest = self.hasher.hexdigest()
        if self.timed:
            _choice.note(self.way, time.perf_counter() - self.started, self.size)
        return data, digest


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
