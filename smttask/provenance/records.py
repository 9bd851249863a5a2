"""Building and saving Sumatra records: a run starts ``_running_`` and ends
``_finished_``, ``_crashed_`` or ``_killed_``.

Records are built directly as ``sumatra.records.Record``; ``Project.new_record()`` is never
called (it scans imports for seconds, probes the network and uses the cwd's repository).
Package versions are read in-process from ``sys.modules`` and ``importlib.metadata``, once
per process. Labels are ``YYYYMMDD-HHMMSS_<digest prefix>`` (UTC), made unique under the
lock: Sumatra silently replaces a record saved under an existing label.
"""

from __future__ import annotations

import contextvars
import functools
import importlib.metadata
import os
import platform
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..config import Project
from .store import TIMESTAMP_FORMAT, bootstrap, record_manager, sumatra, translated, writing

__all__ = [
    "RecordDetails",
    "Recorder",
    "delete_records",
    "dependencies",
    "details",
    "edit_record",
    "get_record",
    "recorder",
    "script_arguments",
]

#: What a record stores as its script arguments (the runner sets the task file here).
script_arguments: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "smttask_script_arguments", default=None
)


# --- per-process facts -------------------------------------------------------------------

@functools.cache
def _distributions() -> dict[str, list[str]]:
    return dict(importlib.metadata.packages_distributions())


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


def _script_from_argv(root: Path) -> str:
    argv0 = sys.argv[0] if sys.argv else ""
    if argv0 and os.path.isfile(argv0):
        path = Path(argv0).resolve()
        name = os.path.relpath(path, root) if path.is_relative_to(root) else str(path)
        return " ".join([name, *sys.argv[1:]])
    return ""


# --- writing records ----------------------------------------------------------------------

class Recorder:
    """Writes the records of one project."""

    def __init__(self, project: Project) -> None:
        self.project = project
        bootstrap(project)
        sumatra()
        from sumatra.datastore.filesystem import FileSystemDataStore
        from sumatra.launch import SerialLaunchMode
        from sumatra.programs import PythonExecutable
        from sumatra.versioncontrol._git import GitRepository

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
        with translated(f"cannot save record {record.label}"):
            store = self.store
            with writing(self.project):
                base, n = record.label, 1
                while record_manager(store).filter(project__id=self.project.name,
                                                   label=record.label).exists():
                    n += 1
                    record.label = f"{base}_{n}"
                store.save(self.project.name, record)
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
        with translated(f"cannot save record {record.label}"):
            store = self.store
            with writing(self.project):
                store.save(self.project.name, record)


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


def details(project: Project, label: str) -> RecordDetails:
    """The packages, platform, diff and output of the record with this label."""
    record = get_record(project, label)
    return RecordDetails(
        packages=[(d.name, d.version) for d in record.dependencies],
        platforms=[f"{p.system_name} {p.release} {p.machine} on {p.network_name}"
                   for p in record.platforms],
        diff=record.diff or "",
        stdout_stderr=record.stdout_stderr or "",
    )


def edit_record(
    project: Project,
    label: str,
    *,
    add_tags: tuple[str, ...] = (),
    remove_tags: tuple[str, ...] = (),
    comment: str | None = None,
) -> tuple[set[str], str]:
    """Add or remove tags, or append a comment to the outcome; the new (tags, outcome)."""
    store = bootstrap(project)
    with translated(f"cannot edit record {label}"), writing(project):
        record = store.get(project.name, label)
        for tag in add_tags:
            record.tags.add(tag)
        for tag in remove_tags:
            record.tags.discard(tag)
        if comment:
            record.outcome = f"{record.outcome}\n{comment}" if record.outcome else comment
        store.save(project.name, record)
    return set(record.tags), record.outcome


def delete_records(project: Project, labels: list[str]) -> int:
    """Delete records (not their files); the number deleted."""
    store = bootstrap(project)
    with translated("cannot delete records"), writing(project):
        qs = record_manager(store).filter(project__id=project.name, label__in=labels)
        n = qs.count()
        for record in qs:
            record.delete()
    return n
