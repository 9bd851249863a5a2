"""Which inputs differ: between two task files or records (``smttask diff``), between a
task and its closest record (``smttask why``), and across records (``store compare``).

Inputs are compared in their stored form (what task files and records hold), by dotted
name: ``x.n`` is input ``n`` of the upstream task given as ``x``. An array that differs
is described by what differs first: its dtype, its shape, or its first differing element.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import config
from .errors import ProjectNotFoundError, SmttaskError, TaskFileError, UsageError
from .outputs import Datastore
from .taskfile import record_inputs
from .view import (
    RecordStoreView,
    RecordView,
    dtype_name,
    find,
    flatten_inputs,
    is_array,
    nested_task,
    summarize,
)

__all__ = ["Comparison", "Diff", "Difference", "Side", "compare", "diff", "differences",
           "side"]

ABSENT = "(absent)"


def _array_values(summary: dict[str, Any], store: Datastore | None) -> Any:
    """The values of an array as stored in a record or read from a task file, if at hand."""
    import numpy as np

    from .outputs import CorruptResult
    from .taskfile.in_records import recent_arrays
    from .typing import dtype_from_json

    if "values" in summary:
        return np.array(summary["values"], dtype=dtype_from_json(summary["dtype"]))
    digest = summary.get("xxh3")
    if digest in recent_arrays:
        return recent_arrays[digest]
    if store is not None and isinstance(summary.get("file"), str) and digest:
        try:
            return store.load_blob(summary["file"], str(digest))
        except (OSError, CorruptResult):
            return None
    return None


def _array_detail(a: dict[str, Any], b: dict[str, Any], store: Datastore | None = None
                  ) -> str:
    """What differs first between two stored arrays."""
    if a.get("dtype") != b.get("dtype"):
        return f"array dtype {a.get('dtype')} → {b.get('dtype')}"
    if list(a.get("shape", ())) != list(b.get("shape", ())):
        return f"array shape {tuple(a.get('shape', ()))} → {tuple(b.get('shape', ()))}"
    what = f"array {dtype_name(a.get('dtype'))} {tuple(a.get('shape', ()))}"
    import numpy as np

    x, y = _array_values(a, store), _array_values(b, store)
    if x is None or y is None:
        return f"{what}: contents differ (xxh3 {a.get('xxh3', '?')[:8]} → " \
               f"{b.get('xxh3', '?')[:8]})"
    same = x == y
    if x.dtype.kind in "fc":
        same |= np.isnan(x) & np.isnan(y)
    where = np.argwhere(~same)
    if not len(where):  # equal values, other bytes (e.g. NaN payloads, -0.0)
        return f"{what}: same values, other bytes (NaN payloads or signed zeros)"
    index = tuple(int(i) for i in where[0])
    at = f"[{', '.join(map(str, index))}]"
    return (f"{what}: {len(where)} of {x.size} elements differ, first at {at}: "
            f"{x[index].item()!r} → {y[index].item()!r}")


_is_array = is_array


@dataclass
class Difference:
    """One input that differs, by dotted name: its value on each side (record form)."""

    name: str
    a: Any
    b: Any
    store: Datastore | None = field(default=None, repr=False, compare=False)

    @property
    def detail(self) -> str:
        """For arrays: the dtype, the shape or the first element that differs."""
        if _is_array(self.a) and _is_array(self.b):
            return _array_detail(self.a, self.b, self.store)
        return ""

    def __str__(self) -> str:
        detail = self.detail
        if detail:
            return f"{self.name}: {detail}"
        return f"{self.name}: {summarize(self.a)!r} → {summarize(self.b)!r}"


def differences(a: Any, b: Any, prefix: str = "", store: Datastore | None = None
                ) -> list[Difference]:
    """The inputs (dotted names) where two sets of inputs in the record form differ (see
    :func:`smttask.taskfile.record_inputs`). ``store`` lets arrays be read back, to say
    which element differs."""
    if isinstance(a, dict) and isinstance(b, dict):
        ta, tb = nested_task(a), nested_task(b)
        if ta is not None and tb is not None:
            if ta[0] != tb[0]:
                return [Difference(prefix or "task", a, b, store)]
            a, b = ta[2], tb[2]
        elif _is_array(a) or _is_array(b):
            return [] if _same_array(a, b) else [Difference(prefix, a, b, store)]
        out = []
        for key in sorted(set(a) | set(b)):
            name = f"{prefix}.{key}" if prefix else key
            if key not in a or key not in b:
                out.append(Difference(name, a.get(key, ABSENT), b.get(key, ABSENT), store))
            else:
                out.extend(differences(a[key], b[key], name, store))
        return out
    return [] if a == b else [Difference(prefix, a, b, store)]


def _same_array(a: Any, b: Any) -> bool:
    """Equal arrays: same dtype, shape and content (hash, or values when written out)."""
    if not (_is_array(a) and _is_array(b)):
        return False
    keys = ("dtype", "shape", "values", "xxh3")
    return all(a.get(k) == b.get(k) for k in keys)


# --- two sides: task files or records --------------------------------------------------------

@dataclass
class Side:
    """One side of ``smttask diff``: a task file or a record."""

    what: str
    taskname: str
    digest: str
    inputs: dict[str, Any]

    def __str__(self) -> str:
        return f"{self.what}: {self.taskname} {self.digest}"


def side(spec: str | os.PathLike[str], view: RecordStoreView | None = None) -> Side:
    """A task file (by path) or a record (by label or unique label prefix). A task file
    is read as JSON only: nothing is imported."""
    path = Path(spec)
    if path.is_file():
        try:
            desc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise TaskFileError(f"{path}: cannot read: {exc}") from None
        if not isinstance(desc, dict) or not desc.get("smttask"):
            raise TaskFileError(f"{path}: not a task file (no \"smttask\" format tag)")
        return Side(f"task file {path}", desc.get("taskname", ""), desc.get("digest", ""),
                    record_inputs(desc))
    try:
        rec = view.get(str(spec)) if view is not None else find(str(spec))
    except UsageError as exc:
        raise UsageError(f"{spec} is not a task file, and {exc}") from None
    return Side(f"record {rec.label}", rec.taskname, rec.digest, rec.inputs)


@dataclass
class Diff:
    """Two sides and the inputs where they differ."""

    a: Side
    b: Side
    differences: list[Difference] = field(default_factory=list)

    @property
    def same(self) -> bool:
        return self.a.digest == self.b.digest and not self.differences

    def lines(self) -> list[str]:
        """The report ``smttask diff`` prints."""
        out = [f"A  {self.a}", f"B  {self.b}"]
        if self.a.taskname != self.b.taskname:
            out.append(f"different tasks: {self.a.taskname} → {self.b.taskname}")
        elif self.same:
            out.append("same digest: the same task, and the same result")
        elif not self.differences:
            out.append("the inputs are equal but the digests differ: the task's version or "
                       "the digest scheme changed")
        if self.differences:
            n = len(self.differences)
            out.append(f"{n} input{'s' if n != 1 else ''} differ{'s' if n == 1 else ''} "
                       "(A → B):")
            out += [f"  {d}" for d in self.differences]
        return out


def diff(a: str | os.PathLike[str] | Side, b: str | os.PathLike[str] | Side) -> Diff:
    """Compare two task files, two records, or one of each (see :func:`side`)."""
    left, right = (s if isinstance(s, Side) else side(s) for s in (a, b))
    try:
        store: Datastore | None = Datastore.of(config.find_project())
    except ProjectNotFoundError:
        store = None
    found = [] if left.taskname != right.taskname else differences(left.inputs, right.inputs,
                                                                  store=store)
    return Diff(left, right, found)


# --- many records side by side ---------------------------------------------------------------

def _cell(value: Any) -> str:
    if _is_array(value):
        digest = hashlib.sha1(str(value.get("npy", value)).encode()).hexdigest()[:6]
        return f"{summarize(value)} #{digest}"
    if isinstance(value, float):
        return f"{value:.6g}" if math.isfinite(value) else str(value)
    text = summarize(value)
    return text if isinstance(text, str) else json.dumps(text, sort_keys=True)


def _scalars(name: str, value: Any) -> dict[str, Any]:
    """Scalar outputs by name; short tuples of scalars as ``name[i]``; others left out."""
    scalar = (int, float, str, bool, type(None))
    if isinstance(value, scalar):
        return {name: value}
    if isinstance(value, tuple | list) and len(value) <= 8 and \
            all(isinstance(v, scalar) for v in value):
        return {f"{name}[{i}]": v for i, v in enumerate(value)}
    return {}


def _outputs(rec: RecordView) -> dict[str, Any]:
    """The record's result as it is on disk for its digest (read through the result
    links, without the record store's Django layer: fast), scalars only."""
    if rec.status != "finished":
        return {}
    try:
        ref = rec.task.result_ref(Datastore.of(rec.project))  # type: ignore[attr-defined]
        loaded = ref.load()
        values = loaded.values if loaded is not None else {}
    except (SmttaskError, AttributeError):  # code gone or changed; not a recorded task
        return {}
    found: dict[str, Any] = {}
    for name, value in values.items():
        found.update(_scalars(name, value))
    return found


