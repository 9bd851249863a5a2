"""``.smt/project``, Sumatra's project file, kept in step with smttask.toml: written
atomically, only when it is missing or out of step; it keeps Sumatra's own ``smt``
commands working on the project.
"""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path
from typing import Any

from .. import _fs
from ..config import Project

__all__ = [
    "TIMESTAMP_FORMAT",
    "project_file_in_step",
    "version_of",
    "write_project_file",
]


TIMESTAMP_FORMAT = "%Y%m%d-%H%M%S"


_SMT_TYPES = {
    "executable": "sumatra.programs.PythonExecutable",
    "repository": "sumatra.versioncontrol._git.GitRepository",
    "launch_mode": "sumatra.launch.SerialLaunchMode",
    "datastore": "sumatra.datastore.filesystem.FileSystemDataStore",
    "record_store": "sumatra.recordstore.django_store.DjangoRecordStore",
}


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
        "sumatra_version": version_of("Sumatra"),
        "allow_command_line_parameters": True,
        "ignore_parameters": False,
        "plugins": [],
    }


def version_of(distribution: str) -> str:
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


def write_project_file(project: Project) -> None:
    """Bring ``.smt/project`` in step with smttask.toml, keeping Sumatra's other keys
    (the caller holds the lock)."""
    path = project.smt_dir / "project"
    state = _read_state(path)
    if not _in_step(state, project):
        merged = {**_full_state(project), **(state or {}), **_desired_state(project)}
        _fs.replace(path, json.dumps(merged, indent=2), mode=0o600)
