"""Binding Sumatra's Django record store: one database per process, locks, migrations,
and ``.smt/project`` kept in step with smttask.toml.

- Concurrent Django writes corrupt a store for good, so every write holds an exclusive
  lock on ``.smt/records.lock`` and runs in one transaction (on PostgreSQL also under an
  advisory lock: processes on other hosts share the server, not necessarily a file system
  that honours locks). The store is created and migrated once, under that lock.
- ``.smt/project`` is written from smttask.toml, atomically, only when it is missing or
  out of step; it keeps Sumatra's own ``smt`` commands working on the project.
- Records are written by smttask's own SQL (see .writer). On a store that exists and is
  up to date, that goes through a connection of smttask's own (``sqlite3``, or psycopg2
  for PostgreSQL), without importing Django or Sumatra (half a second per process); a
  new SQLite store is a copy of a cached empty one. Migrating a store, creating a
  PostgreSQL one and reads through Sumatra's models use Django.
- Errors of the database layer become one-line :class:`RecordStoreError` s at this
  boundary (:func:`store_errors`); other exceptions are bugs and pass through.

Sumatra's and Django's private attributes are used in the ``# private:`` helpers only,
each saying what an upgrade could break.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import os
import platform
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .. import _fs
from ..config import Project
from ..errors import RecordStoreError
from .writer import SCHEMA, Sql, ensure_schema, schema_version

__all__ = [
    "TIMESTAMP_FORMAT",
    "bootstrap",
    "configure_django",
    "ensure_store",
    "locked",
    "one_line",
    "project_file_in_step",
    "raw_sql",
    "read_only",
    "reading_sql",
    "run_smt_command",
    "safe_url",
    "sqlite_path",
    "store_errors",
    "translated",
    "writing",
    "writing_sql",
]

TIMESTAMP_FORMAT = "%Y%m%d-%H%M%S"
_SMT_TYPES = {
    "executable": "sumatra.programs.PythonExecutable",
    "repository": "sumatra.versioncontrol._git.GitRepository",
    "launch_mode": "sumatra.launch.SerialLaunchMode",
    "datastore": "sumatra.datastore.filesystem.FileSystemDataStore",
    "record_store": "sumatra.recordstore.django_store.DjangoRecordStore",
}


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


def _lock_key(project: Project) -> int:
    """A signed 64-bit key for PostgreSQL advisory locks, one per project."""
    import xxhash

    return xxhash.xxh64_intdigest(f"smttask:{project.name}".encode()) - (1 << 63)


def _is_postgres() -> bool:
    from django.db import connections

    return connections["default"].vendor == "postgresql"


@contextlib.contextmanager
def writing(project: Project) -> Iterator[None]:
    """One exclusive, atomic write to the store: the file lock, one transaction, and on
    PostgreSQL an advisory lock too."""
    from django.db import connections, transaction

    with locked(project), transaction.atomic(using="default"):
        if _is_postgres():
            with connections["default"].cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_lock_key(project)])
        yield


@contextlib.contextmanager
def writing_sql(project: Project) -> Iterator[Sql]:
    """:func:`writing` and :func:`raw_sql` together: one exclusive transaction of plain
    SQL, on a connection of smttask's own when the store is ready (no Django): SQLite, or
    PostgreSQL through psycopg2, where the transaction's first statements (BEGIN, the
    advisory lock) travel with its first query and the last ones with COMMIT."""
    direct = _direct_connection(project)
    if direct is None:
        _sqlite_from_template(project)  # a new store: a copy of the cached empty one
        direct = _direct_connection(project)  # made now, or by another process meanwhile
    if direct is None:
        with _django_sql(project) as sql:
            yield sql
        return
    postgres = not isinstance(direct, sqlite3.Connection)
    with locked(project), contextlib.closing(direct.cursor()) as cursor:
        sql = Sql(cursor, qmark=not postgres, one_trip=postgres)
        if postgres:  # autocommit: BEGIN opens the transaction, COMMIT ends it
            sql.first("BEGIN")
            sql.first("SELECT pg_advisory_xact_lock(%s)", [_lock_key(project)])
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
        if not _is_postgres():
            yield sql
            sql.flush()
            return
        sql.first("SELECT pg_advisory_xact_lock(%s)", [_lock_key(project)])

        def lock_first(execute: Any, *args: Any) -> Any:
            sql.flush()
            return execute(*args)

        with connections["default"].execute_wrapper(lock_first):
            yield sql
            sql.flush()


def read_only(path: Path) -> sqlite3.Connection:
    """A read-only connection to a SQLite file (its path quoted into a URI: a folder
    named ``a #2`` or ``what?`` is not cut short)."""
    return sqlite3.connect(f"{Path(path).absolute().as_uri()}?mode=ro", uri=True, timeout=30)


@contextlib.contextmanager
def reading_sql(project: Project) -> Iterator[Sql]:
    """Plain SQL reads of the store: a read-only connection of its own to a SQLite store
    that exists and follows smttask.toml (no Django), Django's connection otherwise."""
    path = sqlite_path(project)
    if path is None:
        bootstrap(project)
        with raw_sql() as sql:
            yield sql
        return
    with contextlib.closing(read_only(path)) as db:
        yield Sql(db.cursor(), qmark=True, one_trip=False)


#: The connection of smttask's own to the store last written (one per process, as
#: Django's), by (process, store URL): sqlite3 or psycopg2.
_direct: dict[tuple[int, str], Any] = {}
#: Connections a forked process inherited: never used, never closed (closing one could
#: checkpoint the parent's log under it, or end its session).
_inherited: list[Any] = []


def _direct_connection(project: Project) -> Any:
    """A connection of smttask's own to the project's store, if the store exists with
    Sumatra's tables and smttask's current additions and ``.smt/project`` is in step: a
    SQLite file, or PostgreSQL when psycopg2 is installed (else None: :func:`bootstrap`
    makes them, through Django)."""
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
            cursor.execute("SELECT value FROM smttask_meta WHERE name = 'schema'")
            row = cursor.fetchone()
    except store_errors():  # not made yet, or made by an older smttask
        row = None
    if row is None or int(row[0]) < SCHEMA:
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
        if not _is_postgres():
            yield
            return
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s)", [_lock_key(project)])
            try:
                yield
            finally:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [_lock_key(project)])


