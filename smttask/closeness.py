"""Compare a recomputed output with the recorded one: equal (within a tolerance) or not.

Values are walked together: arrays element by element, numbers with ``rtol``/``atol``
(``|new - recorded| <= atol + rtol * |recorded|``, NaN equal to NaN), mappings by key,
sequences by position, pydantic models and dataclasses by field, anything else with
``==``. A difference says where the first differing element is, both values there, and
the largest absolute and relative differences over every compared number.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Difference", "compare"]


@dataclass
class Difference:
    """How a recomputed value differs from the recorded one."""

    where: str  # the first differing element, e.g. ``result[3]`` or ``result.mean``
    recorded: str  # that element as recorded (shortened repr)
    new: str  # that element now
    differing: int = 0  # how many compared numbers or elements differ
    compared: int = 0  # how many were compared
    max_abs: float | None = None  # over every compared number
    max_rel: float | None = None

    def describe(self) -> str:
        """One line: where, both values, how many differ, the largest differences."""
        text = f"first difference at {self.where}: {self.recorded} recorded, {self.new} now"
        if self.compared > 1:
            text += f"; {self.differing} of {self.compared} elements differ"
        if self.max_abs is not None:
            text += f"; max abs diff {self.max_abs:.3g}"
        if self.max_rel is not None:
            text += f", max rel diff {self.max_rel:.3g}"
        return text


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


class _Walk:
    """Accumulates what :func:`compare` finds while walking both values."""

    def __init__(self, rtol: float, atol: float) -> None:
        self.rtol, self.atol = rtol, atol
        self.first: tuple[str, str, str] | None = None
        self.differing = self.compared = 0
        self.max_abs: float | None = None
        self.max_rel: float | None = None

    def mismatch(self, where: str, recorded: str, new: str, count: int = 1) -> None:
        self.differing += count
        if self.first is None:
            self.first = (where, recorded, new)

    def _track(self, abs_diff: float, rel_diff: float) -> None:
        self.max_abs = abs_diff if self.max_abs is None else max(self.max_abs, abs_diff)
        self.max_rel = rel_diff if self.max_rel is None else max(self.max_rel, rel_diff)

    def number(self, where: str, a: float | complex, b: float | complex) -> None:
        self.compared += 1
        if isinstance(a, complex) or isinstance(b, complex):
            nan = any(math.isnan(x) for x in (a.real, a.imag, b.real, b.imag))
        else:
            nan = math.isnan(a) or math.isnan(b)
        if nan:
            if not (a != a and b != b):  # NaN only on one side
                self.mismatch(where, _short(a), _short(b))
            return
        diff = abs(b - a)
        if diff == 0:
            self._track(0.0, 0.0)
            return
        rel = diff / abs(a) if a != 0 else math.inf
        self._track(diff, rel)
        if not diff <= self.atol + self.rtol * abs(a):
            self.mismatch(where, _short(a), _short(b))

    def array(self, where: str, a: Any, b: Any) -> None:
        import numpy as np

        a, b = np.asarray(a), np.asarray(b)
        if a.shape != b.shape:
            self.compared += 1
            self.mismatch(where, f"shape {a.shape}", f"shape {b.shape}")
            return
        self.compared += a.size
        numeric = all(np.issubdtype(x.dtype, np.number) or x.dtype == bool for x in (a, b))
        if not numeric:
            bad = a != b
        else:
            af = a.astype(np.complex128 if np.iscomplexobj(a) or np.iscomplexobj(b)
                          else np.float64)
            bf = b.astype(af.dtype)
            with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
                diff = np.abs(bf - af)
                both_nan = np.isnan(af) & np.isnan(bf)
                diff = np.where(both_nan, 0.0, diff)
                rel = np.where(diff == 0, 0.0, diff / np.abs(af))
            finite = ~np.isnan(diff)
            if finite.any():
                self._track(float(np.max(diff[finite])), float(np.max(rel[finite])))
            bad = ~(diff <= self.atol + self.rtol * np.abs(af))
        n = int(np.count_nonzero(bad))
        if n:
            index = tuple(int(i) for i in np.argwhere(bad)[0])
            shown = f"{where}[{', '.join(map(str, index))}]" if index else where
            self.mismatch(shown, _short(a[index].item()), _short(b[index].item()), n)

    def value(self, where: str, a: Any, b: Any) -> None:
        import numpy as np

        if isinstance(a, np.ndarray | np.generic) or isinstance(b, np.ndarray | np.generic):
            self.array(where, a, b)
        elif _is_number(a) and _is_number(b):
            self.number(where, a, b)
        elif isinstance(a, Mapping) and isinstance(b, Mapping):
            if set(a) != set(b):
                self.compared += 1
                self.mismatch(where, f"keys {sorted(map(str, a))}", f"keys {sorted(map(str, b))}")
                return
            for key in a:
                self.value(f"{where}[{key!r}]", a[key], b[key])
        elif _is_sequence(a) and _is_sequence(b):
            if len(a) != len(b):
                self.compared += 1
                self.mismatch(where, f"length {len(a)}", f"length {len(b)}")
                return
            for i, (x, y) in enumerate(zip(a, b, strict=True)):
                self.value(f"{where}[{i}]", x, y)
        elif (fields := _fields(a)) is not None and type(a) is type(b):
            other = _fields(b) or {}
            for key, x in fields.items():
                self.value(f"{where}.{key}", x, other.get(key))
        else:
            self.compared += 1
            if not _equal(a, b):
                self.mismatch(where, _short(a), _short(b))


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float | complex) and not isinstance(x, bool)


def _is_sequence(x: Any) -> bool:
    return isinstance(x, Sequence) and not isinstance(x, str | bytes | bytearray)


def _fields(x: Any) -> dict[str, Any] | None:
    """The fields of a pydantic model or a dataclass instance, else None."""
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return {f.name: getattr(x, f.name) for f in dataclasses.fields(x)}
    model_fields = getattr(type(x), "model_fields", None)
    if isinstance(model_fields, dict):
        return {name: getattr(x, name) for name in model_fields}
    return None


def _equal(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except (TypeError, ValueError):  # objects whose == does not give a truth value
        return repr(a) == repr(b)


def compare(recorded: Any, new: Any, *, rtol: float = 0.0, atol: float = 0.0,
            name: str = "result") -> Difference | None:
    """None if ``new`` equals ``recorded`` within ``rtol``/``atol``, else the difference."""
    walk = _Walk(rtol, atol)
    walk.value(name, recorded, new)
    if walk.first is None:
        return None
    where, a, b = walk.first
    return Difference(where, a, b, walk.differing, walk.compared, walk.max_abs, walk.max_rel)
