"""Seed streams: :class:`SeedGenerator`, one named, independent :class:`SeedStream` per field.

A stream's seeds are keyed through sha256 (never ``hash()``), so they agree in every
process and on every machine.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import re
import sys
import typing
from typing import Any

import numpy as np

__all__ = ["SeedGenerator", "SeedStream", "entropy_of", "stable_int"]


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


def entropy_of(value: int | str) -> int:
    """SeedSequence entropy: a non-negative int as is, a str through sha256."""
    if isinstance(value, str):
        return int.from_bytes(hashlib.sha256(value.encode("utf-8")).digest(), "little")
    if isinstance(value, int | np.integer) and not isinstance(value, bool) and value >= 0:
        return int(value)
    raise ValueError(f"entropy must be a non-negative int or a str, not {value!r}")


class SeedStream:
    """One named stream of a :class:`SeedGenerator`; call it with a key to get a seed."""

    __slots__ = ("entropy", "name", "size")

    def __init__(self, entropy: int, name: str, size: int | None = None) -> None:
        self.entropy, self.name = entropy, name
        #: None: one int per key; n: a tuple of n ints (a ``Tuple[int, ...]`` annotation).
        self.size = size

    def seedseq(self, *key: Any) -> np.random.SeedSequence:
        """The SeedSequence of this stream and key (one tuple argument = its items)."""
        if len(key) == 1 and isinstance(key[0], tuple):
            key = key[0]
        return np.random.SeedSequence(self.entropy,
                                      spawn_key=(stable_int(self.name), stable_int(key)))

    def __call__(self, *key: Any) -> Any:
        """An int seed in [0, 2**32), accepted by every numpy, scipy or sklearn API (a
        tuple of them for a stream annotated ``Tuple[int, int]``)."""
        words = self.seedseq(*key).generate_state(self.size or 1)
        return int(words[0]) if self.size is None else tuple(int(w) for w in words)

    def rng(self, *key: Any) -> np.random.Generator:
        """A numpy Generator seeded with the full state of this stream and key."""
        return np.random.default_rng(self.seedseq(*key))

    def __repr__(self) -> str:
        return f"<SeedStream {self.name!r}>"


_TEXT_TUPLE = re.compile(r"(?:typing\.)?[Tt]uple\[(.*)\]")


def _size(owner: str, name: str, ann: Any, namespace: dict[str, Any]) -> int | None:
    """None for an ``int`` stream, n for a ``Tuple[int, ...]`` of n ints."""
    args: list[Any] | None = None
    if isinstance(ann, str):  # a postponed annotation: evaluate it, or read its spelling
        try:
            ann = eval(ann, namespace)
        except NameError:
            text = ann.replace(" ", "")
            m = _TEXT_TUPLE.fullmatch(text)
            ann = int if text == "int" else ann
            args = [int if a == "int" else ... if a == "..." else a
                    for a in m[1].split(",")] if m else None
    if ann is int:
        return None
    if args is None and typing.get_origin(ann) is tuple:
        args = list(typing.get_args(ann))
    if args and ... in args:
        raise TypeError(f"{owner}: stream {name!r}: a tuple of seeds needs a fixed length, "
                        "e.g. Tuple[int, int]")
    if args and all(a is int for a in args):
        return len(args)
    raise TypeError(f"{owner}: stream {name!r}: annotate it int (one seed) or Tuple[int, int] "
                    f"(a pair, or more ints), not {ann!r}")


class SeedGenerator:
    """Named, independent seed streams: subclass with one annotated name per stream.

    ``class Seeds(SeedGenerator): data: int; noise: Tuple[int, int]``, then
    ``Seeds(42).data(trial)`` is an int and ``Seeds(42).noise(trial)`` a pair of ints.
    """

    streams: typing.ClassVar[tuple[str, ...]] = ()
    _sizes: typing.ClassVar[dict[str, int | None]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        sizes = dict(cls._sizes)
        namespace = dict(vars(sys.modules.get(cls.__module__, typing)))
        for name, ann in inspect.get_annotations(cls).items():
            if name.startswith("_") or "ClassVar" in str(ann):
                continue
            if name in ("entropy", "streams"):
                raise TypeError(f"{cls.__name__}: {name!r} is reserved, name the stream "
                                "otherwise")
            sizes[name] = _size(cls.__name__, name, ann, namespace)
        cls._sizes = sizes
        cls.streams = tuple(sizes)

    def __init__(self, entropy: int | str) -> None:
        if not self.streams:
            raise TypeError("subclass SeedGenerator with one annotated name per stream, "
                            "e.g. `class Seeds(SeedGenerator): data: int`")
        self.entropy = entropy
        ent = entropy_of(entropy)
        for name, size in self._sizes.items():
            setattr(self, name, SeedStream(ent, name, size))

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(f"{type(self).__name__} has no seed stream {name!r}; "
                             f"its streams: {', '.join(self.streams)}")

    def __call__(self, *key: Any) -> dict[str, Any]:
        """One seed (or tuple of seeds) per stream for this key."""
        return {name: getattr(self, name)(*key) for name in self.streams}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.entropy!r})"
