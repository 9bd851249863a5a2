"""The errors smttask raises on purpose.

Every expected failure is a :class:`SmttaskError`; the CLI prints it as one line,
``Error: <message>``, and exits with the error's ``exit_code``. The tree::

    SmttaskError                     exit 1
    ├── UsageError                   exit 2  arguments that cannot work (also a ValueError)
    ├── ConfigError                  exit 3  smttask.toml missing or malformed
    │   └── ProjectNotFoundError     exit 3  no smttask.toml here or in any parent folder
    ├── GitError                     exit 4  git is missing, fails, or there is no repository
    │   └── DirtyRepositoryError     exit 4  uncommitted changes outside the dirty directories
    ├── TaskDefinitionError          exit 5  a function or class cannot become a task (TypeError)
    ├── TaskInputError               exit 5  invalid or unknown task inputs (also a ValueError)
    ├── TaskFileError                exit 5  a task file that cannot be read, validated, imported
    ├── ParamCollError               exit 2  a ParamColl that cannot be built (TypeError)
    ├── TaskExecutionError           exit 1  the task's own code raised; chained to the cause
    ├── RecordStoreError             exit 6  the Sumatra record store cannot be used
    ├── ExecutorError                exit 7  an executor cannot run the batch (SLURM, submitit)
    └── ScaffoldError                exit 1  a project cannot be created as asked
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DirtyRepositoryError",
    "ExecutorError",
    "GitError",
    "ParamCollError",
    "ProjectNotFoundError",
    "RecordStoreError",
    "ScaffoldError",
    "SmttaskError",
    "TaskDefinitionError",
    "TaskExecutionError",
    "TaskFileError",
    "TaskInputError",
    "UsageError",
]


class SmttaskError(Exception):
    """Base of every error smttask raises on purpose."""

    exit_code: int = 1


class UsageError(SmttaskError, ValueError):
    """A function or command was given arguments that cannot work (a bad date, a label
    matching no record, options that exclude each other)."""

    exit_code = 2


class ConfigError(SmttaskError):
    """smttask.toml is missing or malformed."""

    exit_code = 3


class ProjectNotFoundError(ConfigError):
    """No smttask.toml in the working directory or any parent."""


class GitError(SmttaskError):
    """git is not installed, failed, or the project is not in a repository."""

    exit_code = 4


class DirtyRepositoryError(GitError):
    """The git tree has uncommitted changes outside the dirty directories."""

    def __init__(self, message: str, paths: list[str] | None = None) -> None:
        super().__init__(message)
        self.paths = list(paths or [])


class TaskDefinitionError(SmttaskError, TypeError):
    """A function or class cannot be turned into a task."""

    exit_code = 5


class TaskInputError(SmttaskError, ValueError):
    """Task inputs are invalid or unknown; ``field`` and ``problem`` say which and why."""

    exit_code = 5

    def __init__(self, message: str, field: str = "", problem: str = "") -> None:
        super().__init__(message)
        self.field = field
        self.problem = problem


class TaskFileError(SmttaskError, ValueError):
    """A task file cannot be read, validated or imported."""

    exit_code = 5


class ParamCollError(SmttaskError, TypeError):
    """A parameter collection cannot be built as declared or as called: a field that
    shadows a method, draws from a distribution without a ``paramseed``."""

    exit_code = 2


class TaskExecutionError(SmttaskError, RuntimeError):
    """The task's own code raised; ``__cause__`` is the original exception."""


class RecordStoreError(SmttaskError):
    """The Sumatra record store cannot be created, opened or written."""

    exit_code = 6


class ExecutorError(SmttaskError):
    """An executor cannot run the batch: unknown, missing its package, or its cluster
    refused the jobs."""

    exit_code = 7


class ScaffoldError(SmttaskError):
    """A project cannot be created as asked: it exists, or files would be overwritten."""
