"""Everything that touches Sumatra: the ``.smt`` project, the record store, the records.

Facts that shape this module (see docs/design-notes.md):

- Records are built directly as ``sumatra.records.Record``; ``Project.new_record()`` is
  never called (it scans imports for seconds, probes the network and uses the cwd's repo).
- Package versions are read in-process from ``sys.modules`` and ``importlib.metadata``.
- Concurrent Django writes corrupt a store for good, so every write holds an exclusive
  lock on ``.smt/records.lock`` and runs in one transaction; the store is created and
  migrated once, under that lock.
- ``.smt/project`` is written from smttask.toml, atomically, only when it is missing or
  out of step; it keeps Sumatra's own ``smt`` commands working on the project.
- Labels are ``YYYYMMDD-HHMMSS_<digest prefix>`` (UTC), made unique under the lock:
  Sumatra silently replaces a record saved under an existing label.
"""

from __future__ import annotations

import contextlib
import contextvars
import fcntl
import functools
import importlib.metadata
import json
import logging
import os
import platform
import secrets
import sys
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .config import Project
from .errors import RecordStoreError

__all__ = [
    "ROW_FIELDS",
    "Recorder",
    "bootstrap",
    "count",
    "delete_records",
    "edit_record",
    "get_record",
    "labels",
    "locked",
    "output_paths",
    "project_file_in_step",
    "record_of_output",
    "recorder",
    "rows",
    "safe_url",
    "script_arguments",
    "writing",
]

logger = logging.getLogger(__name__)

#: What a record stores as its script arguments (the runner sets the task file here).
script_arguments: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "smttask_script_arguments", default=None
)

TIMESTAMP_FORMAT = "%Y%m%d-%H%M%S"
_SMT_TYPES = {
    "executable": "sumatra.programs.PythonExecutable",
    "repository": "sumatra.versioncontrol._git.GitRepository",
    "launch_mode": "sumatra.launch.SerialLaunchMode",
    "datastore": "sumatra.datastore.filesystem.FileSystemDataStore",
    "record_store": "sumatra.recordstore.django_store.DjangoRecordStore",
}


@functools.cache
def _sumatra() -> Any:
    """Import Sumatra once, with its per-record network probe switched off."""
    import sumatra.launch

    sumatra.launch.have_internet_connection = lambda: False
    return sumatra


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
    PostgreSQL an advisory lock too (processes on other hosts share the server, not
    necessarily a file system that honours locks)."""
    from django.db import connections, transaction

    with locked(project), transaction.atomic(using="default"):
        if _is_postgres():
            with connections["default"].cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_lock_key(project)])
        yield


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


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


# --- the Django binding -------------------------------------------------------------------

def _bind_store(url: str) -> Any:
    """A Sumatra DjangoRecordStore on ``url``; one Django database per process, switchable."""
    _sumatra()
    import django
    from django.conf import settings
    from django.db import connections
    from sumatra.recordstore import django_store as ds

    db = ds.db_config.uri_to_db(url)
    if not settings.configured:
        ds.db_config._settings["DATABASES"] = {"default": db}
        ds.db_config._n_databases = 1
        settings.configure(**{**ds.db_config._settings, "DEBUG": False})
        django.setup()
        ds.db_config.configured = True  # we migrate ourselves, once, under the lock
    else:
        current = connections.settings["default"]
        if ds.db_id(current) != ds.db_id(db):
            for conn in connections.all(initialized_only=True):
                conn.close()
            with contextlib.suppress(AttributeError):
                del connections["default"]  # the next use connects to the new database
            current.update(db)
    store = ds.DjangoRecordStore.__new__(ds.DjangoRecordStore)
    store._db_label = "default"
    store._db_file = url
    return store


def _store_ready() -> bool:
    from django.db import connections

    return "django_store_record" in connections["default"].introspection.table_names()


def _migrate() -> None:
    from django.core import management

    management.call_command("migrate", run_syncdb=True, database="default", verbosity=0,
                            interactive=False)


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
    smt = _sumatra()
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
        "sumatra_version": smt.__version__,
        "allow_command_line_parameters": True,
        "ignore_parameters": False,
        "plugins": [],
    }


def _read_state(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    tmp.write_text(text)
    os.replace(tmp, path)


def _in_step(state: dict[str, Any] | None, project: Project) -> bool:
    if state is None:
        return False
    return all(state.get(k) == v for k, v in _desired_state(project).items())


def project_file_in_step(project: Project) -> bool:
    """True if ``.smt/project`` exists and matches smttask.toml (no database access)."""
    return _in_step(_read_state(project.smt_dir / "project"), project)


_bootstrapped: dict[tuple[Path, str], bool] = {}


def bootstrap(project: Project) -> Any:
    """Make ``.smt/`` match smttask.toml and the record store exist; the bound store.

    Cheap after the first call in a process. Creation and migration happen under the lock,
    so concurrent first runs on a fresh project are safe.
    """
    key = (project.root, project.record_store_url)
    try:
        store = _bind_store(project.record_store_url)
        if key in _bootstrapped:
            return store
        project_file = project.smt_dir / "project"
        if not (_in_step(_read_state(project_file), project) and _store_ready()):
            with _migration_lock(project):
                state = _read_state(project_file)
                if not _store_ready():
                    _migrate()
                if not _in_step(state, project):
                    merged = {**_full_state(project), **(state or {}), **_desired_state(project)}
                    _write_atomic(project_file, json.dumps(merged, indent=2))
    except RecordStoreError:
        raise
    except Exception as exc:  # Django and driver errors: one clear line
        raise RecordStoreError(
            f"cannot open the record store {safe_url(project.record_store_url)}: "
            f"{_one_line(exc)}"
        ) from exc
    _bootstrapped[key] = True
    return store


def safe_url(url: str) -> str:
    """The URL without its password."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return parts._replace(netloc=netloc).geturl()
    return url


