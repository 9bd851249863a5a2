"""Building and saving Sumatra records: a run starts ``_running_`` and ends
``_finished_``, ``_crashed_`` or ``_killed_``.

Records are written straight into Sumatra's tables (see .writer), as the rows Sumatra's own
objects would be stored as; Sumatra's ``Project.new_record()`` is never called (it scans
imports for seconds, probes the network and uses the cwd's repository). Package versions
and the platform come from .environment.
Labels are ``YYYYMMDD-HHMMSS_<digest prefix>`` (UTC), made unique under the lock: Sumatra
silently replaces a record saved under an existing label.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import os
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..config import Project
from ..outputs import Datastore, Written
from .binding import bootstrap, record_manager, writing
from .connection import reading_sql, writing_sql
from .environment import Fields, dependencies, platform_fields, provider
from .projectfile import TIMESTAMP_FORMAT
from .store import translated
from .writer import DataKeyRow, Sql, SqlWriter, StoredRecord

__all__ = [
    "RECORD_FORMAT",
    "RecordDetails",
    "Recorder",
    "Run",
    "RunStart",
    "delete_records",
    "details",
    "edit_record",
    "get_record",
    "is_record_form",
    "recorder",
    "script_arguments",
    "status_tag",
]

#: The format tag of a record's parameters (under ``_smttask``; see smttask.taskfile).
RECORD_FORMAT = "smttask-record/1"


def is_record_form(params: Any) -> bool:
    """True for the parameters of a record made by smttask-record/1 or later."""
    return isinstance(params, dict) and isinstance(params.get("_smttask"), dict) \
        and params["_smttask"].get("format") == RECORD_FORMAT


#: What a record stores as its script arguments (the runner sets the task file here).
script_arguments: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "smttask_script_arguments", default=None
)


def _smttask_command() -> str:
    """The path of the ``smttask`` command of this environment."""
    beside = Path(sys.executable).with_name("smttask")
    return str(beside) if beside.exists() else (shutil.which("smttask") or "smttask")


def status_tag(status: str) -> str:
    """The tag of a record's status (``running`` → ``_running_``), as Sumatra's
    ``core.STATUS_FORMAT`` makes it."""
    return f"_{status}_"


# --- writing records ----------------------------------------------------------------------

@dataclass
class RunStart:
    """What a record says when its run starts."""

    taskname: str
    digest: str
    parameters: dict[str, Any]  # the task in its record form (see smttask.taskfile)
    main_file: str  # the task's module, repo-relative
    commit: str
    diff: str
    reason: str | None
    inputs: list[Path]  # result files and stored inputs it reads
    user: str
    outcome: str = ""  # while running: where (host, pid)
    script: str | None = None  # the launch arguments (default: from sys.argv)
    tags: tuple[str, ...] = ()  # besides the task name and the status


@dataclass
class Run:
    """A record being written: its label, and what the store knows of it."""

    label: str
    stored: StoredRecord
    timestamp: datetime
    commit: str


class Recorder:
    """Writes the records of one project (a few SQL statements per save, see .writer)."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self.store = Datastore.of(project)
        self.writer = SqlWriter(project.name)
        root = str(project.root)
        # The rows Sumatra's Executable, GitRepository, SerialLaunchMode and
        # FileSystemDataStore objects would be stored as. The command a record shows,
        # `<smttask> run <module> <task file or label>`, runs the task again (Python's own
        # version is among the record's dependencies). Both of Sumatra's datastores are the
        # input datastore: a result file then has one data key whether a record lists it
        # as an output or as an input.
        datastore: Fields = {"type": "FileSystemDataStore",
                     "parameters": str({"root": str(project.input_dir)})}
        self.shared_rows: dict[str, tuple[str, Fields]] = {
            "executable_id": ("executable", {
                "path": _smttask_command(), "name": "smttask",
                "version": provider("smttask")[1], "options": "run"}),
            "repository_id": ("repository", {"type": "GitRepository", "url": root,
                                             "upstream": None}),
            "launch_mode_id": ("launchmode", {
                "type": "SerialLaunchMode",
                "parameters": str({"working_directory": root, "options": None})}),
            "datastore_id": ("datastore", datastore),
            "input_datastore_id": ("datastore", datastore)}
        self._key_cache: dict[tuple[str, int, int], DataKeyRow] = {}

    @contextlib.contextmanager
    def _forgetting(self) -> Iterator[None]:
        """On a failed write, forget the shared rows: the transaction that made them may
        have been rolled back."""
        try:
            yield
        except BaseException:
            self.writer.forget()
            raise

    def _shared(self, sql: Sql) -> dict[str, int]:
        """The executable, repository, launch mode and datastore rows (once per process)."""
        return {column: self.writer.shared_id(sql, table, fields)
                for column, (table, fields) in self.shared_rows.items()}

    def _key(self, path: Path) -> DataKeyRow:
        """The data key of an input file (checksums from its sidecar when it has one)."""
        st = os.stat(path)
        cache_key = (os.fspath(path), st.st_size, st.st_ctime_ns)
        if cache_key not in self._key_cache:
            self._key_cache[cache_key] = self._row(Written.of(path))
        return self._key_cache[cache_key]

    def _row(self, file: Written) -> DataKeyRow:
        return DataKeyRow(self.store.data_key(file.path), file.sha1, file.created, file.size,
                          file.xxh3)

    def start(self, run: RunStart) -> Run:
        """Save a ``_running_`` record under a fresh unique label."""
        now = datetime.now(UTC)
        script = run.script if run.script is not None else script_arguments.get()
        # The text Sumatra's JSONParameterSet makes (str()), so that Sumatra's own save
        # finds this row again.
        content = json.dumps(run.parameters, allow_nan=True, sort_keys=True, indent=4)
        tags = {run.taskname, status_tag("running"), *run.tags}
        keys = [self._key(p) for p in run.inputs]
        with translated(f"cannot save the record of {run.taskname}"), self._forgetting():
            with writing_sql(self.project) as sql:
                fields = {"label": f"{now:{TIMESTAMP_FORMAT}}_{run.digest[:6]}",
                          "reason": run.reason or "", "duration": None,
                          "main_file": run.main_file, "version": run.commit,
                          "outcome": run.outcome, "timestamp": now, "diff": run.diff,
                          "user": run.user, "script_arguments": script, "stdout_stderr": "",
                          "repeats": None, **self._shared(sql)}
                stored = self.writer.insert(sql, fields, tags, content, keys)
        return Run(stored.label, stored, now, run.commit)

    def finish(self, run: Run, *, status: str, duration: float, outcome: str,
               outputs: list[Written], stdout_stderr: str, diff: str | None = None) -> None:
        """Save the final state: status, duration, outcome, outputs, packages, platform."""
        tags = {t for t in run.stored.tags if not (t.startswith("_") and t.endswith("_"))}
        tags.add(status_tag(status))
        keys = [self._row(w) for w in outputs]
        root, w = self.project.root, self.writer
        with translated(f"cannot save record {run.label}"), self._forgetting():
            with writing_sql(self.project) as sql:  # shared rows too: under the lock
                deps = [w.shared_id(sql, "dependency", d)
                        for d in dependencies(root, run.commit)]
                plats = [w.shared_id(sql, "platforminformation", platform_fields())]
                fields = {"duration": duration, "outcome": outcome,
                          "stdout_stderr": stdout_stderr}
                if diff is not None:
                    fields["diff"] = diff
                w.update(sql, run.stored, fields, tags, keys, deps, plats)


