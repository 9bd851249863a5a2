"""smttask: reproducible computational research on top of the Sumatra lab book.

Decorate typed pure functions to get lazy, validated tasks whose results are cached on
disk by a digest of their inputs and whose runs are recorded in Sumatra::

    from typing import Tuple
    from smttask import RecordedTask
    from smttask.typing import Array

    @RecordedTask
    def analyze(arr: Array, dt: float, nbins: int) -> Tuple[float, float, float]:
        ...
"""

import importlib.metadata as _metadata

from . import config
from .decorators import MemoizedTask, RecordedTask, UnpureMemoizedTask
from .errors import (
    ConfigError,
    DirtyRepositoryError,
    ProjectNotFoundError,
    RecordStoreError,
    ScaffoldError,
    SmttaskError,
    TaskDefinitionError,
    TaskExecutionError,
    TaskFileError,
    TaskInputError,
)
from .task import Task, TaskOutput

try:
    __version__ = _metadata.version("smttask")
except _metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

__all__ = [
    "ConfigError",
    "DirtyRepositoryError",
    "MemoizedTask",
    "ProjectNotFoundError",
    "RecordStoreError",
    "RecordedTask",
    "ScaffoldError",
    "SmttaskError",
    "Task",
    "TaskDefinitionError",
    "TaskExecutionError",
    "TaskFileError",
    "TaskInputError",
    "TaskOutput",
    "UnpureMemoizedTask",
    "config",
]