# --- per-process facts -------------------------------------------------------------------

@functools.cache
def _distributions() -> dict[str, list[str]]:
    return importlib.metadata.packages_distributions()


@functools.cache
def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


_deps_cache: dict[tuple[int, str | None], list[Any]] = {}


def dependencies(project_root: Path, commit: str | None) -> list[Any]:
    """Sumatra Dependency objects for the imported top-level packages (cached per process)."""
    key = (len(sys.modules), commit)
    if key in _deps_cache:
        return _deps_cache[key]
    from sumatra.dependency_finder.python import Dependency

    deps = []
    dists = _distributions()
    root = str(project_root)
    for name in sorted({m.partition(".")[0] for m in list(sys.modules)}):
        if name in sys.stdlib_module_names or name.startswith("_") or name == "__main__":
            continue
        module = sys.modules.get(name)
        path = getattr(module, "__file__", None)
        if not path:
            continue
        dist = dists[name][0] if name in dists else name  # editable installs: name = dist
        if path.startswith(root) and commit:
            version, source = commit, "project"
        else:
            version, source = _version(dist), dist
        location = os.path.dirname(path) if path.endswith("__init__.py") else path
        deps.append(Dependency(name[:50], location[-200:], version[:40], "", source))
    _deps_cache[key] = deps
    return deps


@functools.cache
def _platforms() -> list[Any]:
    from sumatra.launch import SerialLaunchMode

    return SerialLaunchMode().get_platform_information()


# --- records -----------------------------------------------------------------------------

