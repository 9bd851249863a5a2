"""Parameter sweeps (:class:`ParamColl`, :func:`expand`) and seed streams (:class:`SeedGenerator`).

A ParamColl field may be ``expand([...])`` or ``expand(scipy.stats.norm(0, 1))``; ``outer()``
(Cartesian product) and ``inner()`` (zip) give lazy, sliceable :class:`Sweep` s of plain dicts
for ``task(**params)``. ``Seeds(entropy).data(key...)`` gives an int seed from a named
``SeedSequence`` stream. Draws and seeds are keyed through sha256 (never ``hash()``), so they
agree in every process and on every machine. scipy is needed only to rebuild a stored
distribution. See ``docs/sweeps.md``.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import math
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Annotated, Any, overload

import numpy as np
import pydantic
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

__all__ = ["Expand", "ParamColl", "SeedGenerator", "SeedStream", "Sweep", "expand", "stable_int"]

_TAG = "$expand"
_INFINITE = 2**64  # the stop of an infinite sweep's positions (never reached)


def _key_json(key: Any) -> Any:
    if isinstance(key, bool | np.bool_ | int | np.integer):
        return int(key)
    if isinstance(key, float | np.floating):  # as in a dict, 1.0 is the same key as 1
        return int(key) if float(key).is_integer() else float(key)
    if isinstance(key, str):
        return key
    if isinstance(key, tuple):
        return [_key_json(k) for k in key]
    raise TypeError(f"a seed key must be an int, float, str or a tuple of them, "
                    f"not {type(key).__name__}")


def stable_int(key: Any) -> int:
    """A 128-bit int from a key (int, float, str, nested tuples), equal in every process."""
    text = json.dumps(_key_json(key), separators=(",", ":"), ensure_ascii=False)
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:16], "little")


def _entropy(value: int | str) -> int:
    """SeedSequence entropy: a non-negative int as is, a str through sha256."""
    if isinstance(value, str):
        return int.from_bytes(hashlib.sha256(value.encode("utf-8")).digest(), "little")
    if isinstance(value, int | np.integer) and not isinstance(value, bool) and value >= 0:
        return int(value)
    raise ValueError(f"entropy must be a non-negative int or a str, not {value!r}")


def _plain(value: Any) -> Any:
    """numpy scalars as Python numbers, also in lists and tuples; arrays untouched."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, list | tuple):
        return type(value)(_plain(v) for v in value)
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
            d = _dist_json(self.dist)
        except TypeError:
            return f"expand({self.dist!r})"
        args = [repr(a) for a in d["args"]] + [f"{k}={v!r}" for k, v in d["kwds"].items()]
        return f"expand({d['dist']}({', '.join(args)}))"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Expand) and self._canon() == other._canon()

    def __hash__(self) -> int:
        return hash(self._canon())

    def _canon(self) -> Any:
        from .digest import encode

        try:
            if self.values is None:
                return json.dumps(_dist_json(self.dist), sort_keys=True)
            return json.dumps(encode(list(self.values)), sort_keys=True)
        except TypeError:
            return (id(self.dist), self.values)

    def draw(self, entropy: int, name: str, k: int) -> Any:
        """Draw ``k`` of field ``name``: a function of (entropy, name, k) only."""
        seq = np.random.SeedSequence(entropy, spawn_key=(stable_int(name), k))
        return _plain(self.dist.rvs(random_state=np.random.default_rng(seq)))

    @classmethod
    def parse(cls, value: Any) -> Expand | None:
        """An Expand from itself or its tagged JSON form; None for any other value."""
        if isinstance(value, Mapping) and set(value) == {_TAG}:
            inner = value[_TAG]
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
    values = tuple(_plain(v) if isinstance(v, np.generic) else v for v in source)
    if not values:
        raise ValueError("expand() needs at least one value")
    return Expand(values)


def _dist_json(dist: Any) -> dict[str, Any]:
    gen = getattr(dist, "dist", None)
    name = getattr(gen, "name", None)
    stats = sys.modules.get("scipy.stats")  # imported if dist is a scipy distribution
    if name is None or stats is None or type(getattr(stats, name, None)) is not type(gen):
        raise TypeError(f"cannot serialise {dist!r}: only frozen scipy.stats univariate "
                        "distributions are stored (name, args, kwds)")

    def plain(a: Any) -> Any:
        return a.tolist() if isinstance(a, np.ndarray) else _plain(a)

    return {"dist": name, "args": [plain(a) for a in dist.args],
            "kwds": {k: plain(v) for k, v in sorted(dist.kwds.items())}}


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


