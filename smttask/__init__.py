"""smttask: reproducible computational research on top of the Sumatra lab book.

Decorate typed pure functions to get lazy, validated tasks whose results are cached on
disk by a digest of their inputs and whose runs are recorded in Sumatra::

    from typing import Tuple
    from smttask import RecordedTask
    from smttask.typing import Array

    @RecordedTask
    def analyze(arr: Array, dt: float, nbins: int) -> Tuple[float, float, float]:
        ...

Names are imported on first use, so that ``import smttask`` (and the CLI) start fast.
"""

import importlib as _importlib
import typing as _typing

from .errors import (
    ConfigError,
    DirtyRepositoryError,
    ExecutorError,
    GitError,
    ProjectNotFoundError,
    RecordStoreError,
    ScaffoldError,
    SmttaskError,
    TaskDefinitionError,
    TaskExecutionError,
    TaskFileError,
    TaskInputError,
    UsageError,
)

if _typing.TYPE_CHECKING:
    from . import config
    from .decorators import (
        MemoizedTask,
        RecordedIterativeTask,
        RecordedTask,
        UnpureMemoizedTask,
    )
    from .task import Task, TaskOutput
    from .view import RecordStoreView, RSView
    from .workflows import ParamColl, SeedGenerator, expand

__all__ = [
    "ConfigError",
    "DirtyRepositoryError",
    "ExecutorError",
    "GitError",
    "MemoizedTask",
    "ParamColl",
    "ProjectNotFoundError",
    "RSView",
    "RecordStoreError",
    "RecordStoreView",
    "RecordedIterativeTask",
    "RecordedTask",
    "ScaffoldError",
    "SeedGenerator",
    "SmttaskError",
    "Task",
    "TaskDefinitionError",
    "TaskExecutionError",
    "TaskFileError",
    "TaskInputError",
    "TaskOutput",
    "UnpureMemoizedTask",
    "UsageError",
    "config",
    "expand",
]

_LAZY = {
    "MemoizedTask": "smttask.decorators",
    "ParamColl": "smttask.workflows",
    "RSView": "smttask.view",
    "RecordStoreView": "smttask.view",
    "RecordedIterativeTask": "smttask.decorators",
    "RecordedTask": "smttask.decorators",
    "SeedGenerator": "smttask.workflows",
    "Task": "smttask.task",
    "TaskOutput": "smttask.task",
    "UnpureMemoizedTask": "smttask.decorators",
    "expand": "smttask.workflows",
}


def __getattr__(name: str) -> _typing.Any:
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("smttask")
        except PackageNotFoundError:  # pragma: no cover - a bare source tree
            return "0+unknown"
    if name == "config":
        return _importlib.import_module("smttask.config")
    if name in _LAZY:
        value = getattr(_importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'smttask' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
