"""smttask's own connection to a ready store: one exclusive transaction of plain SQL per
write, and read-only reads, without importing Django or Sumatra (half a second per process).

A store that exists with Sumatra's tables and smttask's current additions is written through
``sqlite3`` (BEGIN IMMEDIATE under the file lock) or psycopg2 (autocommit, explicit
transactions); one connection per process, never shared across a fork. Anything else (a
store to create or migrate, PostgreSQL without psycopg2) goes through Django (:mod:`.binding`).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..config import Project
from .binding import bootstrap, is_postgres, raw_sql
from .projectfile import project_file_in_step
from .store import lock_key, locked, read_only, safe_url, sqlite_path, store_errors, translated
from .template import ready_sqlite
from .writer import SCHEMA, Sql, stored_schema

__all__ = [
    "direct_connection",
    "ensure_store",
    "postgres_reader",
    "reading_sql",
    "sqlite_store",
    "writing_sql",
]


@contextlib.contextmanager
def writing_sql(project: Project) -> Iterator[Sql]:
    """:func:`.binding.writing` and :func:`.binding.raw_sql` together: one exclusive
    transaction of plain SQL, on a connection of smttask's own when the store is ready (no
    Django): SQLite, or PostgreSQL through psycopg2, where the transaction's first
    statements (BEGIN, the advisory lock) travel with its first query and the last ones
    with COMMIT."""
    direct = direct_connection(project)
    if direct is None:
        ready_sqlite(project)  # a new store (a copy of the cached empty one), or a moved one
        direct = direct_connection(project)  # ready now, or by another process meanwhile
    if direct is None:
        with _django_sql(project) as sql:
            yield sql
        return
    postgres = not isinstance(direct, sqlite3.Connection)
    with locked(project), contextlib.closing(direct.cursor()) as cursor:
        sql = Sql(cursor, qmark=not postgres, one_trip=postgres)
        if postgres:  # autocommit: BEGIN opens the transaction, COMMIT ends it
            sql.first("BEGIN")
            sql.first("SELECT pg_advisory_xact_lock(%s)", [lock_key(project)])
        else:
            cursor.execute("BEGIN IMMEDIATE")
        committed = False
        try:
            yield sql
            if postgres:
                sql.first("COMMIT")
                sql.flush()
            else:
                direct.commit()
            committed = True
        finally:
            if not committed:  # an error, Ctrl-C, a failed commit: nothing half-saved
                _abandon(direct, project)


def _abandon(conn: Any, project: Project) -> None:
    """Roll back a failed transaction of a direct connection; forget the connection if
    it is broken (the next one reconnects). The first error is the one to see."""
    if isinstance(conn, sqlite3.Connection):
        with contextlib.suppress(sqlite3.Error):
            conn.rollback()
        return
    try:
        with conn.cursor() as cursor:
            cursor.execute("ROLLBACK")
    except store_errors():  # the server is gone: reconnect next time
        _direct.pop((os.getpid(), project.record_store_url), None)
        with contextlib.suppress(*store_errors()):
            conn.close()


@contextlib.contextmanager
def _django_sql(project: Project) -> Iterator[Sql]:
    """:func:`writing_sql` through Django's connection (a store to create or migrate, or
    PostgreSQL without psycopg2): the advisory lock is sent with the first statement (or
    before any query of Django's own)."""
    bootstrap(project)
    from django.db import connections, transaction

    with locked(project), transaction.atomic(using="default"), raw_sql() as sql:
        if not is_postgres():
            yield sql
            sql.flush()
            return
        sql.first("SELECT pg_advisory_xact_lock(%s)", [lock_key(project)])

        def lock_first(execute: Any, *args: Any) -> Any:
            sql.flush()
            return execute(*args)

        with connections["default"].execute_wrapper(lock_first):
            yield sql
            sql.flush()


@contextlib.contextmanager
def reading_sql(project: Project) -> Iterator[Sql]:
    """Plain SQL reads of the store, without Django where it can: a read-only connection
    of its own to a SQLite store that exists and follows smttask.toml, or the direct
    psycopg2 connection to a ready PostgreSQL store (each statement its own transaction);
    Django's connection otherwise."""
    path = sqlite_store(project)
    if path is not None:
        with contextlib.closing(read_only(path)) as db:
            yield Sql(db.cursor(), qmark=True, one_trip=False)
        return
    direct = postgres_reader(project)
    if direct is not None:
        with contextlib.closing(direct.cursor()) as cursor:
            yield Sql(cursor, qmark=False, one_trip=False)
        return
    bootstrap(project)
    with raw_sql() as sql:
        yield sql


def sqlite_store(project: Project) -> Path | None:
    """The project's SQLite store, ready for smttask's own connection: made from the
    cached empty store if there is none yet, and in a project moved or copied elsewhere
    with ``.smt/project`` brought in step first; None if that takes Django."""
    path = sqlite_path(project)
    if path is None:
        with translated(f"cannot open the record store {safe_url(project.record_store_url)}"):
            if ready_sqlite(project):
                path = sqlite_path(project)
    return path


def postgres_reader(project: Project) -> Any:
    """The direct psycopg2 connection to the project's PostgreSQL store, if it is ready
    and psycopg2 is installed (None otherwise, SQLite included)."""
    if "://" not in project.record_store_url:
        return None
    with translated(f"cannot open the record store {safe_url(project.record_store_url)}"):
        return direct_connection(project)


#: The connection of smttask's own to the store last written (one per process, as
#: Django's), by (process, store URL): sqlite3 or psycopg2.
_direct: dict[tuple[int, str], Any] = {}


#: Connections a forked process inherited: never used, never closed (closing one could
#: checkpoint the parent's log under it, or end its session).
_inherited: list[Any] = []


def direct_connection(project: Project) -> Any:
    """A connection of smttask's own to the project's store, if the store exists with
    Sumatra's tables and smttask's current additions and ``.smt/project`` is in step: a
    SQLite file, or PostgreSQL when psycopg2 is installed (else None:
    :func:`.binding.bootstrap` makes them, through Django)."""
    key = (os.getpid(), project.record_store_url)  # a connection never crosses a fork
    if key in _direct:
        return _direct[key]
    for other in list(_direct):
        conn = _direct.pop(other)
        if other[0] == os.getpid():
            conn.close()
        else:
            _inherited.append(conn)
    if "://" in project.record_store_url:
        conn = _postgres_connection(project)
    else:
        path = sqlite_path(project)
        if path is None:
            return None
        # Like Django's sqlite3 connection: autocommit until BEGIN; WAL as the store was
        # made.
        conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA wal_autocheckpoint=4000")
    if conn is None:
        return None
    try:
        with contextlib.closing(conn.cursor()) as cursor:
            current = stored_schema(cursor) >= SCHEMA
    except store_errors():  # not made yet, or made by an older smttask
        current = False
    if not current:
        conn.close()
        return None
    _direct[key] = conn
    return conn


def _postgres_connection(project: Project) -> Any:
    """An autocommit psycopg2 connection to the project's PostgreSQL store, if psycopg2 is
    installed and ``.smt/project`` is in step (None otherwise)."""
    if not project_file_in_step(project):
        return None
    try:
        import psycopg2  # type: ignore[import-untyped]
    except ImportError:
        return None
    conn = psycopg2.connect(project.connect_url)  # libpq: the password from the
    conn.autocommit = True  # environment or ~/.pgpass when the URL has none
    return conn


def ensure_store(project: Project) -> None:
    """Make ``.smt/`` follow smttask.toml and the record store exist, ready for records;
    through Django only when there is no other way (PostgreSQL, the first store of these
    Sumatra and Django versions on this machine, an older store to migrate)."""
    with translated(f"cannot open the record store {safe_url(project.record_store_url)}"):
        if direct_connection(project) is None:
            ready_sqlite(project)
            if direct_connection(project) is None:
                bootstrap(project)