_recorders: dict[tuple[Path, str], Recorder] = {}


def recorder(project: Project) -> Recorder:
    """The project's Recorder (one per process and project)."""
    key = (project.root, project.record_store_url)
    rec = _recorders.get(key)
    if rec is None or rec.project != project:
        rec = _recorders[key] = Recorder(project)
    return rec


# --- reading and editing one record --------------------------------------------------------

@dataclass
class RecordDetails:
    """What a record holds beyond its row: packages, platform, diff, captured output."""

    packages: list[tuple[str, str]] = field(default_factory=list)  # (name, version)
    platforms: list[str] = field(default_factory=list)
    diff: str = ""
    stdout_stderr: str = ""


def get_record(project: Project, label: str) -> Any:
    """The Sumatra ``Record`` with this label (KeyError if none)."""
    store = bootstrap(project)
    with translated(f"cannot read record {label}"):
        return store.get(project.name, label)


def _record_row(sql: Sql, project: Project, label: str, columns: str) -> Any:
    """These columns of the record with this label (KeyError if there is none)."""
    row = sql.one(f"SELECT {columns} FROM django_store_record WHERE project_id = %s AND "
                  "label = %s", [project.name, label])
    if row is None:
        raise KeyError(label)
    return row


def details(project: Project, label: str) -> RecordDetails:
    """The packages, platform, diff and output of the record with this label (KeyError if
    there is none)."""
    with translated(f"cannot read record {label}"), reading_sql(project) as sql:
        db_id, diff, output = _record_row(sql, project, label, "db_id, diff, stdout_stderr")
        packages = sql.all(
            "SELECT d.name, d.version FROM django_store_record_dependencies l JOIN "
            "django_store_dependency d ON d.id = l.dependency_id WHERE l.record_id = %s "
            "ORDER BY d.name, d.id", [db_id])  # Sumatra's order
        platforms = sql.all(
            "SELECT p.system_name, p.release, p.machine, p.network_name FROM "
            "django_store_record_platforms l JOIN django_store_platforminformation p "
            "ON p.id = l.platforminformation_id WHERE l.record_id = %s ORDER BY p.id",
            [db_id])
    return RecordDetails(
        packages=[(name, version) for name, version in packages],
        platforms=[f"{system} {release} {machine} on {host}"
                   for system, release, machine, host in platforms],
        diff=diff or "",
        stdout_stderr=output or "",
    )


def edit_record(
    project: Project,
    label: str,
    *,
    add_tags: tuple[str, ...] = (),
    remove_tags: tuple[str, ...] = (),
    comment: str | None = None,
) -> tuple[set[str], str]:
    """Add or remove tags, or append a comment to the outcome, in one short transaction;
    the new (tags, outcome). KeyError if there is no record ``label``."""
    writer = SqlWriter(project.name)
    with translated(f"cannot edit record {label}"), writing_sql(project) as sql:
        db_id, column, outcome = _record_row(sql, project, label, "db_id, tags, outcome")
        tags = ({t for t in (column or "").split(",") if t} | set(add_tags)) - set(remove_tags)
        if comment:
            outcome = f"{outcome}\n{comment}" if outcome else comment
        writer.update(sql, writer.stored(sql, db_id, label), {"outcome": outcome or ""}, tags,
                      outputs=(), dependencies=[], platforms=[])
    return tags, outcome or ""


def delete_records(project: Project, labels: list[str]) -> int:
    """Delete records (not their files); the number deleted."""
    store = bootstrap(project)
    with translated("cannot delete records"), writing(project):
        qs = record_manager(store).filter(project__id=project.name, label__in=labels)
        n = qs.count()
        for record in qs:
            record.delete()
    return n
