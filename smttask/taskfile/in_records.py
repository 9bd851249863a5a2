"""The record form: a task as a record's parameters (inputs at the top level, large arrays
stored once by content and summarised), and the exact task rebuilt from it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import config
from ..errors import TaskFileError
from ..provenance.records import RECORD_FORMAT
from ..task import Task
from .files import FORMAT, _allowed_packages, _build, _input_adapter, is_description

if TYPE_CHECKING:
    from ..outputs import Datastore

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
            dumped = _input_adapter(type(task), name).dump_python(value, mode="json")
            out[name] = _summarise_nested(dumped, store, files)
    return out


def record_inputs(desc: dict[str, Any]) -> dict[str, Any]:
    """A task description's inputs in the record form (arrays summarised, upstream tasks as
    dicts of their inputs), from its JSON alone: nothing is imported or stored. What a task
    file and a record are compared in."""
    out: dict[str, Any] = {}
    inputs = desc.get("inputs")
    for name, value in (inputs.items() if isinstance(inputs, dict) else ()):
        if is_description(value):
            nested = record_inputs(value)
            nested["_smttask"] = {"task": value.get("taskname"), "module": value.get("module"),
                                  "digest": value.get("digest")}
            out[name] = nested
        else:
            out[name] = _summarise_nested(value, None, [])
    return out


#: Arrays read back from task files by :func:`record_inputs`, by hash (the last few), so
#: that a comparison can say which element differs.
recent_arrays: dict[str, Any] = {}


def _summarise_nested(value: Any, store: Datastore | None, files: list[Path]) -> Any:
    """Arrays inside containers (in their task-file form) replaced by summaries."""
    if isinstance(value, dict):
        if isinstance(value.get("npy"), str) and "dtype" in value:
            from pydantic_core import PydanticCustomError

            from ..typing import array_from_json

            try:
                arr = array_from_json(value)
            except PydanticCustomError:
                return value  # unreadable: compared as it is
            summary = _array_summary(arr, store, files)
            if store is None and "xxh3" in summary:
                recent_arrays[summary["xxh3"]] = arr
                while len(recent_arrays) > 8:
                    recent_arrays.pop(next(iter(recent_arrays)))
            return summary
        return {k: _summarise_nested(v, store, files) for k, v in value.items()}
    if isinstance(value, list):
        return [_summarise_nested(v, store, files) for v in value]
    return value


def _array_summary(arr: Any, store: Datastore | None, files: list[Path]) -> dict[str, Any]:
    import numpy as np

    from ..outputs import npy_bytes
    from ..typing import dtype_to_json

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

        from ..outputs import BLOBS

        digest = xxhash.xxh3_128_hexdigest(npy_bytes(arr))
        key = f"{BLOBS}/{digest}.npy"
    summary.update(xxh3=digest, file=key)
    return summary


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

    from ..outputs import CorruptResult
    from ..typing import dtype_from_json

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
