"""Input values as records store them: arrays, nested tasks, dotted names, conditions
and dates as users type them."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from ..errors import UsageError

if TYPE_CHECKING:
    from .record import RecordView


def parse_when(value: str | date | datetime) -> datetime:
    """A UTC datetime from a datetime, a date, an ISO string, 'today', 'yesterday', or an
    age such as '90m', '12h', '3d', '2w' (that long ago)."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime.combine(value, time(), tzinfo=UTC)
    text = value.strip().lower()
    now = datetime.now(UTC)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if text == "today":
        return midnight
    if text == "yesterday":
        return midnight - timedelta(days=1)
    age = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smhdw])", text)
    try:
        if age:
            unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
            return now - timedelta(**{unit[age[2]]: float(age[1])})
        return parse_when(datetime.fromisoformat(value.strip()))
    except (ValueError, OverflowError):  # not a date; an age beyond year 1
        msg = (f"cannot read {value!r} as a date: use 2026-11-25, '2026-11-25 14:00', today, "
               "yesterday, or an age like 3d or 12h")
        raise UsageError(msg) from None


def is_array(value: Any) -> bool:
    """True for an array input as a record or task file stores it."""
    return isinstance(value, dict) and "dtype" in value and "shape" in value and (
        "npy" in value or "file" in value or "values" in value)


def nested_task(value: Any) -> tuple[str, str, dict[str, Any]] | None:
    """(name, digest, inputs) if ``value`` is a nested task as stored, else None."""
    if isinstance(value, dict):
        meta = value.get("_smttask")
        if isinstance(meta, dict):  # record form
            return (str(meta.get("task", "")), str(meta.get("digest", "")),
                    {k: v for k, v in value.items() if k != "_smttask"})
        if value.get("smttask") and isinstance(value.get("inputs"), dict):  # task-file form
            return (str(value.get("taskname", "")), str(value.get("digest", "")),
                    value["inputs"])
    return None


_OPS = {"=": "eq", "==": "eq", "!=": "ne", "<": "lt", "<=": "le", ">": "gt", ">=": "ge"}


def parse_condition(text: str) -> tuple[str, str, Any]:
    """``'dt>=0.3'`` → ``("ge", "dt", 0.3)``: a comparison for :meth:`_Filter.params`.

    The value is read as JSON (numbers, true, false, null, "quoted text"), otherwise
    taken as text: ``name=abc`` compares with the string ``"abc"``.
    """
    m = re.fullmatch(r"\s*([\w.]+)\s*(==|=|!=|<=|>=|<|>)\s*([^<>=!\s].*?)?\s*", text)
    if m is None or not m[3]:
        raise UsageError(f"cannot read the condition {text!r}: write NAME OP VALUE with OP "
                         "one of = != < <= > >=, e.g. 'dt>=0.3' or 'nbins=2'")
    try:
        value = json.loads(m[3])
    except ValueError:
        value = m[3]
    return _OPS[m[2]], m[1], value


def dtype_name(stored: Any) -> str:
    """``'<f8'`` → ``'float64'`` (numpy's name for little-endian and byte-order-free
    dtypes, without importing numpy); anything else as stored."""
    kinds = {"f": "float", "i": "int", "u": "uint", "c": "complex"}
    m = re.fullmatch(r"([<|])([fiucb])(\d+)", stored) if isinstance(stored, str) else None
    if m is None:
        return str(stored)
    return "bool" if m[2] == "b" else f"{kinds[m[2]]}{int(m[3]) * 8}"


def summarize(value: Any) -> Any:
    """An input value as stored, for display: arrays and nested tasks shortened."""
    if is_array(value):
        return f"<array {dtype_name(value.get('dtype'))} {tuple(value.get('shape', ()))}>"
    task = nested_task(value)
    if task is not None:
        return f"{task[0]}({task[1][:8]})"
    return value


def lookup(inputs: dict[str, Any], dotted: str) -> Any:
    """``inputs["a"]["b"]``, stepping into nested tasks' inputs."""
    value: Any = inputs
    for part in dotted.split("."):
        task = nested_task(value)
        if task is not None:
            value = task[2]
        if not isinstance(value, dict) or part not in value:
            raise KeyError(dotted)
        value = value[part]
    return value


def input_columns(records: Iterable[RecordView]) -> list[str]:
    """The dotted input names of ``records``, in order of first appearance."""
    return list(dict.fromkeys(k for r in records for k in flatten_inputs(r.inputs)))


def flatten_inputs(inputs: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Inputs by dotted name; a nested task's own inputs follow its entry."""
    flat: dict[str, Any] = {}
    for name, value in inputs.items():
        key = f"{prefix}{name}"
        task = nested_task(value)
        if task is not None:
            flat[key] = summarize(value)
            flat.update(flatten_inputs(task[2], key + "."))
        else:
            flat[key] = value
    return flat
