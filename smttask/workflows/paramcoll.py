"""ParamColl: a typed, saveable definition of a sweep; Sweep: its lazy parameter sets.

A field's value is plain, an :func:`~smttask.workflows.expand` marker, or a nested
collection: another ParamColl or a dataclass instance whose fields hold markers. Every
marker, however deep, is one *leaf* of the sweep; ``outer()`` and ``inner()`` combine the
leaves, and a parameter set rebuilds the nested objects with one value per leaf.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import inspect
import math
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Annotated, Any, NamedTuple, overload

import numpy as np
import pydantic
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from ..errors import ParamCollError
from .expand import TAG, Expand, dist_json, plain
from .seeds import entropy_of

__all__ = ["ParamColl", "Sweep"]

_INFINITE = 2**64  # the stop of an infinite sweep's positions (never reached)
_RESERVED = {"keys", "values", "items", "get", "outer", "inner", "expanded"}


def _adapter_of(tp: Any) -> TypeAdapter[Any]:
    try:
        return TypeAdapter(tp, config=ConfigDict(arbitrary_types_allowed=True))
    except pydantic.PydanticUserError:  # a model or dataclass type brings its own config
        return TypeAdapter(tp)


@functools.cache
def _field_adapter(cls: type[BaseModel], name: str) -> TypeAdapter[Any]:
    """Validates one value of a field: its type and constraints (not its field validators)."""
    field = cls.model_fields[name]
    tp: Any = Annotated[(field.annotation, *field.metadata)] if field.metadata \
        else field.annotation
    return _adapter_of(tp)


@functools.cache
def _dc_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls, include_extras=True)


@functools.cache
def _dc_adapter(cls: type, name: str) -> TypeAdapter[Any]:
    return _adapter_of(_dc_types(cls)[name])


def _validator(adapter: TypeAdapter[Any], label: str) -> Callable[[Any, str], Any]:
    def validate(value: Any, where: str) -> Any:
        try:
            return adapter.validate_python(value)
        except ValidationError as exc:
            raise ValueError(f"{label}: {where} = {value!r}: {exc.errors()[0]['msg']}") \
                from None
    return validate


def _validated(exp: Expand, validate: Callable[[Any, str], Any]) -> Expand:
    """A copy of ``exp`` with validated values and a validated sample (a fixed draw)."""
    if exp.values is not None:
        new = Expand([validate(v, f"value #{i}") for i, v in enumerate(exp.values)])
        new.sample = new.values[0]  # type: ignore[index]
    else:
        new = Expand(dist=exp.dist)
        new.sample = validate(plain(exp.dist.rvs(random_state=np.random.default_rng(0))),
                              "a draw")
    return new


def _is_dataclass_value(value: Any) -> bool:
    return dataclasses.is_dataclass(value) and not isinstance(value, type)


def _split(tp: type, value: Any, label: str) -> tuple[Any, dict[tuple[str, ...], Expand]]:
    """A dataclass value of type ``tp`` (an instance, or a dict from JSON) holding markers:
    the same value with each marker's sample instead, and the validated markers by path."""
    is_map = isinstance(value, Mapping)
    samples: dict[str, Any] = {}
    markers: dict[tuple[str, ...], Expand] = {}
    for f in dataclasses.fields(tp):
        if is_map and f.name not in value:
            continue
        item = value[f.name] if is_map else getattr(value, f.name)
        where = f"{label}.{f.name}"
        exp = Expand.parse(item)
        if exp is not None:
            new = _validated(exp, _validator(_dc_adapter(tp, f.name), where))
            markers[(f.name,)], samples[f.name] = new, new.sample
            continue
        sub = _nested_dataclass(_dc_types(tp).get(f.name), item)
        if sub is not None:
            sample, inner = _split(sub, item, where)
            if inner:
                samples[f.name] = sample
                markers.update({(f.name, *path): e for path, e in inner.items()})
    if not markers:
        return value, {}
    return ({**value, **samples} if is_map else dataclasses.replace(value, **samples)), markers


def _nested_dataclass(annotation: Any, value: Any) -> type | None:
    """The dataclass type of ``value`` if it may hold markers (an instance, or a dict for a
    field annotated with a dataclass)."""
    if _is_dataclass_value(value):
        return type(value)
    if isinstance(value, Mapping) and isinstance(annotation, type) and \
            dataclasses.is_dataclass(annotation):
        return annotation
    return None


def _with_markers(obj: Any, markers: dict[tuple[str, ...], Any]) -> Any:
    """A copy of dataclass ``obj`` with ``markers`` (or samples) put back at their paths."""
    obj = copy.copy(obj)
    deeper: dict[str, dict[tuple[str, ...], Any]] = {}
    for path, value in markers.items():
        if len(path) == 1:
            object.__setattr__(obj, path[0], value)
        else:
            deeper.setdefault(path[0], {})[path[1:]] = value
    for name, inner in deeper.items():
        object.__setattr__(obj, name, _with_markers(getattr(obj, name), inner))
    return obj


