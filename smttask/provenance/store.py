"""The record store's boundary: the write lock, store errors as one line, safe URLs and
the SQLite file of a project.

- Concurrent writes corrupt a store for good, so every write holds an exclusive lock on
  ``.smt/records.lock`` and runs in one transaction (on PostgreSQL also under an advisory
  lock: processes on other hosts share the server, not necessarily a file system that
  honours locks); see :mod:`.connection`.
- Errors of the database layer become one-line :class:`RecordStoreError` s here
  (:func:`store_errors`); other exceptions are bugs and pass through.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path

from ..config import Project
from ..errors import RecordStoreError
from .projectfile import project_file_in_step

__all__ = [
    "lock_key",
    "locked",
    "one_line",
    "read_only",
    "safe_url",
    "sqlite_path",
    "store_errors",
    "translated",
]


def store_errors() -> tuple[type[BaseException], ...]:
    """The exceptions that mean "the record store cannot be used" (not a bug of ours).
    Django's are among them only once Django is in use (reading SQLite directly needs
    no Django)."""
    drivers: tuple[type[BaseException], ...] = (sqlite3.Error, OSError)
    if "psycopg2" in sys.modules:
        drivers += (sys.modules["psycopg2"].Error,)
    if "django" not in sys.modules:
        return drivers
    from django.core.exceptions import (
        ImproperlyConfigured,
        MultipleObjectsReturned,
        ObjectDoesNotExist,
    )
    from django.db import Error as DatabaseError

    # ObjectDoesNotExist: Django's get_or_create answers a failed insert (a full disk)
    # with it.
    return (DatabaseError, *drivers, ImproperlyConfigured, MultipleObjectsReturned,
            ObjectDoesNotExist)


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


@contextlib.contextmanager
def translated(what: str) -> Iterator[None]:
    """Turn database-layer failures inside the block into ``RecordStoreError(what: …)``."""
    try:
        yield
    except (RecordStoreError, GeneratorExit):
        raise
    except store_errors() as exc:
        raise RecordStoreError(f"{what}: {one_line(exc)}") from exc


@contextlib.contextmanager
def locked(project: Project) -> Iterator[None]:
    """Hold the project's exclusive record-store lock (one writer at a time, all processes)."""
    project.smt_dir.mkdir(exist_ok=True)
    with open(project.smt_dir / "records.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def lock_key(project: Project) -> int:
    """A signed 64-bit key for PostgreSQL advisory locks, one per project."""
    import xxhash

    return xxhash.xxh64_intdigest(f"smttask:{project.name}".encode()) - (1 << 63)


def read_only(path: Path) -> sqlite3.Connection:
    """A read-only connection to a SQLite file (its path quoted into a URI: a folder
    named ``a #2`` or ``what?`` is not cut short)."""
    return sqlite3.connect(f"{Path(path).absolute().as_uri()}?mode=ro", uri=True, timeout=30)


def safe_url(url: str) -> str:
    """The URL without its password."""
    from ..store_url import mask

    return mask(url)


def sqlite_path(project: Project) -> Path | None:
    """The SQLite store file, if the store is one that exists and follows smttask.toml."""
    url = project.record_store_url
    if "://" in url or not os.path.isfile(url) or not project_file_in_step(project):
        return None
    return Path(url)
