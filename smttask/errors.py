"""The errors smttask raises on purpose.

Every expected failure is a :class:`SmttaskError`; the CLI prints it as one line,
``Error: <message>``, and exits with a non-zero code. The tree::

    SmttaskError
    ├── ConfigError              smttask.toml missing or malformed
    │   └── ProjectNotFoundError no smttask.toml here or in any parent folder
    ├── TaskDefinitionError      a function or class cannot become a task (also a TypeError)
    ├── TaskInputError           invalid or unknown task inputs (also a ValueError)
    ├── TaskFileError            a task file that cannot be read, validated or imported
    ├── TaskExecutionError       the task's own code raised; chained to the original exception
    ├── DirtyRepositoryError     uncommitted changes outside the dirty directories
    ├── RecordStoreError         the Sumatra record store cannot be used
    └── ScaffoldError            a project cannot be created as asked (exists, conflicts)
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DirtyRepositoryError",
    "ProjectNotFoundError",
    "RecordStoreError",
    "ScaffoldError",
    "SmttaskError",
    "TaskDefinitionError",
    "TaskExecutionError",
    "TaskFileError",
    "TaskInputError",
]


class SmttaskError(Exception):
    """Base of every error smttask raises on purpose."""

    exit_code: int = 1


class ConfigError(SmttaskError):
    """smttask.toml is missing or malformed."""


class ProjectNotFoundError(ConfigError):
    """No smttask.toml in the working directory or any parent."""


class TaskDefinitionError(SmttaskError, TypeError):
    """A function or class cannot be turned into a task."""


class TaskInputError(SmttaskError, ValueError):
    """Task inputs are invalid or unknown; ``field`` and ``problem`` say which and why."""

    def __init__(self, message: str, field: str = "", problem: str = "") -> None:
        super().__init__(message)
        self.field = field
        self.problem = problem


class TaskFileError(SmttaskError, ValueError):
    """A task file cannot be read, validated or imported."""


class TaskExecutionError(SmttaskError, RuntimeError):
    """The task's own code raised; ``__cause__`` is the original exception."""


class DirtyRepositoryError(SmttaskError):
    """The git tree has uncommitted changes outside the dirty directories."""

    def __init__(self, message: str, paths: list[str] | None = None) -> None:
        super().__init__(message)
        self.paths = list(paths or [])


class RecordStoreError(SmttaskError):
    """The Sumatra record store cannot be created, opened or written."""


class ScaffoldError(SmttaskError):
    """A project cannot be created as asked: it exists, or files would be overwritten."""