@functools.cache
def _adapter(cls: type[BaseModel], name: str) -> TypeAdapter[Any]:
    """Validates one value of a field: its type and constraints (not its field validators)."""
    field = cls.model_fields[name]
    tp: Any = Annotated[(field.annotation, *field.metadata)] if field.metadata \
        else field.annotation
    try:
        return TypeAdapter(tp, config=ConfigDict(arbitrary_types_allowed=True))
    except pydantic.PydanticUserError:  # a BaseModel type brings its own config
        return TypeAdapter(tp)


def _check(cls: type[BaseModel], name: str, value: Any, where: str) -> Any:
    try:
        return _adapter(cls, name).validate_python(value)
    except ValidationError as exc:
        raise ValueError(f"{name}: {where} = {value!r}: {exc.errors()[0]['msg']}") from None


class ParamColl(BaseModel):
    """Parameters of a sweep: subclass with typed fields; values may be :func:`expand` markers.

    ``paramseed`` (an int or str; a subclass may give it a default) seeds the draws from
    distributions and is required when there are any. It is not part of the parameter sets.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    paramseed: Annotated[int, Field(ge=0)] | str | None = None

    @pydantic.model_validator(mode="wrap")
    @classmethod
    def _validate_expanded(cls, data: Any, handler: pydantic.ModelWrapValidatorHandler[Any]) -> Any:
        if not isinstance(data, Mapping):
            return handler(data)
        data = dict(data)
        expanded: dict[str, Expand] = {}
        for name, value in data.items():
            exp = Expand.parse(value) if name in cls.model_fields else None
            if exp is None or name == "paramseed":
                continue
            if exp.values is not None:
                new = Expand([_check(cls, name, v, f"value #{i}")
                              for i, v in enumerate(exp.values)])
                new.sample = new.values[0]  # type: ignore[index]
            else:
                new = Expand(dist=exp.dist)
                draw = _plain(exp.dist.rvs(random_state=np.random.default_rng(0)))
                new.sample = _check(cls, name, draw, "a draw")
            expanded[name] = new
            data[name] = new.sample
        self = handler(data)
        if any(not e.finite for e in expanded.values()) and self.paramseed is None:
            raise ValueError(f"{', '.join(n for n, e in expanded.items() if not e.finite)}: "
                             "draws from a distribution need a seed: pass paramseed=<int>")
        self.__dict__.update(expanded)
        return self

    @pydantic.model_serializer(mode="wrap")
    def _serialize_expanded(self, handler: pydantic.SerializerFunctionWrapHandler,
                            info: pydantic.SerializationInfo) -> Any:
        expanded = self.expanded
        if not expanded:
            return handler(self)
        out = handler(self.model_copy(update={n: e.sample for n, e in expanded.items()}))
        for name, e in expanded.items():
            key = (info.by_alias and type(self).model_fields[name].serialization_alias) or name
            if key in out and info.mode_is_json():  # finite values as the field dumps them
                dump = _adapter(type(self), name).dump_python
                out[key] = {_TAG: _dist_json(e.dist) if e.values is None
                            else [dump(v, mode="json") for v in e.values]}
            elif key in out:
                out[key] = e
        return out

    @property
    def expanded(self) -> dict[str, Expand]:
        """The expanded fields, in declaration order."""
        return {n: v for n, v in self.__dict__.items() if isinstance(v, Expand)}

    def outer(self, *args: int | None) -> Sweep:
        """The Cartesian product of the finite expanded fields (the last varies fastest).

        Random fields draw one value per set. Arguments as for ``slice``: ``outer(10)``.
        """
        finite = [len(e) for e in self.expanded.values() if e.finite]
        if not finite and self.expanded:
            raise ValueError("outer() needs a field with finite values; for draws only, "
                             "use inner(n)")
        return Sweep(self, "outer", range(math.prod(finite)), False)[slice(*args or (None,))]

    def inner(self, *args: int | None) -> Sweep:
        """The expanded fields zipped: set ``k`` takes value ``k`` (or draw ``k``) of each.

        Finite fields must have equal lengths; with draws only the sweep is infinite: give
        a length, ``inner(n)`` or ``inner()[:n]``. Arguments as for ``slice``.
        """
        exps = self.expanded
        lengths = {n: len(e) for n, e in exps.items() if e.finite}
        if len(set(lengths.values())) > 1:
            raise ValueError("inner() needs expanded fields of equal lengths, got "
                             + ", ".join(f"{n}: {k}" for n, k in lengths.items())
                             + "; use outer() for all combinations")
        size = _INFINITE if exps and not lengths else next(iter(lengths.values()), 1)
        return Sweep(self, "inner", range(size), size == _INFINITE)[slice(*args or (None,))]

    def _params(self, kind: str, pos: int) -> dict[str, Any]:
        """Parameter set number ``pos`` of the full outer or inner expansion."""
        exps = self.expanded
        index = dict.fromkeys(exps, pos)
        if kind == "outer":
            for name, e in reversed(exps.items()):
                if e.finite:
                    pos, index[name] = divmod(pos, len(e))
        seed = self.paramseed
        out: dict[str, Any] = {}
        for name, value in self.__dict__.items():
            if isinstance(value, Expand) and value.values is not None:
                value = value.values[index[name]]
            elif isinstance(value, Expand) and seed is not None:
                draw = value.draw(_entropy(seed), name, index[name])
                value = _check(type(self), name, draw, f"draw #{index[name]}")
            out[name] = value
        del out["paramseed"]
        return out


class Sweep(Sequence[dict[str, Any]]):
    """A lazy sequence of parameter sets (plain dicts); slices are Sweeps too."""

    def __init__(self, coll: ParamColl, kind: str, positions: range, infinite: bool) -> None:
        self.coll, self.kind, self.infinite = coll, kind, infinite
        self._positions = positions  # in the full expansion (stop 2**64 when endless)

    def __len__(self) -> int:
        if self.infinite:
            raise TypeError("this sweep draws without end: take a slice, e.g. sweep[:100]")
        return len(self._positions)

    def __bool__(self) -> bool:
        return self.infinite or len(self._positions) > 0

    @overload
    def __getitem__(self, i: int) -> dict[str, Any]: ...
    @overload
    def __getitem__(self, i: slice) -> Sweep: ...

    def __getitem__(self, i: int | slice) -> dict[str, Any] | Sweep:
        if isinstance(i, slice):
            if self.infinite and any(x is not None and x < 0 for x in (i.start, i.stop, i.step)):
                raise ValueError("an endless sweep cannot be sliced from its end")
            infinite = self.infinite and i.stop is None
            return Sweep(self.coll, self.kind, self._positions[i], infinite)
        if self.infinite and i < 0:
            raise IndexError("an endless sweep has no last item")
        return self.coll._params(self.kind, self._positions[i])

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for pos in self._positions:
            yield self.coll._params(self.kind, pos)

    def __repr__(self) -> str:
        size = "endless" if self.infinite else f"{len(self._positions)} sets"
        return f"<Sweep {self.kind} of {type(self.coll).__name__}: {size}>"


class SeedStream:
    """One named stream of a :class:`SeedGenerator`; call it with a key to get a seed."""

    __slots__ = ("entropy", "name")

    def __init__(self, entropy: int, name: str) -> None:
        self.entropy, self.name = entropy, name

    def seedseq(self, *key: Any) -> np.random.SeedSequence:
        """The SeedSequence of this stream and key (one tuple argument = its items)."""
        if len(key) == 1 and isinstance(key[0], tuple):
            key = key[0]
        return np.random.SeedSequence(self.entropy,
                                      spawn_key=(stable_int(self.name), stable_int(key)))

    def __call__(self, *key: Any) -> int:
        """An int seed in [0, 2**32), accepted by every numpy, scipy or sklearn API."""
        return int(self.seedseq(*key).generate_state(1)[0])

    def rng(self, *key: Any) -> np.random.Generator:
        """A numpy Generator seeded with the full state of this stream and key."""
        return np.random.default_rng(self.seedseq(*key))

    def __repr__(self) -> str:
        return f"<SeedStream {self.name!r}>"


class SeedGenerator:
    """Named, independent seed streams: subclass with one annotated name per stream.

    ``class Seeds(SeedGenerator): data: int; noise: int``, then ``Seeds(42).data(trial)``.
    """

    streams: tuple[str, ...] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        names: dict[str, None] = dict.fromkeys(cls.streams)
        for name, ann in inspect.get_annotations(cls).items():
            if name.startswith("_") or name == "streams" or "ClassVar" in str(ann):
                continue
            if name == "entropy":
                raise TypeError(f"{cls.__name__}: {name!r} is reserved, name the stream otherwise")
            names[name] = None
        cls.streams = tuple(names)

    def __init__(self, entropy: int | str) -> None:
        if not self.streams:
            raise TypeError("subclass SeedGenerator with one annotated name per stream, "
                            "e.g. `class Seeds(SeedGenerator): data: int`")
        self.entropy = entropy
        ent = _entropy(entropy)
        for name in self.streams:
            setattr(self, name, SeedStream(ent, name))

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(f"{type(self).__name__} has no seed stream {name!r}; "
                             f"its streams: {', '.join(self.streams)}")

    def __call__(self, *key: Any) -> dict[str, int]:
        """One seed per stream for this key."""
        return {name: getattr(self, name)(*key) for name in self.streams}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.entropy!r})"
