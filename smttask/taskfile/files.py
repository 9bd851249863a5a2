"""Task files: describe a task as JSON, save it, load it back (validated, importing only
allowed modules), collect a folder."""

from __future__ import annotations

import functools
import importlib
import json
import logging
import os
import re
import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from .. import _fs, config, safeload
from ..config import is_module_name
from ..errors import (
    ProjectNotFoundError,
    TaskDefinitionError,
    TaskFileError,
    TaskInputError,
    UsageError,
)
from ..outputs import type_adapter
from ..task import Task

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


def is_description(value: Any) -> bool:
    """True for a task description (a nested one included): a dict with an ``smttask``
    format and its inputs."""
    return (isinstance(value, dict) and bool(value.get("smttask"))
            and isinstance(value.get("inputs"), dict))


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
    # Task files are descriptions that the code can write again: no fsync (see _fs).
    if overwrite:
        _fs.replace(path, text, durable=False)
    elif not _fs.create(path, text, durable=False) and path.read_text(encoding="utf-8") != text:
        raise TaskFileError(
            f"{path} exists with a different content; pass overwrite=True to replace it")


def save(task: Task, path: str | Path = "tasks", *, overwrite: bool = False) -> Path:
    """Write ``task``'s file; a folder gets ``<TaskName>__<digest>.taskdesc.json``."""
    _refuse_main(task)
    path = Path(path)
    if path.suffix != ".json":
        path.mkdir(parents=True, exist_ok=True)
        path = path / f"{task.taskname}__{task.digest}{SUFFIX}"
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
    _write_new(path, describe_json(task), overwrite)
    return path


def _refuse_main(task: Task) -> None:
    """A task file names a module any process can import: not the running script."""
    if type(task).__module__ == "__main__":
        raise TaskDefinitionError(
            f"{task.taskname} is defined in the script being run (__main__), which a task "
            "file cannot name: move the task into a module of the project and import it")
    for value in task.inputs.__dict__.values():
        if isinstance(value, Task):
            _refuse_main(value)


def check_imports(allow: Iterable[str]) -> None:
    """UsageError unless every name in ``allow`` (``--import``) is a module name."""
    for name in allow:
        if not is_module_name(name):
            raise UsageError(f"--import {name[:80]!r}: not a module name (e.g. mylab or "
                             "mylab.tasks)")


def _allowed_packages(extra: tuple[str, ...], project: config.Project | None,
                      near: str | os.PathLike[str] | None = None) -> set[str]:
    """The packages task files may import: ``extra`` and the project's own (whose code is
    put on the import path). Without ``project``: the project holding ``near`` (a task
    file), else the active or working directory's, if any."""
    check_imports(extra)
    allowed = set(extra)
    if project is None:
        try:
            project = config.project_of([near] if near is not None else [])
        except ProjectNotFoundError:
            return allowed
    project.add_to_path()
    allowed.update(project.packages)
    return allowed


def _permitted(module: str, allowed: set[str]) -> bool:
    return any(module == a or module.startswith(a + ".") for a in allowed)


def _import(module: str, allowed: set[str], where: str) -> Any:
    """The task module, imported only if it lies in an allowed package (checked first)."""
    if not is_module_name(module):
        raise TaskFileError(f"{where}: module: {module[:80]!r} is not a module name that a "
                            "task file may name (dotted names, no __main__)")
    if not _permitted(module, allowed):
        shown = ", ".join(sorted(allowed)) or "none found"
        raise TaskFileError(
            f"{where}: module {module!r} is not in the project's packages ({shown}); a task "
            "file imports only task modules: add its package to `packages` under [project] "
            "in smttask.toml, or pass --import PKG (allow= in Python)"
        )
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise TaskFileError(f"{where}: cannot import {module!r}: {exc}") from None


def _task_class(module: Any, taskname: str, where: str, module_name: str) -> type[Task]:
    """The task class ``taskname`` of ``module`` (looked up in namespaces only: no module
    ``__getattr__``, no descriptors); ``Create(<qualname>)`` is built again."""
    created = re.fullmatch(r"Create\((.+)\)", taskname)
    obj: Any = module
    for part in (created[1] if created else taskname).split("."):
        if not part.isidentifier() or part.startswith("__"):
            obj = None
            break
        obj = getattr(obj, "__dict__", {}).get(part)
    if created is not None and obj is not None:
        from ..decorators import Create

        try:
            obj = Create(obj)
        except TaskDefinitionError:
            obj = None
    if not (isinstance(obj, type) and issubclass(obj, Task)):
        raise TaskFileError(f"{where}: taskname: {module_name} has no task {taskname[:80]!r}")
    return obj