class Recorder:
    """Writes the records of one project."""

    def __init__(self, project: Project) -> None:
        self.project = project
        bootstrap(project)
        smt = _sumatra()
        from sumatra.datastore.filesystem import FileSystemDataStore
        from sumatra.launch import SerialLaunchMode
        from sumatra.programs import PythonExecutable
        from sumatra.versioncontrol._git import GitRepository

        self._smt = smt
        self.executable = PythonExecutable(sys.executable, version=platform.python_version())
        self.repository = GitRepository(str(project.root), upstream="")
        self.launch_mode = SerialLaunchMode(working_directory=str(project.root))
        self.datastore = FileSystemDataStore(str(project.output_dir))
        self.input_datastore = FileSystemDataStore(str(project.input_dir))

    @property
    def store(self) -> Any:
        return bootstrap(self.project)  # re-binds Django if another project was used since

    def data_keys(self, paths: list[Path], *, output: bool) -> list[Any]:
        """Sumatra DataKeys (path relative to the datastore, SHA-1, size, time)."""
        from sumatra.datastore.filesystem import DataFile

        store = self.datastore if output else self.input_datastore
        root = Path(store.root)
        return [DataFile(os.path.relpath(p, root), store).generate_key() for p in paths]

    def start(
        self,
        *,
        taskname: str,
        digest: str,
        parameters_json: str,
        main_file: str,
        commit: str,
        diff: str,
        reason: str | None,
        input_paths: list[Path],
        user: str,
    ) -> Any:
        """Save a ``_running_`` record under a fresh unique label and return it."""
        from sumatra.core import STATUS_FORMAT
        from sumatra.parameters import JSONParameterSet
        from sumatra.records import Record

        now = datetime.now(timezone.utc)
        args = script_arguments.get()
        if args is None:
            args = _script_from_argv(self.project.root)
        record = Record(
            executable=self.executable,
            repository=self.repository,
            main_file=main_file,
            version=commit,
            launch_mode=self.launch_mode,
            datastore=self.datastore,
            parameters=JSONParameterSet(parameters_json),
            input_data=self.data_keys(input_paths, output=False),
            script_arguments=args,
            label=f"{now:{TIMESTAMP_FORMAT}}_{digest[:6]}",
            reason=reason or "",
            diff=diff,
            user=user,
            on_changed=self.project.config.repo.on_changed,
            input_datastore=self.input_datastore,
            stdout_stderr="",
            timestamp=now,
        )
        record.add_tag(taskname)
        record.add_tag(STATUS_FORMAT % "running")
        try:
            store = self.store
            with writing(self.project):
                base, n = record.label, 1
                while store._manager.filter(project__id=self.project.name,
                                            label=record.label).exists():
                    n += 1
                    record.label = f"{base}_{n}"
                store.save(self.project.name, record)
        except Exception as exc:
            raise RecordStoreError(f"cannot save record {record.label}: {_one_line(exc)}") \
                from exc
        return record

    def finish(
        self,
        record: Any,
        *,
        status: str,
        duration: float,
        outcome: str,
        output_paths: list[Path],
        stdout_stderr: str,
        commit: str,
    ) -> None:
        """Save the final state: status tag, duration, outputs, dependencies, platform."""
        from sumatra.core import STATUS_FORMAT

        record.add_tag(STATUS_FORMAT % status)
        record.duration = duration
        record.outcome = outcome
        record.output_data = self.data_keys(output_paths, output=True)
        record.stdout_stderr = stdout_stderr
        record.dependencies = dependencies(self.project.root, commit)
        record.platforms = _platforms()
        try:
            store = self.store
            with writing(self.project):
                store.save(self.project.name, record)
        except Exception as exc:
            raise RecordStoreError(f"cannot save record {record.label}: {_one_line(exc)}") \
                from exc


def _script_from_argv(root: Path) -> str:
    argv0 = sys.argv[0] if sys.argv else ""
    if argv0 and os.path.isfile(argv0):
        path = Path(argv0).resolve()
        name = os.path.relpath(path, root) if path.is_relative_to(root) else str(path)
        return " ".join([name, *sys.argv[1:]])
    return ""


_recorders: dict[tuple[Path, str], Recorder] = {}


def recorder(project: Project) -> Recorder:
    """The project's Recorder (one per process and project)."""
    key = (project.root, project.record_store_url)
    rec = _recorders.get(key)
    if rec is None or rec.project != project:
        rec = _recorders[key] = Recorder(project)
    return rec


def get_record(project: Project, label: str) -> Any:
    """The Sumatra record with this label (KeyError if none)."""
    store = bootstrap(project)
    return store.get(project.name, label)


def labels(project: Project) -> list[str]:
    """Every record label of the project, oldest first."""
    store = bootstrap(project)
    return list(
        store._manager.filter(project__id=project.name).order_by("timestamp")
        .values_list("label", flat=True)
    )


def count(project: Project) -> int:
    """The number of records of the project."""
    store = bootstrap(project)
    return store._manager.filter(project__id=project.name).count()


# --- queries for browsing (rows straight from the store, no Sumatra objects) ---------------

#: The columns of a record row, as returned by :func:`rows`.
ROW_FIELDS = ("label", "timestamp", "tags", "reason", "duration", "outcome", "main_file",
              "version", "script_arguments", "user", "parameters__content")


