"""JSON task files: a self-contained description of one task, and how to load it.

Format (``"smttask": "taskdesc/1"``)::

    {"smttask": "taskdesc/1", "taskname": "analyze", "module": "proj.tasks",
     "inputs": {"arr": {"dtype": "<f8", "shape": [3], "npy": "k05VTVBZ..."}, "dt": 0.1,
                "nbins": 2},
     "reason": "first sweep", "digest": "3f0c..."}

Nested tasks appear inline as descriptions of the same shape; arrays as base64 ``.npy``.
Loading validates everything and names the file and the field on failure. A task file can
only import a module of the project's own packages (made importable first, whether the
project is installed or not), one already imported, or one allowed explicitly
(``--import``). The project is the one given, else the one holding the task file, else
the active or working directory's one.
"""

from __future__ import annotations

import functools
import importlib
import json
import logging
import os
import secrets
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter

from . import _fs, config
from .errors import ProjectNotFoundError, TaskFileError, TaskInputError
from .outputs import type_adapter
from .task import Task

if TYPE_CHECKING:
    from .outputs import Datastore

__all__ = [
    "FORMAT",
    "INLINE_VALUES",
    "RECORD_FORMAT",
    "SUFFIX",
    "collect",
    "describe",
    "describe_json",
    "is_record_form",
    "load",
    "load_record_form",
    "record_form",
    "save",
]

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
            inputs[name] = _input_adapter(cls, name).dump_python(value, mode="json")  # type: ignore[arg-type]
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
    # Task files are descriptions that the code can write again: no fsync (see _fs).
    if overwrite:
        _fs.replace(path, text, durable=False)
    elif not _fs.create(path, text, durable=False) and path.read_text(encoding="utf-8") != text:
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


def _allowed_packages(extra: tuple[str, ...], project: config.Project | None,
                      near: str | os.PathLike[str] | None = None) -> set[str]:
    """The packages task files may import: ``extra`` and the project's own (whose code is
    put on the import path). Without ``project``: the project holding ``near`` (a task
    file), else the active or working directory's, if any."""
    allowed = {name.partition(".")[0] for name in extra}
    if project is None:
        try:
            project = config.project_of([near] if near is not None else [])
        except ProjectNotFoundError:
            return allowed
    project.add_to_path()
    allowed.update(project.packages)
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
    cls: Any = module
    for part in desc["taskname"].split("."):
        cls = getattr(cls, part, None)
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


def load(source: str | os.PathLike[str] | dict[str, Any], *, allow: tuple[str, ...] = (),
         project: config.Project | None = None) -> Task:
    """Rebuild the task of a task file (path), JSON text or description dict.

    Its module may belong to ``project`` (default: the project holding the file, else the
    active or working directory's one) or to the packages in ``allow``.
    """
    if isinstance(source, dict):
        return _build(source, _allowed_packages(tuple(allow), project), "task description")
    if isinstance(source, str) and source.lstrip().startswith("{"):
        where, text = "task description", source
        allowed = _allowed_packages(tuple(allow), project)
    else:
        where = os.fspath(source)
        allowed = _allowed_packages(tuple(allow), project, near=source)
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


# --- the record form: a task as a record's parameters ------------------------------------------

#: The format tag of a record's parameters (under ``_smttask``).
RECORD_FORMAT = "smttask-record/1"
#: Numeric arrays with at most this many (finite) values are written out in a record;
#: larger ones are stored once in the input datastore and summarised.
INLINE_VALUES = 16


def record_form(task: Task, store: Datastore | None = None
                ) -> tuple[dict[str, Any], list[Path]]:
    """The task as a record's parameters, and the stored input files it refers to.

    The inputs are at the top level, as in a task file except that arrays are summarised
    (dtype, shape, min/max/mean, xxh3-128) and stored once, by content, in the input
    datastore (with ``store``; without, only their summary is computed); a nested task
    is a dict of its own inputs; bookkeeping (format, task, module, digest) is under
    ``_smttask``. :func:`load_record_form` rebuilds the exact task.
    """
    files: list[Path] = []
    params = _record_inputs(task, store, files)
    params["_smttask"] = {"format": RECORD_FORMAT, "task": task.taskname,
                          "module": type(task).__module__, "digest": task.digest}
    return params, files


def _record_inputs(task: Task, store: Datastore | None, files: list[Path]) -> dict[str, Any]:
    import numpy as np

    out: dict[str, Any] = {}
    for name, value in task.inputs.__dict__.items():
        if isinstance(value, Task):
            nested = _record_inputs(value, store, files)
            nested["_smttask"] = {"task": value.taskname, "module": type(value).__module__,
                                  "digest": value.digest}
            out[name] = nested
        elif isinstance(value, np.ndarray):
            out[name] = _array_summary(value, store, files)
        else:
            dumped = _input_adapter(type(task), name).dump_python(value, mode="json")  # type: ignore[arg-type]
            out[name] = _summarise_nested(dumped, store, files)
    return out


