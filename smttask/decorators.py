"""Decorators that turn a typed function (or callable class) into a Task class.

``@RecordedTask``, ``@MemoizedTask`` and ``@UnpureMemoizedTask`` work bare or with
arguments: ``cache=`` (keep results in memory by default) and ``version=`` (an explicit
task version that enters the digest; bump it when the code's results change).
``Create(cls)`` makes the task class that builds ``cls`` objects.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import threading
import typing
from collections import namedtuple
from collections.abc import Callable
from typing import Annotated, Any, TypeVar, Union

from pydantic import BaseModel, ConfigDict, Field, create_model

from .errors import TaskDefinitionError
from .memoized import Memoized, UnpureMemoized
from .outputs import OutputSpec
from .recorded import Recorded, RecordedIterative
from .task import Task, TaskOutput

__all__ = ["Create", "MemoizedTask", "RecordedIterativeTask", "RecordedTask",
           "UnpureMemoizedTask"]

F = TypeVar("F")
_RESERVED = {name for name in dir(Task) if not name.startswith("__")} | {"reason", "inputs"}


def _signature(obj: Any, name: str) -> tuple[Callable[..., Any], list[inspect.Parameter], dict]:
    call = obj.__call__ if isinstance(obj, type) else obj
    if not callable(call):
        raise TaskDefinitionError(f"{name}: a task must be a function or a callable class")
    try:
        hints = typing.get_type_hints(call, include_extras=True)
    except Exception as exc:  # NameError for unresolvable string annotations
        raise TaskDefinitionError(f"{name}: cannot resolve its annotations: {exc}") from None
    params = list(inspect.signature(call).parameters.values())
    if isinstance(obj, type):
        params = params[1:]  # self
    return call, params, hints


def _inputs_model(name: str, params: list[inspect.Parameter], hints: dict) -> type:
    fields: dict[str, Any] = {}
    for p in params:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise TaskDefinitionError(f"{name}: *{p.name} is not supported; list every input")
        if p.name not in hints:
            raise TaskDefinitionError(
                f"{name}: parameter '{p.name}' has no type annotation; every input of a task "
                f"must be annotated (e.g. `{p.name}: float`)"
            )
        if p.name in _RESERVED or p.name.startswith("_"):
            raise TaskDefinitionError(f"{name}: '{p.name}' cannot be an input name (reserved)")
        declared: Any = hints[p.name]
        annotation = Annotated[Union[Task, declared], Field(union_mode="left_to_right")]  # noqa: UP007
        default = ... if p.default is p.empty else p.default
        fields[p.name] = (annotation, default)
    return create_model(
        f"{name}.Inputs",
        __config__=ConfigDict(extra="forbid", arbitrary_types_allowed=True, frozen=True,
                              protected_namespaces=()),
        **fields,
    )


def _outputs(name: str, hints: dict) -> tuple[list[OutputSpec], type | None]:
    if "return" not in hints:
        raise TaskDefinitionError(
            f"{name}: the return type must be annotated (e.g. `-> float`, `-> Tuple[float, "
            "float]`, or a TaskOutput subclass for several named outputs)"
        )
    ret = hints["return"]
    if isinstance(ret, type) and issubclass(ret, TaskOutput):
        if not ret.model_fields:
            raise TaskDefinitionError(f"{name}: {ret.__name__} declares no output")
        if "outcome" in ret.model_fields:
            raise TaskDefinitionError(
                f"{name}: 'outcome' cannot be an output name: a returned dict's 'outcome' "
                "is the record's outcome text")
        specs = [OutputSpec(n, f.rebuild_annotation()) for n, f in ret.model_fields.items()]
        return specs, namedtuple(f"{ret.__name__}Result", [s.name for s in specs])
    if ret is None or ret is type(None):
        raise TaskDefinitionError(f"{name}: a task must return something")
    return [OutputSpec("result", ret)], None


_UNSAFE = re.compile(r"[/\\\x00-\x1f\x7f]")


def _check_name(name: Any) -> None:
    """A task's name names its folders and files: it must be one safe path component."""
    if not isinstance(name, str) or not name:
        raise TaskDefinitionError(f"{name!r} cannot be a task name: it must be a non-empty "
                                  "string")
    why = ""
    if _UNSAFE.search(name):
        why = "it contains a path separator or a control character"
    elif name.startswith(".") or name in (".", ".."):
        why = "it starts with a dot"
    elif len(name.encode("utf-8")) > 150:
        why = "it is longer than 150 bytes"
    if why:
        raise TaskDefinitionError(
            f"{name!r} cannot be a task name: {why}; the name becomes a folder of the "
            "datastore and the start of task file names, so it must be one safe file-name "
            "component (rename the function or class)")