def rows(
    project: Project,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    tags: tuple[str, ...] = (),
    labels: tuple[str, ...] = (),
    label_prefix: str | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Record rows (dicts of :data:`ROW_FIELDS`, ``tags`` a set), newest first.

    One query, no Sumatra Record objects: fast on large stores. ``tags`` must all be
    present (exact match). A SQLite store that already exists is read directly, without
    starting Django (a listing then costs a few milliseconds instead of a few hundred).
    """
    path = _sqlite_path(project)
    if path is not None:
        return _sqlite_rows(path, project.name, since=since, until=until, tags=tags,
                            labels=labels, label_prefix=label_prefix, limit=limit)
    store = bootstrap(project)
    qs = store._manager.filter(project__id=project.name)
    if since is not None:
        qs = qs.filter(timestamp__gte=since)
    if until is not None:
        qs = qs.filter(timestamp__lt=until)
    if labels:
        qs = qs.filter(label__in=labels)
    if label_prefix:
        qs = qs.filter(label__startswith=label_prefix)
    for tag in tags:
        qs = qs.filter(tags__contains=tag)  # substring: refined below
    qs = qs.order_by("-timestamp", "-label").values(*ROW_FIELDS)
    result = []
    for row in qs.iterator(chunk_size=2000):
        row["tags"] = {t for t in (row["tags"] or "").split(",") if t}
        if all(t in row["tags"] for t in tags):
            result.append(row)
            if limit is not None and len(result) >= limit:
                break
    return result


def _sqlite_path(project: Project) -> Path | None:
    """The SQLite store file, if the store is one that exists and follows smttask.toml."""
    url = project.record_store_url
    if "://" in url or not os.path.isfile(url) or not project_file_in_step(project):
        return None
    return Path(url)


def _sqlite_rows(path: Path, project_name: str, *, since: datetime | None,
                 until: datetime | None, tags: tuple[str, ...], labels: tuple[str, ...],
                 label_prefix: str | None, limit: int | None) -> list[dict[str, Any]]:
    """:func:`rows` read straight from Sumatra's Django/SQLite schema (read-only)."""
    import sqlite3

    def utc(t: datetime) -> str:  # Django stores aware datetimes as naive UTC text
        return t.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")

    where, args = ["r.project_id = ?"], [project_name]
    if since is not None:
        where.append("r.timestamp >= ?")
        args.append(utc(since))
    if until is not None:
        where.append("r.timestamp < ?")
        args.append(utc(until))
    if labels:
        where.append(f"r.label IN ({','.join('?' * len(labels))})")
        args.extend(labels)
    if label_prefix:
        where.append("substr(r.label, 1, ?) = ?")
        args.extend([len(label_prefix), label_prefix])
    for tag in tags:
        where.append("instr(r.tags, ?) > 0")
        args.append(tag)
    columns = ", ".join(f"r.{c}" if c != "parameters__content" else "p.content"
                        for c in ROW_FIELDS)
    query = (f"SELECT {columns} FROM django_store_record r JOIN django_store_parameterset p "
             f"ON p.id = r.parameters_id WHERE {' AND '.join(where)} "
             "ORDER BY r.timestamp DESC, r.label DESC")
    result = []
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True,
                                            timeout=30)) as db:
        for values in db.execute(query, args):
            row = dict(zip(ROW_FIELDS, values, strict=True))
            row["tags"] = {t for t in (row["tags"] or "").split(",") if t}
            if not all(t in row["tags"] for t in tags):
                continue
            row["timestamp"] = datetime.fromisoformat(row["timestamp"]).replace(
                tzinfo=timezone.utc)
            result.append(row)
            if limit is not None and len(result) >= limit:
                break
    return result


def output_paths(
    project: Project, labels: list[str], *, output: bool = True
) -> dict[str, list[str]]:
    """The data-key paths (relative to the datastore) of each record's outputs or inputs."""
    bootstrap(project)
    from sumatra.recordstore.django_store import models

    result: dict[str, list[str]] = {label: [] for label in labels}
    if output:
        keys = models.DataKey.objects.filter(output_from_record__project__id=project.name,
                                             output_from_record__label__in=labels)
        pairs = keys.values_list("output_from_record__label", "path")
    else:
        keys = models.Record.objects.filter(project__id=project.name, label__in=labels)
        pairs = keys.values_list("label", "input_data__path")
    for label, path in pairs:
        if path:
            result[label].append(path)
    return result


def edit_record(
    project: Project,
    label: str,
    *,
    add_tags: tuple[str, ...] = (),
    remove_tags: tuple[str, ...] = (),
    comment: str | None = None,
) -> Any:
    """Add or remove tags, or append a comment to the outcome; the updated record."""
    store = bootstrap(project)
    with writing(project):
        record = store.get(project.name, label)
        for tag in add_tags:
            record.tags.add(tag)
        for tag in remove_tags:
            record.tags.discard(tag)
        if comment:
            record.outcome = f"{record.outcome}\n{comment}" if record.outcome else comment
        store.save(project.name, record)
    return record


def delete_records(project: Project, labels: list[str]) -> int:
    """Delete records (not their files); the number deleted."""
    store = bootstrap(project)
    with writing(project):
        qs = store._manager.filter(project__id=project.name, label__in=labels)
        n = qs.count()
        for record in qs:
            record.delete()
    return n


def record_of_output(project: Project, path: Path) -> str | None:
    """The label of the record that wrote ``path`` (a file in the output datastore)."""
    bootstrap(project)
    from sumatra.recordstore.django_store import models

    rel = os.path.relpath(path, project.output_dir)
    key = models.DataKey.objects.filter(path=rel, output_from_record__project__id=project.name)
    labels = key.values_list("output_from_record__label", flat=True)
    return labels.first()
