"""The Task: validated inputs, a digest, and a lazy, cached run.

A task class is made by a decorator (see :mod:`smttask.decorators`) from a typed
function. Creating an instance validates the inputs and computes the digest; nothing
runs until :meth:`Task.run`. The kinds of tasks:

- ``Memoized`` and ``UnpureMemoized`` (:mod:`smttask.memoized`): results kept in memory
  only, never written or recorded (an unpure task's digest is computed from its output);
- ``Recorded`` and ``RecordedIterative`` (:mod:`smttask.recorded`): results on disk, runs
  recorded in Sumatra.

There is one object per task: building a task whose class and digest match a live task
returns that task (held weakly, so it is freed when nothing else uses it).
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from . import config
from . import digest as _digest
from .errors import (
    TaskExecutionError,
    TaskFileError,
    TaskInputError,
)
from .outputs import OutputSpec, item_names

__all__ = ["NotComputed", "Outputs", "Task", "TaskMeta", "TaskOutput", "WithOutcome",
           "single_use"]

logger = logging.getLogger(__name__)


class TaskOutput(BaseModel):
    """Subclass with one annotated field per output; each output is saved to its own file."""

    model_config = ConfigDict(arbitrary_types_allowed=True, protected_namespaces=())


@dataclass(frozen=True)
class WithOutcome:
    """A task's result with a note for its record: ``return WithOutcome(value, "text")``.

    The text goes into the record's outcome (first, before smttask's own notes); it is not
    an output. (A task with several outputs may also return a dict with an ``"outcome"``
    key.)
    """

    result: Any
    outcome: str


class Outputs(dict[str, Any]):
    """A run's outputs by name, with the outcome text the task gave (``""`` if none)."""

    outcome: str = ""


class _NotComputedType:
    """The type of :data:`NotComputed` (one instance, kept by pickling)."""

    _instance: ClassVar[_NotComputedType | None] = None

    def __new__(cls) -> _NotComputedType:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NotComputed"

    def __bool__(self) -> bool:
        return False

    def __reduce__(self) -> str:
        return "NotComputed"


#: "No value yet": a placeholder for a result not computed. Falsy, and not a task input.
NotComputed = _NotComputedType()