def _summarise_nested(value: Any, store: Datastore | None, files: list[Path]) -> Any:
    """Arrays inside containers (in their task-file form) replaced by summaries."""
    if isinstance(value, dict):
        if isinstance(value.get("npy"), str) and "dtype" in value:
            from .typing import array_from_json

            return _array_summary(array_from_json(value), store, files)
        return {k: _summarise_nested(v, store, files) for k, v in value.items()}
    if isinstance(value, list):
        return [_summarise_nested(v, store, files) for v in value]
    return value


def _array_summary(arr: Any, store: Datastore | None, files: list[Path]) -> dict[str, Any]:
    import numpy as np

    from .outputs import npy_bytes
    from .typing import dtype_to_json

    summary: dict[str, Any] = {"dtype": dtype_to_json(arr.dtype), "shape": list(arr.shape)}
    numeric = arr.dtype.kind in "biuf"
    if numeric and arr.size and arr.dtype.kind == "f":
        finite = arr[np.isfinite(arr)]
    else:
        finite = arr if numeric else None
    if numeric and arr.size <= INLINE_VALUES and (finite is not None and finite.size == arr.size):
        summary["values"] = arr.tolist()
        return summary
    if finite is not None and finite.size:
        summary.update(min=finite.min().item(), max=finite.max().item(),
                       mean=float(finite.mean(dtype=np.float64)))
    if store is not None:
        digest, key = store.store_blob(arr)
        files.append(store.file_of(key))
    else:
        import xxhash

        from .outputs import BLOBS

        digest = xxhash.xxh3_128_hexdigest(npy_bytes(arr))
        key = f"{BLOBS}/{digest}.npy"
    summary.update(xxh3=digest, file=key)
    return summary


def is_record_form(params: Any) -> bool:
    """True for the parameters of a record made by smttask-record/1 or later."""
    return isinstance(params, dict) and isinstance(params.get("_smttask"), dict) \
        and params["_smttask"].get("format") == RECORD_FORMAT


def load_record_form(params: dict[str, Any], store: Datastore, *, allow: tuple[str, ...] = (),
                     where: str = "record", project: config.Project | None = None) -> Task:
    """Rebuild the exact task of a record (stored inputs read back and checked); its
    module may belong to ``project`` (default: the active or working directory's)."""
    return _build(_desc_of_record(params, store, where),
                  _allowed_packages(tuple(allow), project), where)


def _desc_of_record(params: dict[str, Any], store: Datastore, where: str) -> dict[str, Any]:
    meta = params.get("_smttask")
    if not isinstance(meta, dict):
        raise TaskFileError(f"{where}: not a task's record (no _smttask entry)")
    inputs = {}
    for name, value in params.items():
        if name == "_smttask":
            continue
        if isinstance(value, dict) and isinstance(value.get("_smttask"), dict):
            inputs[name] = _desc_of_record(value, store, f"{where}: {name}")
        else:
            inputs[name] = _restore_arrays(value, store, f"{where}: {name}")
    return {"smttask": FORMAT, "taskname": meta.get("task"), "module": meta.get("module"),
            "inputs": inputs, "digest": meta.get("digest")}


def _restore_arrays(value: Any, store: Datastore, where: str) -> Any:
    if isinstance(value, dict):
        if "dtype" in value and "shape" in value and ("file" in value or "values" in value):
            return _array_of_summary(value, store, where)
        return {k: _restore_arrays(v, store, where) for k, v in value.items()}
    if isinstance(value, list):
        return [_restore_arrays(v, store, where) for v in value]
    return value


def _array_of_summary(summary: dict[str, Any], store: Datastore, where: str) -> Any:
    import numpy as np

    from .outputs import CorruptResult
    from .typing import dtype_from_json

    try:
        dtype = dtype_from_json(summary["dtype"])
        if "values" in summary:
            return np.array(summary["values"], dtype=dtype).reshape(summary["shape"])
        arr = store.load_blob(str(summary["file"]), str(summary["xxh3"]))
    except FileNotFoundError:
        raise TaskFileError(f"{where}: the stored input array {summary['file']} is missing "
                            "from the input datastore; the record cannot be rebuilt without "
                            "it (its task file, if kept, still has the array)") from None
    except (CorruptResult, TypeError, ValueError, KeyError) as exc:
        raise TaskFileError(f"{where}: bad stored input array: {exc}") from None
    if arr.dtype != dtype or list(arr.shape) != list(summary["shape"]):
        raise TaskFileError(f"{where}: the stored input array does not match its record")
    return arr
