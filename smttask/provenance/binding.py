"""Sumatra's Django record store, bound once per process: configuring Django, switching
projects, creating and migrating a store, and Sumatra's own ``smt`` commands.

Sumatra's and Django's private attributes are used in the ``# private:`` helpers only,
each saying what an upgrade could break.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..config import Project
from ..errors import RecordStoreError
from .projectfile import project_file_in_step, write_project_file
from .store import lock_key, locked, safe_url, translated
from .template import copy_template, keep_template
from .writer import SCHEMA, Sql, ensure_schema, schema_version

__all__ = [
    "bootstrap",
    "is_postgres",
    "raw_sql",
    "record_manager",
    "run_smt_command",
    "sumatra",
    "writing",
]


@functools.cache
def sumatra() -> Any:
    """Import Sumatra once, with its per-record network probe switched off."""
    # Sumatra's `parameters` dependency imports scipy.stats, when it can, only to offer
    # random parameter distributions smttask never uses: a second and more per process.
    blocked = "scipy.stats" not in sys.modules
    if blocked:
        sys.modules["scipy.stats"] = None  # type: ignore[assignment]
    try:
        import parameters  # noqa: F401
    finally:
        if blocked and sys.modules.get("scipy.stats", 0) is None:
            del sys.modules["scipy.stats"]
    import sumatra
    import sumatra.launch

    # Sumatra 0.8.1 opens a connection to a public IP for every record to decide whether
    # to look up the host's address; smttask never needs it.
    sumatra.launch.have_internet_connection = lambda: False
    return sumatra


def is_postgres() -> bool:
    from django.db import connections

    return connections["default"].vendor == "postgresql"


@contextlib.contextmanager
def writing(project: Project) -> Iterator[None]:
    """One exclusive, atomic write to the store: the file lock, one transaction, and on
    PostgreSQL an advisory lock too."""
    from django.db import connections, transaction

    with locked(project), transaction.atomic(using="default"):
        if is_postgres():
            with connections["default"].cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [lock_key(project)])
        yield


@contextlib.contextmanager
def raw_sql() -> Iterator[Sql]:
    """Statements on the driver's own cursor of the default connection (inside
    :func:`writing`'s transaction), with Django's error types.

    # private: ``BaseDatabaseWrapper.connection`` (the DB-API connection) and
    # ``wrap_database_errors`` (Django's translation of driver errors) are Django
    # internals, stable since 1.6; skipping Django's cursor wrapper saves about 20 µs per
    # statement. psycopg2 accepts several statements in one call (psycopg 3 does not).
    """
    from django.db import connections

    conn = connections["default"]
    conn.ensure_connection()
    one_trip = False
    if conn.vendor == "postgresql":
        from django.db.backends.postgresql.psycopg_any import is_psycopg3

        one_trip = not is_psycopg3
    with conn.wrap_database_errors, contextlib.closing(conn.connection.cursor()) as cur:
        yield Sql(cur, qmark=conn.vendor == "sqlite", one_trip=one_trip)


@contextlib.contextmanager
def _migration_lock(project: Project) -> Iterator[None]:
    from django.db import connections

    with locked(project):
        if not is_postgres():
            yield
            return
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s)", [lock_key(project)])
            try:
                yield
            finally:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [lock_key(project)])


def _configure_django(db: dict[str, Any]) -> None:
    """Configure Django once for Sumatra's store app, with ``db`` as its only database.

    # private: ``django_store.db_config._settings``, ``_n_databases`` and ``configured``
    # are Sumatra 0.8.1's way of configuring Django itself on first use (and running
    # ``migrate`` in every process). Setting them ourselves skips both; a Sumatra release
    # that renames them breaks here, at the first store access, not silently.
    """
    from django.apps import apps
    from django.conf import settings
    from sumatra.recordstore import django_store as ds

    ds.db_config._settings["DATABASES"] = {"default": db}
    ds.db_config._n_databases = 1
    # No logging set-up of Django's (its e-mail handler imports its views and URLs), no
    # URL prefix: django.setup() less a tenth of a second of imports per process.
    settings.configure(**{**ds.db_config._settings, "DEBUG": False, "LOGGING_CONFIG": None})
    apps.populate(settings.INSTALLED_APPS)
    ds.db_config.configured = True  # we migrate ourselves, once, under the lock


def _switch_database(db: dict[str, Any]) -> None:
    """Point Django's default connection at another database (another project)."""
    from django.db import connections
    from sumatra.recordstore import django_store as ds

    current = connections.settings["default"]
    if ds.db_id(current) == ds.db_id(db):
        return
    for conn in connections.all(initialized_only=True):
        conn.close()
    with contextlib.suppress(AttributeError):
        del connections["default"]  # the next use connects to the new database
    current.update({"OPTIONS": {}, **db})  # a SQLite store's options are no PostgreSQL's


def _store_object(url: str) -> Any:
    """A DjangoRecordStore bound to the already configured default database.

    # private: ``DjangoRecordStore.__init__`` registers a new Django database per store
    # and may migrate it; building the object without it and setting ``_db_label`` and
    # ``_db_file`` (the two attributes its methods read in 0.8.1) keeps one database.
    """
    from sumatra.recordstore import django_store as ds

    store = ds.DjangoRecordStore.__new__(ds.DjangoRecordStore)
    store._db_label = "default"
    store._db_file = url
    return store


