"""JSON task files: a self-contained description of one task, and how to load it.

Format (``"smttask": "taskdesc/1"``)::

    {"smttask": "taskdesc/1", "taskname": "analyze", "module": "proj.tasks",
     "inputs": {"arr": {"dtype": "<f8", "shape": [3], "npy": "k05VTVBZ..."}, "dt": 0.1,
                "nbins": 2},
     "reason": "first sweep", "digest": "3f0c..."}

Nested tasks appear inline as descriptions of the same shape; arrays as base64 ``.npy``.
Loading validates everything and names the file and the field on failure. A task file can
only import a module of the project's own packages, one already imported, or one allowed
explicitly (``--import``).
"""

from __future__ import annotations

import functools
import importlib
import json
import logging
import os
import re
import secrets
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from . import _fs
from .errors import ProjectNotFoundError, TaskDefinitionError, TaskFileError, TaskInputError
from .outputs import type_adapter
from .task import Task

__all__ = ["FORMAT", "SUFFIX", "collect", "describe", "describe_json", "load", "save"]

logger = logging.getLogger(__name__)

FORMAT = "taskdesc/1"
SUFFIX = ".taskdesc.json"


@functools.cache
def _input_adapter(cls: type[Task], name: str) -> TypeAdapter:
    return type_adapter(cls._input_types[name])


def describe(task: Task) -> dict[str, Any]:
    """The JSON-ready description of ``task`` (nested tasks described inline)."""
    cls = type(task)
    inputs = {}
    for name, value in task.inputs.__dict__.items():
        if isinstance(value, Task):
            inputs[name] = describe(value)
        else:
            inputs[name] = _input_adapter(cls, name).dump_python(value, mode="json")
    return {
        "smttask": FORMAT,
        "taskname": task.taskname,
        "module": cls.__module__,
        "inputs": inputs,
        "reason": task.reason,
        "digest": task.digest,
    }


_BIG = 1 << 16


def _set_aside(obj: Any, big: dict[str, str]) -> Any:
    """Replace long base64 strings (array data) with unguessable placeholders."""
    if isinstance(obj, dict):
        if isinstance(obj.get("npy"), str) and len(obj["npy"]) > _BIG:
            token = secrets.token_hex(16)
            big[token] = obj["npy"]
            return {**obj, "npy": token}
        return {k: _set_aside(v, big) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_set_aside(v, big) for v in obj]
    return obj


def describe_json(task: Task) -> str:
    """The task description as JSON text.

    Base64 needs no JSON escaping, so long array data is spliced in after encoding
    instead of being scanned by the encoder: the same text, several times faster.
    """
    big: dict[str, str] = {}
    text = json.dumps(_set_aside(describe(task), big), ensure_ascii=False, allow_nan=True)
    for token, data in big.items():
        text = text.replace(f'"{token}"', f'"{data}"', 1)
    return text


def _write_new(path: Path, text: str, overwrite: bool) -> None:
    if overwrite:
        _fs.replace(path, text)
    elif not _fs.create(path, text) and path.read_text(encoding="utf-8") != text:
        raise TaskFileError(
            f"{path} exists with a different content; pass overwrite=True to replace it")


def save(task: Task, path: str | Path = "tasks", *, overwrite: bool = False) -> Path:
    """Write ``task``'s file; a folder gets ``<TaskName>__<digest>.taskdesc.json``."""
    path = Path(path)
    if path.suffix != ".json":
        path.mkdir(parents=True, exist_ok=True)
        path = path / f"{task.taskname}__{task.digest}{SUFFIX}"
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
    _write_new(path, describe_json(task), overwrite)
    return path


def _allowed_packages(extra: tuple[str, ...]) -> set[str]:
    from .config import find_project

    allowed = {name.partition(".")[0] for name in extra}
    try:
        allowed.update(find_project().packages)
    except ProjectNotFoundError:
        pass
    return allowed


def _import(module: str, allowed: set[str], where: str) -> Any:
    if module not in sys.modules and module.partition(".")[0] not in allowed:
        shown = ", ".join(sorted(allowed)) or "none"
        raise TaskFileError(
            f"{where}: module {module!r} is not one of the project's packages ({shown}); "
            "allow it with --import (or `packages` in smttask.toml)"
        )
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise TaskFileError(f"{where}: cannot import {module!r}: {exc}") from None


def _task_class(module: Any, taskname: str) -> Any:
    """The task class ``taskname`` of ``module``; ``Create(<qualname>)`` is built again."""
    created = re.fullmatch(r"Create\((.+)\)", taskname)
    obj: Any = module
    for part in (created[1] if created else taskname).split("."):
        obj = getattr(obj, part, None)
    if created is None or obj is None:
        return obj
    from .decorators import Create

    try:
        return Create(obj)
    except TaskDefinitionError:
        return None


def _build(desc: Any, allowed: set[str], where: str) -> Task:
    if not isinstance(desc, dict):
        raise TaskFileError(f"{where}: a task description must be a JSON object")
    if desc.get("smttask") != FORMAT:
        raise TaskFileError(
            f"{where}: smttask: expected {FORMAT!r}, got {desc.get('smttask')!r} "
            "(not an smttask task file, or made by an incompatible version)"
        )
    for key, kind in (("taskname", str), ("module", str), ("inputs", dict)):
        if not isinstance(desc.get(key), kind):
            raise TaskFileError(f"{where}: {key}: missing or not a {kind.__name__}")
    reason = desc.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise TaskFileError(f"{where}: reason: must be a string or null")
    module = _import(desc["module"], allowed, where)
    cls = _task_class(module, desc["taskname"])
    if not (isinstance(cls, type) and issubclass(cls, Task)):
        raise TaskFileError(f"{where}: taskname: {desc['module']} has no task "
                            f"{desc['taskname']!r}")
    inputs = {}
    for name, value in desc["inputs"].items():
        if isinstance(value, dict) and "smttask" in value:
            value = _build(value, allowed, f"{where}: inputs.{name}")
        inputs[name] = value
    try:
        task = cls(reason=reason, **inputs)
    except TaskInputError as exc:
        raise TaskFileError(f"{where}: inputs.{exc.field}: {exc.problem or exc}") from None
    expected = desc.get("digest")
    if expected is not None and expected != task.digest:
        logger.warning("%s: digest %s recorded in the file differs from %s (the task's code "
                       "or the digest scheme changed)", where, expected, task.digest)
    return task


def load(source: str | os.PathLike[str] | dict[str, Any], *, allow: tuple[str, ...] = ()) -> Task:
    """Rebuild the task of a task file (path), JSON text or description dict."""
    allowed = _allowed_packages(tuple(allow))
    if isinstance(source, dict):
        return _build(source, allowed, "task description")
    if isinstance(source, str) and source.lstrip().startswith("{"):
        where, text = "task description", source
    else:
        where = os.fspath(source)
        try:
            text = Path(source).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise TaskFileError(f"{where}: cannot read: {exc}") from None
    try:
        desc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TaskFileError(f"{where}: not valid JSON: {exc}") from None
    return _build(desc, allowed, where)


def collect(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Task files named or found (recursively, sorted) in folders; duplicates dropped."""
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found.extend(sorted(p.rglob(f"*{SUFFIX}")))
        else:
            found.append(p)
    seen: set[Path] = set()
    return [f for f in found if not (f.resolve() in seen or seen.add(f.resolve()))]  # type: ignore[func-returns-value]
