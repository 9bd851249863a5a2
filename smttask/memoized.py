"""Memoized tasks: results kept in memory only, never written or recorded."""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from . import config
from . import digest as _digest
from .errors import TaskDefinitionError, UsageError
from .task import Task, single_use

__all__ = ["Memoized", "UnpureMemoized"]

logger = logging.getLogger(__name__)


class Memoized(Task):
    """Results kept in memory only; never written, never recorded."""

    cache: ClassVar[bool] = True


class UnpureMemoized(Memoized):
    """A memoized task whose digest is computed from its output (outside state)."""

    def _compute_digest(self) -> str | None:
        return None  # known once the task has run

    def _identity(self) -> str | None:
        return None  # never shared: a new object is a fresh look at the outside state

    __reduce__ = object.__reduce__  # pickled with its result and digest

    @property
    def digest(self) -> str:
        if self._digest is None:
            self.run()
        return self._digest  # type: ignore[return-value]

    def run(self, recompute: bool = False, cache: bool | None = None,
            record: bool | None = None) -> Any:
        if cache is False:
            raise UsageError(f"{self.taskname} is an UnpureMemoizedTask: it is always cached; "
                             "call run() without cache=False")
        self.result_source = "memory"
        if recompute or self._digest is None:
            self.result_source = "run"
            result = self._obtain(recompute, config.record if record is None else record)
            if single_use(result):
                raise TaskDefinitionError(
                    f"{self.taskname} returned a single-use {type(result).__name__}: an "
                    "UnpureMemoizedTask's digest is computed from its result, which an "
                    "iterator cannot give; return a list, or use a MemoizedTask")
            new = _digest.compute(self.taskname, {"output": result}, self.version)
            if self._digest is not None and new != self._digest:
                logger.warning("%s: digest changed from %s to %s", self.taskname,
                               self._digest, new)
            self._result, self._digest = result, new
        return self._result

    def clear(self) -> None:
        self._digest = None