class _Leaf(NamedTuple):
    """One marker of a sweep: where it is, how to check a value, how its draws are seeded."""

    path: tuple[str, ...]  # field names from the top collection
    exp: Expand
    adapter: TypeAdapter[Any]
    seed: int | str | None  # the paramseed of the collection that seeds its draws
    name: str  # its draws' key: the dotted path within that collection
    own: bool  # not inside a nested ParamColl (which serialises its own markers)

    def value(self, k: int) -> Any:
        """Value (or validated draw) number ``k``."""
        if self.exp.values is not None:
            return self.exp.values[k]
        assert self.seed is not None
        draw = self.exp.draw(entropy_of(self.seed), self.name, k)
        return _validator(self.adapter, ".".join(self.path))(draw, f"draw #{k}")


def _leaves_in(value: Any, path: tuple[str, ...], adapter: TypeAdapter[Any],
               seed: int | str | None) -> Iterator[_Leaf]:
    if isinstance(value, Expand):
        yield _Leaf(path, value, adapter, seed, ".".join(path), True)
    elif isinstance(value, ParamColl):
        for leaf in value._leaves():
            yield leaf._replace(path=path + leaf.path, own=False)
    elif _is_dataclass_value(value):
        dc_type: Any = type(value)
        for f in dataclasses.fields(value):
            yield from _leaves_in(getattr(value, f.name), (*path, f.name),
                                  _dc_adapter(dc_type, f.name), seed)


def _realise(value: Any, chosen: dict[tuple[str, ...], Any], path: tuple[str, ...]) -> Any:
    """``value`` with the chosen value of each leaf under ``path``."""
    if path in chosen:
        return chosen[path]
    if isinstance(value, ParamColl) and value._leaves():
        seed = type(value).model_fields["paramseed"].get_default(call_default_factory=True)
        update = {n: _realise(value.__dict__[n], chosen, (*path, n)) for n in value.keys()}
        return value.model_copy(update={**update, "paramseed": seed})
    if _is_dataclass_value(value):
        update = {f.name: _realise(getattr(value, f.name), chosen, (*path, f.name))
                  for f in dataclasses.fields(value)}
        changed = {n: v for n, v in update.items() if v is not getattr(value, n)}
        return dataclasses.replace(value, **changed) if changed else value
    return value


