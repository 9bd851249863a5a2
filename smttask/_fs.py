"""Atomic file writes: the one way smttask puts a file on disk.

Bytes go to a temporary file with a random name in the target's own folder
(``.smttask-tmp-<pid>-<random>``), are flushed and fsynced, and only then take their
final name in one step. Whatever happens before that step (an exception, Ctrl-C, a full
disk) the temporary file is removed, so no reader ever sees a partial file under a real
name. (``durable=False`` skips the fsync for files that are cheap to make again or
checked when read, such as task files and results, whose checksums are verified on
load: a crash still never leaves a partial file under the name, but after a power cut
the newest such files may be empty or missing.) Three ways to take the name:

- :func:`replace`: atomically replace whatever is there (``os.replace``);
- :func:`create`: only if the name is free (a hard link, which never overwrites);
- :func:`claim`: the first free name of a sequence (``x.npy``, ``x_2.npy``, …).

:func:`symlink` points a link at a target (relative), replacing it atomically.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

__all__ = [
    "TEMP_PREFIX",
    "Writer",
    "claim",
    "create",
    "link_first_free",
    "replace",
    "symlink",
    "temporary",
    "write_unread",
]

#: Every temporary file smttask makes starts with this (``store verify --fix`` finds
#: orphans left by a killed process by it).
TEMP_PREFIX = ".smttask-tmp-"

#: What to write: bytes, text (UTF-8), or a function writing into the open binary file.
Writer = bytes | str | Callable[[BinaryIO], object]


def _temp_name(folder: Path) -> Path:
    return folder / f"{TEMP_PREFIX}{os.getpid()}-{os.urandom(6).hex()}"


def _fill(f: BinaryIO, data: Writer, durable: bool) -> None:
    if isinstance(data, str):
        f.write(data.encode("utf-8"))
    elif isinstance(data, bytes | bytearray | memoryview):
        f.write(data)
    else:
        data(f)
    f.flush()
    if durable:
        os.fsync(f.fileno())


@contextlib.contextmanager
def temporary(folder: Path, data: Writer, *, durable: bool = True) -> Iterator[Path]:
    """A temporary file in ``folder`` holding ``data`` (fsynced if ``durable``); removed on
    leaving unless it was renamed or linked away (the caller's job inside the block)."""
    tmp = _temp_name(folder)
    try:
        with open(tmp, "xb") as f:
            _fill(f, data, durable)
        yield tmp
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def write_unread(path: Path, data: Writer) -> None:
    """Write ``path`` in place, replacing what is there, with no temporary file and no
    fsync: one directory change instead of three. Only for files nobody reads before a
    later step points at them (the checksum file of a result just claimed, not linked
    yet): a failed write removes it, but a killed process may leave it partial."""
    with open(path, "wb") as f:
        try:
            _fill(f, data, durable=False)
        except BaseException:
            os.unlink(path)
            raise


def replace(path: Path, data: Writer, *, mode: int | None = None, durable: bool = True
            ) -> None:
    """Write ``path`` atomically, replacing any earlier content (``mode``: permissions)."""
    path = Path(path)
    with temporary(path.parent, data, durable=durable) as tmp:
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)


def create(path: Path, data: Writer, *, durable: bool = True) -> bool:
    """Write ``path`` atomically if the name is free; False (nothing written) if taken."""
    path = Path(path)
    with temporary(path.parent, data, durable=durable) as tmp:
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
    return True


def claim(candidates: Iterable[Path], data: Writer) -> Path:
    """Write ``data`` under the first free name of ``candidates`` (never overwriting);
    that name. The candidates must lie in one folder and must not run out."""
    names = iter(candidates)
    first = next(names)
    with temporary(first.parent, data) as tmp:
        return link_first_free(tmp, itertools.chain([first], names))


def link_first_free(tmp: Path, candidates: Iterable[Path]) -> Path:
    """Give the file ``tmp`` the first free name of ``candidates`` (a hard link); that name."""
    for path in candidates:
        try:
            os.link(tmp, path)
        except FileExistsError:
            continue
        return path
    raise FileExistsError(f"every candidate name for {tmp} is taken")


def symlink(link: Path, target: Path) -> None:
    """Point ``link`` at ``target`` with a relative symlink, atomically replacing it."""
    link = Path(link)
    rel = os.path.relpath(target, link.parent)
    try:
        os.symlink(rel, link)  # a new link: one step
        return
    except FileExistsError:
        pass
    tmp = _temp_name(link.parent)
    os.symlink(rel, tmp)
    try:
        os.replace(tmp, link)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
