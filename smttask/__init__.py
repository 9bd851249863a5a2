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
    ParamCollError,
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
        Create,
        MemoizedTask,
        RecordedIterativeTask,
        RecordedTask,
        UnpureMemoizedTask,
    )
    from .task import NotComputed, Task, TaskOutput, WithOutcome
    from .view import RecordStoreView, RSView
    from .workflows import ParamColl, SeedGenerator, expand

__all__ = [
    "ConfigError",
    "Create",
    "DirtyRepositoryError",
    "ExecutorError",
    "GitError",
    "MemoizedTask",
    "NotComputed",
    "ParamColl",
    "ParamCollError",
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
    "WithOutcome",
    "config",
    "expand",
]

_LAZY = {
    "Create": "smttask.decorators",
    "MemoizedTask": "smttask.decorators",
    "NotComputed": "smttask.task",
    "ParamColl": "smttask.workflows",
    "RSView": "smttask.view",
    "RecordStoreView": "smttask.view",
    "RecordedIterativeTask": "smttask.decorators",
    "RecordedTask": "smttask.decorators",
    "SeedGenerator": "smttask.workflows",
    "Task": "smttask.task",
    "TaskOutput": "smttask.task",
    "UnpureMemoizedTask": "smttask.decorators",
    "WithOutcome": "smttask.task",
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