@dataclass
class Comparison:
    """Records side by side: the inputs that differ, then the scalar outputs."""

    labels: list[str]
    inputs: list[tuple[str, list[str]]]
    outputs: list[tuple[str, list[str]]]

    def rows(self) -> list[list[str]]:
        """A header row of labels, then one row per differing input and output."""
        return [["", *self.labels], *([n, *v] for n, v in self.inputs),
                *([n, *v] for n, v in self.outputs)]


def compare(labels: list[RecordView | str]) -> Comparison:
    """The inputs that differ across records (given as records or label prefixes; the task
    name first when it differs), and their outputs that are scalars (or short tuples of
    scalars)."""
    if len(labels) < 2:
        raise UsageError("name at least two records to compare")
    records = [find(r) if isinstance(r, str) else r for r in labels]
    flat = [{"task": r.taskname, **flatten_inputs(r.inputs)} for r in records]
    names = list(dict.fromkeys(k for f in flat for k in f))
    inputs = []
    for name in names:
        values = [f.get(name, ABSENT) for f in flat]
        keys = {json.dumps(v, sort_keys=True, default=str) for v in values}
        if len(keys) > 1:
            inputs.append((name, [_cell(v) for v in values]))
    root = str(records[0].project.root)  # the tasks' modules are the project's
    if root not in sys.path:
        sys.path.insert(0, root)
    outs = [_outputs(r) for r in records]
    out_names = list(dict.fromkeys(k for o in outs for k in o))
    outputs = [(name, [_cell(o[name]) if name in o else "—" for o in outs])
               for name in out_names]
    return Comparison([r.label for r in records], inputs, outputs)
