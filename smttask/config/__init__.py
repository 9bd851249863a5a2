"""smttask.toml: the project's one human-edited configuration file.

A project is a folder holding ``smttask.toml``; :func:`find_project` walks up from the
working directory (or the folder of the task files, :func:`project_of`) to find it, and
:meth:`Project.add_to_path` makes its own packages importable. The package also holds the
process-wide runtime switches :data:`record` (``smttask.config.record = False`` in a
notebook turns recording off) and :data:`on_code_change`.

Modules: :mod:`.model` (the keys and their rules, shared with the wizard), :mod:`.project`
(loading and finding projects), :mod:`.edit` (writing smttask.toml).
"""

from __future__ import annotations

from .edit import add_dirty_directories, remove_dirty_directories, render_config
from .model import (
    CONFIG_FILE,
    ProjectConfig,
    SlurmSection,
    check_name,
    check_output,
    check_store_url,
    hours,
    is_module_name,
    minutes,
    normalise_relpath,
)
from .project import Project, activate, find_project, forget_projects, load_project, project_of

__all__ = [
    "CONFIG_FILE",
    "Project",
    "ProjectConfig",
    "SlurmSection",
    "activate",
    "add_dirty_directories",
    "check_name",
    "check_output",
    "check_store_url",
    "find_project",
    "forget_projects",
    "hours",
    "is_module_name",
    "load_project",
    "minutes",
    "normalise_relpath",
    "on_code_change",
    "project_of",
    "record",
    "remove_dirty_directories",
    "render_config",
]

#: Record runs and write results (set to False in notebooks or scripts run as __main__).
record: bool = True

#: Overrides smttask.toml's ``[cache] on_code_change`` in this process when set
#: ("warn", "recompute" or "ignore"; ``smttask run --recompute-stale`` sets "recompute").
on_code_change: str | None = None