# --- the Django binding -------------------------------------------------------------------

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


def configure_django() -> None:
    """Set Django up for Sumatra's store app before any store is bound (a worker pool's
    fork server does it once for all its workers; binding a store later only switches
    the database)."""
    sumatra()
    from django.conf import settings
    from sumatra.recordstore import django_store as ds

    if not settings.configured:
        _configure_django(ds.db_config.uri_to_db(":memory:"))


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


def _template() -> Path:
    """Where the empty SQLite store of these Sumatra and Django versions is kept, once
    migrated on this machine: new stores are copies (migrating costs a fifth of a second
    and Django's import half a second more; copying, a millisecond)."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return (Path(cache) / "smttask" / f"empty-store-sumatra-{_version('Sumatra')}-django-"
            f"{_version('Django')}-{SCHEMA}.sqlite")


def _open_template() -> sqlite3.Connection | None:
    """The cached empty store, read-only, if there is one and it is sound."""
    path = _template()
    try:
        db = read_only(path)
    except sqlite3.Error:
        return None
    try:
        sound = (db.execute("PRAGMA quick_check").fetchone() == ("ok",)
                 and db.execute("SELECT value FROM smttask_meta WHERE name = 'schema'")
                 .fetchone() == (SCHEMA,)
                 and db.execute("SELECT count(*) FROM django_store_record").fetchone() == (0,))
    except sqlite3.Error:
        sound = False
    if not sound:
        db.close()
        return None
    return db


def _copy_template(target: sqlite3.Connection) -> bool:
    """Fill an empty SQLite database with the cached empty store, in WAL mode; False if
    there is no sound one."""
    template = _open_template()
    if template is None:
        return False
    with contextlib.closing(template):
        template.backup(target)
    target.execute("PRAGMA journal_mode=WAL")
    return True


def _keep_template(migrated: sqlite3.Connection) -> None:
    """Keep a copy of a just-migrated empty store as the template (best effort)."""
    path = _template()
    tmp = path.with_name(f"{_fs.TEMP_PREFIX}{os.getpid()}-{path.name}")
    with contextlib.suppress(OSError, sqlite3.Error):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.closing(sqlite3.connect(tmp)) as copy:
                migrated.backup(copy)
                copy.execute("PRAGMA journal_mode=DELETE")  # one file, readable read-only
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)


def _create_tables() -> None:
    """Sumatra's tables (Django's migrations) and smttask's additions, in the bound store."""
    from django.core import management
    from django.db import connections

    conn = connections["default"]
    empty = conn.vendor == "sqlite" and not conn.introspection.table_names()
    if empty:
        conn.ensure_connection()
        if _copy_template(conn.connection):
            return
    management.call_command("migrate", run_syncdb=True, database="default", verbosity=0,
                            interactive=False)
    ensure_schema()
    if empty:
        _keep_template(conn.connection)