def _summary(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"<array {value.dtype} {value.shape}>"
    if isinstance(value, Task):
        return f"{value.taskname}({(value._digest or '?')[:8]})"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _first_error(exc: ValidationError) -> tuple[str, str]:
    """(field, message) of the most telling error, skipping the upstream-task branch."""
    errors = [e for e in exc.errors() if e["type"] != "is_instance_of"] or exc.errors()
    err = errors[0]
    loc = [str(p) for p in err["loc"]]
    # Drop the union-branch label pydantic puts after the field name.
    if len(loc) > 1 and not loc[1].isdigit():
        loc = [loc[0], *loc[2:]]
    msg = err["msg"]
    if err["type"] == "missing":
        msg = "missing required input"
    elif err["type"] == "extra_forbidden":
        msg = "unknown input"
    return _dotted(loc), msg


def _dotted(loc: list[str]) -> str:
    """``a.b.0``; a key that is no name is quoted (``extra['x\\n']``): one line, always."""
    parts = [p if p.isidentifier() or p.isdigit() else f"[{p[:40]!r}]" for p in loc]
    return "".join(p if p.startswith("[") or i == 0 else f".{p}" for i, p in enumerate(parts))


_REGISTRY_LOCK = threading.Lock()


class _Registry:
    """The live tasks of one class by key, held weakly (dead entries purged now and then)."""

    __slots__ = ("purge_at", "refs")

    def __init__(self) -> None:
        self.refs: dict[str, weakref.ref[Any]] = {}
        self.purge_at = 1024

    def purge(self) -> None:
        self.refs = {k: r for k, r in self.refs.items() if r() is not None}
        self.purge_at = max(1024, 2 * len(self.refs))


class TaskMeta(type):
    """Makes building a task return the live task of the same class and digest."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        task = type.__call__(cls, *args, **kwargs)
        key = task._identity()
        if key is None:
            return task
        with _REGISTRY_LOCK:
            registry = cls.__dict__.get("_live")
            if registry is None:
                registry = _Registry()
                type.__setattr__(cls, "_live", registry)
            ref = registry.refs.get(key)
            same = ref() if ref is not None else None
            if same is None:
                registry.refs[key] = weakref.ref(task)
                if len(registry.refs) >= registry.purge_at:
                    registry.purge()
                return task
        if task.reason is not None and task.reason != same.reason:
            if same.reason is not None:
                logger.warning("%s: reason %r replaced by %r", task.taskname, same.reason,
                               task.reason)
            same.reason = task.reason
        return same


def _rebuild(cls: type[Task], inputs: dict[str, Any], reason: str | None) -> Task:
    return cls(reason=reason, **inputs)


class Task(metaclass=TaskMeta):
    """Base of every task class; instances are lazy, validated, digest-identified tasks."""

    #: Marks tasks for the digest: an upstream task is encoded by its name and digest.
    __smttask_task__: ClassVar[bool] = True
    # Set by the decorators for each task class.
    taskname: ClassVar[str]
    Inputs: ClassVar[type[BaseModel]]
    output_specs: ClassVar[tuple[OutputSpec, ...]]
    Result: ClassVar[type | None] = None
    version: ClassVar[str | None] = None
    cache: ClassVar[bool] = False
    _func: ClassVar[Callable[..., Any]]
    _bound: ClassVar[bool] = False  # callable class: pass the task as `self`
    _memo: ClassVar[dict[str, Any]]
    _input_types: ClassVar[dict[str, Any]]

    def __init__(self, /, *args: Any, reason: str | None = None, **inputs: Any) -> None:
        cls = type(self)
        if args:
            names = list(cls.Inputs.model_fields)
            if len(args) > len(names):
                raise TaskInputError(f"{cls.taskname}: takes {len(names)} inputs, "
                                     f"{len(args)} given")
            for name, value in zip(names, args, strict=False):
                if name in inputs:
                    raise TaskInputError(f"{cls.taskname}: {name}: given twice", name)
                inputs[name] = value
        try:
            self.inputs = cls.Inputs(**inputs)
        except ValidationError as exc:
            field, msg = _first_error(exc)
            raise TaskInputError(f"{cls.taskname}: {field}: {msg}", field, msg) from None
        for name, value in self.inputs.__dict__.items():
            if isinstance(value, dict) and "smttask" in value:  # a nested task, to a loader
                msg = ("a dict input may not have the key 'smttask' (task files and records "
                       "read such a dict as a nested task); rename the key")
                raise TaskInputError(f"{cls.taskname}: {name}: {msg}", name, msg)
        self.reason = reason
        #: Label of the record made by the last run() of this object (None if loaded).
        self.record_label: str | None = None
        #: Where the last run() got its result: "memory", "disk" or "run".
        self.result_source: str | None = None
        self._digest: str | None = None
        self._digest = self._compute_digest()

    def _compute_digest(self) -> str | None:
        try:
            return _digest.compute(self.taskname, self.inputs.__dict__, self.version)
        except TypeError as exc:
            raise TaskInputError(f"{self.taskname}: {exc}") from None

    def _identity(self) -> str | None:
        """The key under which this object is the one live task of its class (None:
        never shared)."""
        return self._digest

    def __reduce__(self) -> Any:
        # Unpickling builds the task again, so that it is the live task of its digest.
        return _rebuild, (type(self), dict(self.inputs.__dict__), self.reason)

    # --- identity ------------------------------------------------------------------------

    @property
    def digest(self) -> str:
        """The digest of the task name, version and validated inputs."""
        return self._digest  # type: ignore[return-value]

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={_summary(v)}" for k, v in self.inputs.__dict__.items())
        return f"{self.taskname}({args})"

    def graph(self, values: bool = False) -> Any:
        """This task and everything upstream of it, as a :class:`smttask.graph.TaskGraph`
        (a tree in the terminal, SVG in Jupyter, ``.dot()`` for Graphviz). ``values``
        shows plain inputs as nodes of their own."""
        from .graph import build

        return build([self], values=values)

    def _repr_html_(self) -> str:
        from .display import task_html

        return task_html(self)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Task) and type(other) is type(self) and other.digest == self.digest

    def __hash__(self) -> int:
        return hash((type(self), self.digest))

    @property
    def separate_names(self) -> dict[str, tuple[str, ...]]:
        """The item names of each separate output (its file names), from the inputs."""
        names = self.__dict__.get("_separate_names")
        if names is None:
            try:
                names = item_names(self.output_specs, self.inputs.__dict__)
            except TaskInputError as exc:
                raise TaskInputError(f"{self.taskname}: {exc}", exc.field) from None
            self.__dict__["_separate_names"] = names
        return names

    # --- description and task files --------------------------------------------------------

    @property
    def desc(self) -> dict[str, Any]:
        """The JSON-ready task description (what a task file holds)."""
        from .taskfile import describe

        return describe(self)

    def save(self, path: str | Path = "tasks", *, overwrite: bool = False) -> Path:
        """Write the task file into a folder (or to a ``.json`` path); its path."""
        from .taskfile import save

        return save(self, path, overwrite=overwrite)

    @classmethod
    def from_desc(cls, source: Any, *, allow: tuple[str, ...] = ()) -> Task:
        """Rebuild a task from a task file path, its JSON text or its dict."""
        from .taskfile import load

        task = load(source, allow=allow)
        if not isinstance(task, cls):
            raise TaskFileError(f"the description is a {task.taskname} task, not a {cls.__name__}")
        return task

    # --- running ---------------------------------------------------------------------------

    def run(self, recompute: bool = False, cache: bool | None = None,
            record: bool | None = None) -> Any:
        """The task's result: from memory, from disk, or by running it.

        ``recompute`` runs it even when a result exists; ``cache`` keeps the result in
        memory (default: the task's ``cache`` setting); ``record`` overrides
        ``smttask.config.record``.
        """
        cls = type(self)
        key = self.digest
        if not recompute and key in cls._memo:
            logger.debug("%s: result from memory", self.taskname)
            self.result_source = "memory"
            return cls._memo[key]
        self.result_source = "run"
        result = self._obtain(recompute, config.record if record is None else record)
        if (cls.cache if cache is None else cache) and not single_use(result):
            cls._memo[key] = result
        return result

    def clear(self) -> None:
        """Forget the in-memory result."""
        type(self)._memo.pop(self.digest, None)

    def _obtain(self, recompute: bool, record: bool) -> Any:
        return self._pack(self._execute(self._load_inputs(record), validate=False))

    def _load_inputs(self, record: bool) -> dict[str, Any]:
        kwargs = {}
        for name, value in self.inputs.__dict__.items():
            if isinstance(value, Task):
                value = value.run(record=record)
            elif isinstance(value, np.random.Generator):
                value = _copy_rng(value)  # a rerun starts from the same state
            kwargs[name] = value
        return kwargs

    def _call(self, kwargs: dict[str, Any]) -> Any:
        func = type(self)._func
        return func(self, **kwargs) if self._bound else func(**kwargs)

    def _execute(self, kwargs: dict[str, Any], *, validate: bool) -> Outputs:
        """Run the task's code; the outputs by name. Failures become TaskExecutionError."""
        try:
            raw = self._call(kwargs)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:
            raise TaskExecutionError(
                f"{self.taskname} ({self.digest}) failed: {type(exc).__name__}: {exc}"
            ).with_traceback(exc.__traceback__) from exc
        return self._parse(raw, validate=validate)

    def _parse(self, raw: Any, *, validate: bool) -> Outputs:
        specs = self.output_specs
        outcome: Any = ""
        if isinstance(raw, WithOutcome):
            raw, outcome = raw.result, raw.outcome
        if self.Result is None:
            values = {specs[0].name: raw}
        elif isinstance(raw, TaskOutput):
            values = dict(raw.__dict__)
        elif isinstance(raw, dict):
            values = dict(raw)
            if "outcome" in values:
                outcome = values.pop("outcome")
        elif isinstance(raw, tuple | list) and len(raw) == len(specs):
            values = {spec.name: v for spec, v in zip(specs, raw, strict=True)}
        else:
            raise TaskExecutionError(
                f"{self.taskname} must return its {len(specs)} outputs as a tuple, a dict or "
                f"a {self.Result.__name__} instance, not {type(raw).__name__}"
            )
        if set(values) != {s.name for s in specs}:
            raise TaskExecutionError(
                f"{self.taskname} returned outputs {sorted(values)}, expected "
                f"{[s.name for s in specs]}"
            )
        if not isinstance(outcome, str):
            raise TaskExecutionError(f"{self.taskname}: its outcome must be a string, not "
                                     f"{type(outcome).__name__}")
        if outcome:
            logger.info("%s: outcome: %s", self.taskname, outcome)
        checked = Outputs(values)
        checked.outcome = outcome
        if not validate:
            return checked
        for spec in specs:
            try:
                checked[spec.name] = spec.adapter.validate_python(values[spec.name])
            except ValidationError as exc:
                _, msg = _first_error(exc)
                raise TaskExecutionError(
                    f"{self.taskname} returned an invalid output '{spec.name}': {msg}"
                ) from exc
        return checked

    def _pack(self, values: dict[str, Any]) -> Any:
        if self.Result is None:
            return values[self.output_specs[0].name]
        return self.Result(**values)


def single_use(value: Any) -> bool:
    """True for results that consumers use up (iterators, generators): they are never
    kept in memory, so that every consumer gets a fresh one."""
    return isinstance(value, Iterator)


def _copy_rng(gen: np.random.Generator) -> np.random.Generator:
    bitgen = type(gen.bit_generator)()
    bitgen.state = gen.bit_generator.state
    return np.random.Generator(bitgen)