def _build(desc: Any, allowed: set[str], where: str) -> Task:
    if not isinstance(desc, dict):
        raise TaskFileError(f"{where}: a task description must be a JSON object")
    if desc.get("smttask") != FORMAT:
        raise TaskFileError(
            f"{where}: smttask: expected {FORMAT!r}, got {_short(desc.get('smttask'))} "
            "(not an smttask task file, or made by an incompatible version)"
        )
    for key, kind in (("taskname", str), ("module", str), ("inputs", dict)):
        if not isinstance(desc.get(key), kind):
            raise TaskFileError(f"{where}: {key}: missing or not a {kind.__name__}")
    reason = desc.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise TaskFileError(f"{where}: reason: must be a string or null")
    cls = _task_class(_import(desc["module"], allowed, where), desc["taskname"], where,
                      desc["module"])
    inputs = {}
    for name, value in desc["inputs"].items():
        if not name.isidentifier():
            raise TaskFileError(f"{where}: inputs: {name[:40]!r} is not an input of "
                                f"{cls.taskname}")
        if name == "reason":
            raise TaskFileError(f"{where}: inputs.reason: 'reason' is never an input (it is "
                                "reserved); a task file's reason is its top-level 'reason'")
        if isinstance(value, dict) and "smttask" in value:
            value = _build(value, allowed, f"{where}: inputs.{name}")
        inputs[name] = value
    try:
        task = cls(reason=reason, **inputs)
    except TaskInputError as exc:
        field = f"inputs.{exc.field}" if exc.field else "inputs"
        raise TaskFileError(f"{where}: {field}: {_one_line(exc.problem or str(exc))}") from None
    expected = desc.get("digest")
    if expected is not None and expected != task.digest:
        logger.warning("%s: digest %s recorded in the file differs from %s (the task's code "
                       "or the digest scheme changed)", where, _short(expected), task.digest)
    return task


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _one_line(text: str) -> str:
    return " ".join(text.split())


#: The largest task file read (a larger one is refused before reading), in bytes.
MAX_BYTES = 512 << 20
#: How deep arrays and objects may nest in a task file (nested tasks count two levels).
MAX_DEPTH = 100
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _parse(text: str, where: str) -> Any:
    if len(text) > MAX_BYTES:
        raise TaskFileError(f"{where}: larger than the limit of {MAX_BYTES >> 20} MiB")
    try:
        safeload.check_json_depth(text, MAX_DEPTH)
    except ValueError as exc:
        raise TaskFileError(f"{where}: {exc}") from None
    try:
        desc = json.loads(text)
    except ValueError as exc:  # JSONDecodeError, the 4300-digit integer limit
        raise TaskFileError(f"{where}: not valid JSON: {_one_line(str(exc))}") from None
    if _SURROGATE_ESCAPE.search(text):
        try:
            json.dumps(desc, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise TaskFileError(f"{where}: a string holds a lone UTF-16 surrogate "
                                "(\\ud800-\\udfff), which is not text") from None
    return desc


def load(source: str | os.PathLike[str] | dict[str, Any], *, allow: tuple[str, ...] = (),
         project: config.Project | None = None) -> Task:
    """Rebuild the task of a task file (path), JSON text or description dict.

    Its module may belong to ``project`` (default: the project holding the file, else the
    active or working directory's one; see :attr:`smttask.config.Project.packages`) or to
    the packages in ``allow``; every failure is a one-line :class:`TaskFileError` naming
    the file and the field.
    """
    near = source if not isinstance(source, dict) and not (
        isinstance(source, str) and source.lstrip().startswith("{")) else None
    allowed = _allowed_packages(tuple(allow), project, near=near)
    if isinstance(source, dict):
        return _build(source, allowed, "task description")
    if isinstance(source, str) and source.lstrip().startswith("{"):
        where, text = "task description", source
    else:
        where = os.fsdecode(source)
        if safeload.control_character(where):
            where = repr(where)  # the message stays one line
        try:
            text = safeload.read_text(source, MAX_BYTES)
        except FileNotFoundError:
            raise TaskFileError(f"{where}: no such file") from None
        except ValueError as exc:
            raise TaskFileError(f"{where}: {exc}") from None
    return _build(_parse(text, where), allowed, where)


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
