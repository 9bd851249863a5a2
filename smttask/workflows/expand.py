"""``expand(...)``: the values a :class:`~smttask.workflows.ParamColl` field takes in a sweep.

A finite sequence, or a frozen scipy distribution to draw from. In JSON an expansion is
``{"$expand": [values...]}`` or ``{"$expand": {"dist": name, "args": [...], "kwds": {...}}}``;
in a digest it is encoded from that same definition (values, distribution, parameters).
scipy is needed only to rebuild a stored distribution.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from .seeds import stable_int

__all__ = ["TAG", "Expand", "dist_json", "expand", "plain"]

TAG = "$expand"


def plain(value: Any) -> Any:
    """numpy scalars as Python numbers, also in lists and tuples; arrays untouched."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, list | tuple):
        return type(value)(plain(v) for v in value)
    return value


class Expand:
    """The values a :class:`ParamColl` field takes in a sweep; made by :func:`expand`."""

    __slots__ = ("dist", "sample", "values")

    def __init__(self, values: Sequence[Any] | None = None, dist: Any = None) -> None:
        self.values: tuple[Any, ...] | None = None if values is None else tuple(values)
        self.dist = dist  # the frozen scipy distribution, when values is None
        self.sample: Any = None  # a validated value (the first, or a fixed draw)

    @property
    def finite(self) -> bool:
        return self.values is not None

    def __len__(self) -> int:
        if self.values is None:
            raise TypeError("a distribution has no length")
        return len(self.values)

    def __repr__(self) -> str:
        if self.values is not None:
            return f"expand({list(self.values)!r})"
        try:
            d = dist_json(self.dist)
        except TypeError:
            return f"expand({self.dist!r})"
        args = [repr(a) for a in d["args"]] + [f"{k}={v!r}" for k, v in d["kwds"].items()]
        return f"expand({d['dist']}({', '.join(args)}))"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Expand) and self._canon() == other._canon()

    def __hash__(self) -> int:
        return hash(self._canon())

    def __smttask_digest__(self) -> tuple[str, Any]:
        """What the task digest encodes: the values, or the distribution with its
        parameters (a TypeError for a distribution that cannot be stored)."""
        if self.values is None:
            return "expand", dist_json(self.dist)
        return "expand", list(self.values)

    def _canon(self) -> Any:
        from ..digest import encode

        try:
            if self.values is None:
                return json.dumps(dist_json(self.dist), sort_keys=True)
            return json.dumps(encode(list(self.values)), sort_keys=True)
        except TypeError:
            return (id(self.dist), self.values)

    def draw(self, entropy: int, name: str, k: int) -> Any:
        """Draw ``k`` of field ``name``: a function of (entropy, name, k) only."""
        seq = np.random.SeedSequence(entropy, spawn_key=(stable_int(name), k))
        return plain(self.dist.rvs(random_state=np.random.default_rng(seq)))

    @classmethod
    def parse(cls, value: Any) -> Expand | None:
        """An Expand from itself or its tagged JSON form; None for any other value."""
        if isinstance(value, Mapping) and set(value) == {TAG}:
            inner = value[TAG]
            return expand(_dist_from_json(inner) if isinstance(inner, Mapping) else inner)
        return value if isinstance(value, Expand) else None


def expand(source: Iterable[Any] | Any) -> Expand:
    """Mark a field's values: a finite sequence, or a frozen scipy distribution to draw from."""
    if isinstance(source, Expand):
        return source
    if callable(getattr(source, "rvs", None)):
        return Expand(dist=source)
    if isinstance(source, str | bytes | Mapping | set | frozenset) or not isinstance(
            source, Iterable):
        raise TypeError(f"expand() takes a sequence of values or a scipy distribution, not a "
                        f"{type(source).__name__} (sets have no order: pass sorted(...))")
    values = tuple(plain(v) if isinstance(v, np.generic) else v for v in source)
    if not values:
        raise ValueError("expand() needs at least one value")
    return Expand(values)


def dist_json(dist: Any) -> dict[str, Any]:
    """A frozen scipy.stats univariate distribution as ``{"dist", "args", "kwds"}``."""
    gen = getattr(dist, "dist", None)
    name = getattr(gen, "name", None)
    stats = sys.modules.get("scipy.stats")  # imported if dist is a scipy distribution
    if name is None or stats is None or type(getattr(stats, name, None)) is not type(gen):
        raise TypeError(f"cannot serialise {dist!r}: only frozen scipy.stats univariate "
                        "distributions are stored (name, args, kwds)")

    def number(a: Any) -> Any:
        return a.tolist() if isinstance(a, np.ndarray) else plain(a)

    return {"dist": name, "args": [number(a) for a in dist.args],
            "kwds": {k: number(v) for k, v in sorted(dist.kwds.items())}}


def _dist_from_json(data: Mapping[str, Any]) -> Any:
    try:
        import scipy.stats as stats
    except ImportError:
        raise ImportError("rebuilding a distribution needs scipy: pip install scipy") from None
    name = data.get("dist")
    gen = getattr(stats, name, None) if isinstance(name, str) else None
    if not isinstance(gen, stats.rv_continuous | stats.rv_discrete):
        raise ValueError(f"{name!r} is not a scipy.stats univariate distribution")
    return gen(*data.get("args", ()), **data.get("kwds", {}))