def _sqlite_from_template(project: Project) -> bool:
    """Make the project's SQLite store from the cached empty store, and ``.smt/project``,
    without Django; False if it cannot (no template yet, not SQLite, a store that is
    there but not ready: :func:`bootstrap` does those)."""
    url = project.record_store_url
    if "://" in url or not _template().is_file():
        return False
    with locked(project):
        Path(url).parent.mkdir(parents=True, exist_ok=True)
        with contextlib.closing(sqlite3.connect(url, timeout=30)) as db:
            if db.execute("SELECT count(*) FROM sqlite_master").fetchone() != (0,):
                return False  # made meanwhile, or an older store
            if not _copy_template(db):
                return False
        _write_project_file(project)
    return True


# --- .smt/project -------------------------------------------------------------------------

def _desired_state(project: Project) -> dict[str, Any]:
    """The keys of .smt/project that follow from smttask.toml."""
    root = str(project.root)
    return {
        "name": project.name,
        "default_repository": {"type": _SMT_TYPES["repository"], "url": root, "upstream": None},
        "default_launch_mode": {"type": _SMT_TYPES["launch_mode"], "working_directory": root,
                                "options": None},
        "data_store": {"type": _SMT_TYPES["datastore"], "root": str(project.output_dir)},
        "input_datastore": {"type": _SMT_TYPES["datastore"], "root": str(project.input_dir)},
        "record_store": {"type": _SMT_TYPES["record_store"], "db_file": project.record_store_url},
        "on_changed": project.config.repo.on_changed,
    }


def _full_state(project: Project) -> dict[str, Any]:
    return {
        **_desired_state(project),
        "default_executable": {"type": _SMT_TYPES["executable"], "path": sys.executable,
                               "version": platform.python_version(), "options": "",
                               "name": "Python"},
        "default_main_file": None,
        "description": "",
        "data_label": None,
        "_most_recent": None,
        "label_generator": "timestamp",
        "timestamp_format": TIMESTAMP_FORMAT,
        "sumatra_version": _version("Sumatra"),
        "allow_command_line_parameters": True,
        "ignore_parameters": False,
        "plugins": [],
    }


def _version(distribution: str) -> str:
    from importlib.metadata import version

    return version(distribution)


def _read_state(path: Path) -> dict[str, Any] | None:
    try:
        state = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None
    return state if isinstance(state, dict) else None


def _in_step(state: dict[str, Any] | None, project: Project) -> bool:
    if state is None:
        return False
    return all(state.get(k) == v for k, v in _desired_state(project).items())


def project_file_in_step(project: Project) -> bool:
    """True if ``.smt/project`` exists and matches smttask.toml (no database access)."""
    return _in_step(_read_state(project.smt_dir / "project"), project)


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
                _write_project_file(project)
    _bootstrapped.add(key)
    return store


def ensure_store(project: Project) -> None:
    """Make ``.smt/`` follow smttask.toml and the record store exist, ready for records;
    through Django only when there is no other way (PostgreSQL, the first store of these
    Sumatra and Django versions on this machine, an older store to migrate)."""
    with translated(f"cannot open the record store {safe_url(project.record_store_url)}"):
        if _direct_connection(project) is None:
            _sqlite_from_template(project)
            if _direct_connection(project) is None:
                bootstrap(project)


def _write_project_file(project: Project) -> None:
    """Bring ``.smt/project`` in step with smttask.toml, keeping Sumatra's other keys
    (the caller holds the lock)."""
    path = project.smt_dir / "project"
    state = _read_state(path)
    if not _in_step(state, project):
        merged = {**_full_state(project), **(state or {}), **_desired_state(project)}
        _fs.replace(path, json.dumps(merged, indent=2), mode=0o600)


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