def record_manager(store: Any) -> Any:
    """The Django manager of Sumatra's Record model, for queries without Record objects.

    # private: ``DjangoRecordStore._manager`` (0.8.1) is ``models.Record.objects`` on the
    # store's database.
    """
    return store._manager


#: The URL the default connection is bound to, with its store object.
_bound: dict[str, Any] = {}


def _bind_store(url: str) -> Any:
    """A Sumatra DjangoRecordStore on ``url``; one Django database per process, switchable."""
    sumatra()
    from django.conf import settings
    from sumatra.recordstore import django_store as ds

    from ..store_url import without_password

    if "://" in url:
        db = ds.db_config.uri_to_db(url)
    else:  # a path: Sumatra's urlparse would cut it at a '#' or '?' in a folder's name
        db = {"ENGINE": "django.db.backends.sqlite3", "NAME": os.path.abspath(url)}
    db["OPTIONS"] = {}  # replaces the options of a database bound before
    if db["ENGINE"].endswith("sqlite3"):
        # WAL: readers never wait for a writer, and a commit costs no fsync (the log is
        # synced at checkpoints): a crashed process loses no committed record, a power
        # cut those since the last checkpoint. A checkpoint every 4000 pages (a log of at
        # most 16 MB; about 200 recorded runs) instead of 1000: its two fsyncs cost
        # about 2 ms per run on a busy disk.
        db["OPTIONS"] = {"init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; "
                                         "PRAGMA wal_autocheckpoint=4000"}
    if not settings.configured:
        _configure_django(db)
    else:
        _switch_database(db)
    _bound.clear()
    _bound[url] = _store_object(without_password(url))  # Sumatra prints its _db_file
    return _bound[url]


def _store_ready() -> bool:
    """True if Sumatra's tables and smttask's current additions (see .writer) exist."""
    from django.db import connections

    tables = set(connections["default"].introspection.table_names())
    return "django_store_record" in tables and schema_version() >= SCHEMA


def _create_tables() -> None:
    """Sumatra's tables (Django's migrations) and smttask's additions, in the bound store."""
    from django.core import management
    from django.db import connections

    conn = connections["default"]
    empty = conn.vendor == "sqlite" and not conn.introspection.table_names()
    if empty:
        conn.ensure_connection()
        if copy_template(conn.connection):
            return
    management.call_command("migrate", run_syncdb=True, database="default", verbosity=0,
                            interactive=False)
    ensure_schema()
    if empty:
        keep_template(conn.connection)


_bootstrapped: set[tuple[Path, str]] = set()  # (root, connect URL)


def bootstrap(project: Project) -> Any:
    """Make ``.smt/`` match smttask.toml and the record store exist; the bound store.

    Cheap after the first call in a process. Creation and migration happen under the lock,
    so concurrent first runs on a fresh project are safe.
    """
    url = project.connect_url  # with the password from the environment
    key = (project.root, url)
    if key in _bootstrapped and url in _bound:  # bound, as on the last call: nothing to do
        return _bound[url]
    with translated(f"cannot open the record store {safe_url(project.record_store_url)}"):
        store = _bind_store(url)
        if key in _bootstrapped:
            return store
        if not (project_file_in_step(project) and _store_ready()):
            with _migration_lock(project):
                if not _store_ready():
                    _create_tables()
                write_project_file(project)
    _bootstrapped.add(key)
    return store


def run_smt_command(project: Project | None, command: str, args: list[str]) -> None:
    """Run Sumatra's ``smt COMMAND ARGS`` on the project, in its folder; its usage and
    help name it ``smttask smt COMMAND`` (without a project: only its help)."""
    url = project.record_store_url if project is not None else ""
    if "://" not in url and ("#" in url or "?" in url):
        raise RecordStoreError(f"Sumatra's own commands cannot open the record store {url}: "
                               "they read a path as a URL and stop at its '#' or '?'; "
                               "rename the folder, or use smttask's store commands")
    # .smt/ must follow smttask.toml. Sumatra configures Django itself when it is first
    # (and may then open other stores: `smt sync`); where Django is set up already, it
    # finds the project's store only among those bound.
    django_set_up = "django.conf" in sys.modules and sys.modules["django.conf"].settings.configured
    if project is not None and (django_set_up or not project_file_in_step(project)):
        bootstrap(project)
    sumatra()
    from sumatra import commands

    from ..store_url import password

    if project is not None:
        os.chdir(project.root)
    # from SMTTASK_RECORD_STORE_URL, if any
    secret = password(project.connect_url) if project is not None else None
    saved_password = os.environ.get("PGPASSWORD")
    saved, sys.argv[0] = sys.argv[0], "smttask smt"  # argparse's prog, shown in usage
    try:
        if secret is not None:
            os.environ["PGPASSWORD"] = secret  # Sumatra connects by itself, through libpq
        with translated(f"smt {command}"):
            getattr(commands, command)(list(args))
    finally:
        sys.argv[0] = saved
        if secret is not None:
            if saved_password is None:
                os.environ.pop("PGPASSWORD", None)
            else:
                os.environ["PGPASSWORD"] = saved_password