class ParamColl(BaseModel):
    """Parameters of a sweep: subclass with typed fields; values may be :func:`expand`
    markers, nested ParamColls or dataclass instances holding markers.

    It is a mapping of its fields (``p["σ"]``, ``keys()``, ``dict(**p)``, ``len(p)``).
    ``paramseed`` (an int or str; a subclass may give it a default) seeds the draws from
    distributions and is required when there are any; it is not one of the parameters.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    paramseed: Annotated[int, Field(ge=0)] | str | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in inspect.get_annotations(cls):
            if name in _RESERVED:
                raise ParamCollError(f"{cls.__name__}: {name!r} cannot be a field name (a "
                                     "ParamColl has a method of that name)")

    @pydantic.model_validator(mode="wrap")
    @classmethod
    def _validate_expanded(cls, data: Any, handler: pydantic.ModelWrapValidatorHandler[Any]) -> Any:
        if not isinstance(data, Mapping):
            return handler(data)
        data = dict(data)
        expanded: dict[str, Expand] = {}
        nested: dict[str, dict[tuple[str, ...], Expand]] = {}
        for name, value in data.items():
            if name not in cls.model_fields or name == "paramseed":
                continue
            exp = Expand.parse(value)
            if exp is not None:
                expanded[name] = _validated(exp, _validator(_field_adapter(cls, name), name))
                data[name] = expanded[name].sample
                continue
            tp = _nested_dataclass(cls.model_fields[name].annotation, value)
            if tp is not None:
                data[name], markers = _split(tp, value, name)
                if markers:
                    nested[name] = markers
        self = handler(data)
        self.__dict__.update(expanded)
        for name, markers in nested.items():
            self.__dict__[name] = _with_markers(self.__dict__[name], markers)
        unseeded = [".".join(leaf.path) for leaf in self._leaves()
                    if not leaf.exp.finite and leaf.seed is None]
        if unseeded:
            raise ParamCollError(f"{cls.__name__}: {', '.join(unseeded)} draws from a "
                                 "distribution and needs a seed: pass paramseed=<int or str>")
        return self

    @pydantic.model_serializer(mode="wrap")
    def _serialize_expanded(self, handler: pydantic.SerializerFunctionWrapHandler,
                            info: pydantic.SerializationInfo) -> Any:
        leaves = [leaf for leaf in self._leaves() if leaf.own]
        if not leaves:
            return handler(self)
        samples: dict[str, dict[tuple[str, ...], Any]] = {}
        for leaf in leaves:
            samples.setdefault(leaf.path[0], {})[leaf.path[1:]] = leaf.exp.sample
        update = {n: s[()] if () in s else _with_markers(self.__dict__[n], s)
                  for n, s in samples.items()}
        out = handler(self.model_copy(update=update))
        for leaf in leaves:
            name, *inner = leaf.path
            key = (info.by_alias and type(self).model_fields[name].serialization_alias) or name
            if key not in out:
                continue
            holder, last = out, key
            for part in inner:  # a dataclass dumps as a dict
                holder, last = holder[last], part
            e = leaf.exp
            if info.mode_is_json():  # finite values as the field dumps them
                holder[last] = {TAG: dist_json(e.dist) if e.values is None else
                                [leaf.adapter.dump_python(v, mode="json") for v in e.values]}
            else:
                holder[last] = e
        return out

    def _leaves(self) -> list[_Leaf]:
        """Every marker, in field order (depth first)."""
        cls = type(self)
        return [leaf for name in self.keys() for leaf in _leaves_in(
            self.__dict__[name], (name,), _field_adapter(cls, name), self.paramseed)]

    # --- a mapping of the parameters --------------------------------------------------------

    def keys(self) -> list[str]:
        """The parameter names (the fields, without ``paramseed``)."""
        return [n for n in type(self).model_fields if n != "paramseed"]

    def values(self) -> list[Any]:
        return [self.__dict__[n] for n in self.keys()]

    def items(self) -> list[tuple[str, Any]]:
        return [(n, self.__dict__[n]) for n in self.keys()]

    def get(self, name: str, default: Any = None) -> Any:
        return self[name] if name in self else default

    def __getitem__(self, name: str) -> Any:
        if name == "paramseed" or name not in type(self).model_fields:
            raise KeyError(name)
        return self.__dict__[name]

    def __iter__(self) -> Iterator[str]:  # type: ignore[override]
        return iter(self.keys())

    def __len__(self) -> int:
        return len(type(self).model_fields) - 1

    def __contains__(self, name: object) -> bool:
        return name != "paramseed" and name in type(self).model_fields

    # --- sweeps -----------------------------------------------------------------------------

    @property
    def expanded(self) -> dict[str, Expand]:
        """The markers by dotted path (``"model.λ"`` for a nested one), in field order."""
        return {".".join(leaf.path): leaf.exp for leaf in self._leaves()}

    def outer(self, *args: int | None) -> Sweep:
        """The Cartesian product of the finite expanded fields (the last varies fastest).

        Random fields draw one value per set. Arguments as for ``slice``: ``outer(10)``.
        """
        leaves = self._leaves()
        finite = [len(leaf.exp) for leaf in leaves if leaf.exp.finite]
        if not finite and leaves:
            raise ValueError("outer() needs a field with finite values; for draws only, "
                             "use inner(n)")
        return Sweep(self, "outer", range(math.prod(finite)), False)[slice(*args or (None,))]

    def inner(self, *args: int | None) -> Sweep:
        """The expanded fields zipped: set ``k`` takes value ``k`` (or draw ``k``) of each.

        Finite fields must have equal lengths; with draws only the sweep is infinite: give
        a length, ``inner(n)`` or ``inner()[:n]``. Arguments as for ``slice``.
        """
        leaves = self._leaves()
        lengths = {".".join(leaf.path): len(leaf.exp) for leaf in leaves if leaf.exp.finite}
        if len(set(lengths.values())) > 1:
            raise ValueError("inner() needs expanded fields of equal lengths, got "
                             + ", ".join(f"{n}: {k}" for n, k in lengths.items())
                             + "; use outer() for all combinations")
        size = _INFINITE if leaves and not lengths else next(iter(lengths.values()), 1)
        return Sweep(self, "inner", range(size), size == _INFINITE)[slice(*args or (None,))]

    def _params(self, kind: str, pos: int, leaves: list[_Leaf]) -> dict[str, Any]:
        """Parameter set number ``pos`` of the full outer or inner expansion."""
        index = [pos] * len(leaves)
        if kind == "outer":
            for i in reversed(range(len(leaves))):
                if leaves[i].exp.finite:
                    pos, index[i] = divmod(pos, len(leaves[i].exp))
        chosen = {leaf.path: leaf.value(k) for leaf, k in zip(leaves, index, strict=True)}
        return {n: _realise(self.__dict__[n], chosen, (n,)) for n in self.keys()}


class Sweep(Sequence[dict[str, Any]]):
    """A lazy sequence of parameter sets (plain dicts); slices are Sweeps too."""

    def __init__(self, coll: ParamColl, kind: str, positions: range, infinite: bool,
                 leaves: list[_Leaf] | None = None) -> None:
        self.coll, self.kind, self.infinite = coll, kind, infinite
        self._positions = positions  # in the full expansion (stop 2**64 when endless)
        self._leaves = coll._leaves() if leaves is None else leaves

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
            return Sweep(self.coll, self.kind, self._positions[i], infinite, self._leaves)
        if self.infinite and i < 0:
            raise IndexError("an endless sweep has no last item")
        return self.coll._params(self.kind, self._positions[i], self._leaves)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for pos in self._positions:
            yield self.coll._params(self.kind, pos, self._leaves)

    def __repr__(self) -> str:
        size = "endless" if self.infinite else f"{len(self._positions)} sets"
        return f"<Sweep {self.kind} of {type(self.coll).__name__}: {size}>"
