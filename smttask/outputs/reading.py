"""Reading a file and checksumming it in one pass.

A file is read in chunks into a buffer that is not zero-filled first. A file larger than
one chunk can be hashed by a helper thread, one chunk behind the read: xxh3 releases the
GIL, so the hash runs on a second core while the next chunk is copied, and a verified
load costs little more than the read alone. Whether the second core is free is not known
in advance (on a shared VM even an idle guest's second core can be slow): an 8 MB
verified load took 0.97–1.08× ``np.load`` with the helper against 1.28–1.30× without it
when it was, 1.78–1.87× against 1.35–1.39× with the other core busy. So each process
times both ways and uses the faster one (:class:`_Choice`).
"""

from __future__ import annotations

import collections
import os
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["CorruptResult", "read_file", "read_hashing"]

#: Bytes read at a time (and handed to the helper thread).
CHUNK = 1 << 19


class CorruptResult(Exception):
    """A result file that must not be loaded: checksum, size or type do not match."""


class _Choice:
    """Whether the next large read hashes in the helper thread: the way whose recent
    loads cost less per byte (the median of its last seven), trying the other way every
    32nd load so that a change (a core freed or taken) is noticed."""

    EXPLORE = 32

    def __init__(self) -> None:
        self.costs: dict[bool, collections.deque[float]] = {
            True: collections.deque(maxlen=7), False: collections.deque(maxlen=7)}
        self.loads = 0

    def helper(self) -> bool:
        self.loads += 1
        if not self.costs[True] or not self.costs[False]:
            return not self.costs[True]
        best = _median(self.costs[True]) <= _median(self.costs[False])
        return not best if self.loads % self.EXPLORE == 0 else best

    def note(self, helper: bool, seconds: float, size: int) -> None:
        self.costs[helper].append(seconds / size)


def _median(values: collections.deque[float]) -> float:
    return sorted(values)[len(values) // 2]


_choice = _Choice()
_helper: queue.SimpleQueue[tuple[Any, Any]] | None = None
_helper_lock = threading.Lock()


def _hash_chunks(jobs: queue.SimpleQueue[tuple[Any, Any]]) -> None:
    """The helper thread: feed each chunk to its hasher, in order; answer a reply queue
    with the hex digest, or with what a chunk's hashing raised (re-raised by the reader:
    the thread itself must outlive it, or every later load would wait forever)."""
    failed: dict[Any, Exception] = {}  # hasher → what its update raised
    while True:
        hasher, chunk = jobs.get()
        if isinstance(chunk, queue.SimpleQueue):
            chunk.put(failed.pop(hasher, None) or hasher.hexdigest())
            continue
        if hasher not in failed:
            try:
                hasher.update(chunk)
            except Exception as exc:  # handed to the reader, raised there
                failed[hasher] = exc


def _hash_queue() -> queue.SimpleQueue[tuple[Any, Any]]:
    """The helper thread's queue (the thread starts at the first large read)."""
    global _helper
    with _helper_lock:
        if _helper is None:
            _helper = queue.SimpleQueue()
            threading.Thread(target=_hash_chunks, args=(_helper,), daemon=True,
                             name="smttask-checksum").start()
        return _helper


def _forget_helper() -> None:
    global _helper, _helper_lock, _choice
    # A forked child has no helper thread (nor the parent's cores).
    _helper, _helper_lock, _choice = None, threading.Lock(), _Choice()


os.register_at_fork(after_in_child=_forget_helper)


def read_file(path: str) -> Any:
    """A file's bytes, as a writable uint8 array (arrays loaded from it need no copy)."""
    return read_hashing(path, None)[0]


def read_hashing(path: str, hasher: Any) -> tuple[Any, Callable[[], str | None]]:
    """A file's bytes (as :func:`read_file`), and a function that returns the hex digest
    of ``hasher`` (an xxhash object, or None) over them: call it last, after any other
    work on the bytes, so that the helper thread's hashing overlaps that work too.
    CorruptResult if the file shrank while it was read."""
    import numpy as np

    started = time.perf_counter()
    with open(path, "rb", buffering=0) as f:
        size = os.fstat(f.fileno()).st_size
        data = np.empty(size, dtype=np.uint8)
        view = data.data  # a memoryview
        large = hasher is not None and size > CHUNK
        helper = large and _choice.helper()
        jobs = _hash_queue() if helper else None
        done = 0
        while done < size:
            n = f.readinto(view[done:done + CHUNK])
            if not n:
                break
            if jobs is not None:
                jobs.put((hasher, view[done:done + n]))
            elif hasher is not None:
                hasher.update(view[done:done + n])
            done += n
    if done != size:
        raise CorruptResult(f"read {done} of {size} bytes")
    if hasher is None:
        return data, lambda: None
    reply: queue.SimpleQueue[str | BaseException] | None = None
    if jobs is not None:
        reply = queue.SimpleQueue()
        jobs.put((hasher, reply))

    def digest() -> str | None:
        found = hasher.hexdigest() if reply is None else reply.get()
        if isinstance(found, BaseException):
            raise found
        if large:
            _choice.note(helper, time.perf_counter() - started, size)
        return found

    return data, digest