def _check_iteration(name: str, param: str, mapping: dict[str, str], hints: dict,
                     specs: list[OutputSpec]) -> None:
    """Declaration errors of an iterative task, at decoration time."""
    outs = {s.name: s for s in specs}
    if param not in hints or param == "return":
        raise TaskDefinitionError(f"{name}: the iteration parameter {param!r} is not an input")
    if param not in outs:
        raise TaskDefinitionError(
            f"{name}: the iteration parameter {param!r} must also be an output (a field of "
            "its TaskOutput), so that a saved step says how far it went")
    for kind, tp in (("input", hints[param]), ("output", outs[param].annotation)):
        if not (isinstance(tp, type) and issubclass(tp, int) and tp is not bool):
            raise TaskDefinitionError(f"{name}: the iteration {kind} {param!r} must be an int")
    if not mapping:
        raise TaskDefinitionError(f"{name}: map must say which output feeds which input")
    for out, inp in mapping.items():
        if out not in outs:
            raise TaskDefinitionError(f"{name}: map names an unknown output {out!r}")
        if inp not in hints or inp == "return":
            raise TaskDefinitionError(f"{name}: map names an unknown input {inp!r}")
        if inp == param:
            raise TaskDefinitionError(f"{name}: map cannot feed the iteration parameter "
                                      f"{param!r} itself (map it to e.g. 'start_{param}')")


def make_task_class(obj: Any, kind: type[Task], *, cache: bool | None = None,
                    version: str | None = None,
                    iteration: tuple[str, dict[str, str]] | None = None) -> type[Task]:
    """Build the Task class of kind ``kind`` for a function or callable class."""
    name = obj.__qualname__
    _check_name(name)
    call, params, hints = _signature(obj, name)
    inputs = _inputs_model(name, params, hints)
    specs, result = _outputs(name, hints)
    for spec in specs:
        for param in spec.separate.params if spec.separate else ():
            if param not in inputs.model_fields:  # type: ignore[attr-defined]
                raise TaskDefinitionError(f"{name}: get_names of {spec.name!r} asks for "
                                          f"{param!r}, which is not an input")
    if iteration is not None:
        _check_iteration(name, iteration[0], iteration[1], hints, specs)
    namespace: dict[str, Any] = {
        "taskname": name,
        "Inputs": inputs,
        "output_specs": tuple(specs),
        "Result": result,
        "version": version,
        "_func": staticmethod(call),
        "_bound": isinstance(obj, type),
        "_memo": {},
        "_input_types": {n: hints[n] for n in inputs.model_fields},  # type: ignore[attr-defined]
        "__module__": obj.__module__,
        "__qualname__": name,
        "__doc__": obj.__doc__,
        "__wrapped__": obj,
    }
    if cache is not None:
        namespace["cache"] = cache
    if iteration is not None:
        namespace["iteration_param"], namespace["iteration_map"] = iteration[0], dict(iteration[1])
    bases = (kind, obj) if isinstance(obj, type) else (kind,)
    meta: type = type(kind)
    if isinstance(obj, type) and not issubclass(meta, type(obj)):  # the class's own metaclass
        meta = type(f"{type(obj).__name__}TaskMeta", (meta, type(obj)), {})
    cls = meta(obj.__name__, bases, namespace)
    if issubclass(kind, Recorded):  # results go to disk: their types must serialise
        for spec in specs:
            try:
                spec.adapter  # noqa: B018
            except Exception as exc:
                raise TaskDefinitionError(
                    f"{name}: output '{spec.name}' of type {spec.annotation!r} cannot be "
                    f"saved: {exc.__class__.__name__}; use a JSON-like type, an Array or a "
                    "pydantic model (or a MemoizedTask for in-memory results)"
                ) from None
    return cls


def _decorator(kind: type[Task], name: str, doc: str) -> Callable[..., Any]:
    def decorate(obj: Any = None, /, *, cache: bool | None = None,
                 version: str | None = None) -> Any:
        if obj is None:
            return lambda o: make_task_class(o, kind, cache=cache, version=version)
        return make_task_class(obj, kind, cache=cache, version=version)

    decorate.__name__ = decorate.__qualname__ = name
    decorate.__doc__ = doc + f"""

    Use bare (``@{name}``) or with arguments: ``cache=True`` keeps results in memory,
    ``version="2"`` enters the digest (bump it when the code's results change).
    """
    return decorate


RecordedTask = _decorator(
    Recorded, "RecordedTask", "Make a task whose results are saved to disk and whose runs "
    "are recorded.")
"""``@RecordedTask``: results saved to disk, runs recorded in Sumatra. Bare or with
``cache=True`` (keep results in memory too) and ``version="2"`` (enters the digest)."""
MemoizedTask = _decorator(
    Memoized, "MemoizedTask", "Make a task whose results are kept in memory only (never "
    "written or recorded).")
"""``@MemoizedTask``: results kept in memory only, never written or recorded."""
UnpureMemoizedTask = _decorator(
    UnpureMemoized, "UnpureMemoizedTask", "Make a memoized task whose digest follows its "
    "output (for outside state).")
"""``@UnpureMemoizedTask``: memoized, its digest follows its output (outside state)."""


def RecordedIterativeTask(  # noqa: N802 - a decorator named like the others
    iteration_parameter: str, map: dict[str, str] | None = None, *,  # noqa: A002
    cache: bool | None = None, version: str | None = None,
) -> Callable[[Any], type[Task]]:
    """Make a recorded task that resumes from its largest saved step.

    ``iteration_parameter`` names the int input (and output) counting the steps; ``map``
    says which output feeds which input when resuming, e.g.
    ``@RecordedIterativeTask("n", map={"x": "x0", "n": "start_n"})``.
    """
    if not isinstance(iteration_parameter, str) or map is None:
        raise TaskDefinitionError("use @RecordedIterativeTask('n', map={...}): the iteration "
                                  "parameter's name and the output → input map are required")
    return lambda obj: make_task_class(obj, RecordedIterative, cache=cache, version=version,
                                       iteration=(iteration_parameter, map))


# --- Create(cls): a task that builds an object -------------------------------------------------

_CREATED: dict[type, type[Task]] = {}
_CREATED_LOCK = threading.Lock()


class Creation(Memoized):
    """A memoized task whose run() builds one object from its inputs (see :func:`Create`)."""

    target: typing.ClassVar[type]

    def __init__(self, *args: Any, reason: str | None = None, **inputs: Any) -> None:
        kwargs = inputs.get("kwargs")
        if set(inputs) == {"kwargs"} and isinstance(kwargs, dict) and \
                "kwargs" not in type(self).Inputs.model_fields:
            inputs = dict(kwargs)  # Create(Point)(kwargs={...}), as in the original
        super().__init__(*args, reason=reason, **inputs)


def _constructor_params(cls: type) -> tuple[list[inspect.Parameter], dict[str, Any]]:
    """The keyword parameters and types of a pydantic model or dataclass constructor."""
    kw = inspect.Parameter.KEYWORD_ONLY
    params, hints = [], {}
    default: Any
    if issubclass(cls, BaseModel):
        for name, info in cls.model_fields.items():
            default = inspect.Parameter.empty
            if info.default_factory is not None:
                default = Field(default_factory=info.default_factory)
            elif not info.is_required():
                default = info.default
            params.append(inspect.Parameter(name, kw, default=default))
            hints[name] = info.rebuild_annotation()
        return params, hints
    types = typing.get_type_hints(cls, include_extras=True)
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if not f.init:
            continue
        default = f.default
        if f.default_factory is not dataclasses.MISSING:
            default = Field(default_factory=f.default_factory)
        elif default is dataclasses.MISSING:
            default = inspect.Parameter.empty
        params.append(inspect.Parameter(f.name, kw, default=default))
        hints[f.name] = types[f.name]
    return params, hints


def Create(cls: type) -> type[Task]:  # noqa: N802 - named like a class, as in the original
    """The in-memory task class that builds ``cls(**inputs)`` (a pydantic model or dataclass).

    ``Create(Point)(x=1.0, y=2.0)`` is a lazy task: its inputs are validated against the
    fields of ``Point``, its digest computed, and ``run()`` returns ``Point(x=1.0, y=2.0)``
    (memoized). Its task name is ``Create(Point)``; a task file of it rebuilds it. The same
    ``cls`` always gives the same task class.
    """
    buildable = isinstance(cls, type) and (issubclass(cls, BaseModel)
                                           or dataclasses.is_dataclass(cls))
    if not buildable:
        kind = cls.__name__ if isinstance(cls, type) else type(cls).__name__
        raise TaskDefinitionError(f"Create takes a pydantic model or a dataclass, not {kind}")
    with _CREATED_LOCK:
        if cls not in _CREATED:
            name = f"Create({cls.__qualname__})"
            try:
                params, hints = _constructor_params(cls)
            except NameError as exc:
                raise TaskDefinitionError(f"{name}: cannot resolve its annotations: {exc}") \
                    from None
            inputs = _inputs_model(name, params, hints)
            namespace: dict[str, Any] = {
                "taskname": name, "target": cls, "Inputs": inputs,
                "output_specs": (OutputSpec("result", cls),), "Result": None,
                "_func": staticmethod(cls), "_bound": False, "_memo": {},
                "_input_types": dict(hints), "__module__": cls.__module__,
                "__qualname__": name, "__doc__": f"Builds a {cls.__qualname__}.",
            }
            meta: Any = type(Creation)
            _CREATED[cls] = meta(f"Create{cls.__name__}", (Creation,), namespace)
        return _CREATED[cls]
