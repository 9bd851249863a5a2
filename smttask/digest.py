"""Canonical encoding of validated task inputs, and the task digest (scheme v1).

The digest says "this result can be reused": equal digests for equal validated inputs,
in every process, on every machine, with any Python or numpy version. The encoding:

- the document is ``{"scheme": "smttask-digest/1", "task": <name>, "inputs": {...}}``
  (plus ``"version"`` when the task declares one), as JSON with sorted keys, compact
  separators and UTF-8 (no ASCII escaping);
- floats use the shortest round-trip repr; ``-0.0`` stays distinct from ``0.0``; every
  NaN is ``NaN``; infinities are ``Infinity`` / ``-Infinity``;
- lists are JSON arrays; tuples are ``{"$tuple": [...]}`` (so they only agree with lists
  when the declared type converts one into the other); sets and frozensets are
  ``{"$set": [...]}`` sorted by each item's canonical text;
- dicts with string keys are objects (key order never matters; a key starting with
  ``$`` gets one more ``$``, so no dict can pass for a tagged value); other dicts are
  ``{"$dict": [[key, value], ...]}`` sorted by the canonical text of the key;
- arrays are never hashed as text: ``{"$ndarray": [dtype.str, shape, xxh3-128 hex]}``
  over the C-contiguous bytes;
- an upstream task is ``{"$task": <name>, "digest": <its full digest>}``;
- numpy scalars become Python numbers; bytes are ``{"$bytes": base64}``; dtypes
  ``{"$dtype": ...}``; numpy Generators ``{"$rng": state}``; pydantic models
  ``{"$model": qualname, "fields": {...}}``; enums their value; paths, dates, UUIDs and
  decimals their string form tagged by type;
- dataclass instances are ``{"$dataclass": qualname, "fields": {...}}`` (the fields that
  take part in ``==``); a value whose class has a ``__smttask_digest__()`` method returning
  ``(tag, payload)`` is ``{"$<tag>": <payload encoded>}`` (a sweep's ``expand`` markers:
  ``{"$expand": [values]}`` or ``{"$expand": {"dist", "args", "kwds"}}``). Neither could
  be digested before, so no existing digest changed when they were added.

The digest is the first 20 hex characters (80 bits) of the xxh3-128 of that text.
Unhashed inputs (an iterative task's step count) are appended: ``<hash>__n_3``.
Changing any of this is a scheme-version bump (see CHANGELOG and ``tests/golden``).
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as _dt
import decimal
import enum
import json
import uuid
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any, Protocol

import numpy as np
import xxhash

__all__ = [
    "DIGEST_LENGTH",
    "SCHEME",
    "Upstream",
    "array_fingerprint",
    "canonical",
    "compute",
    "encode",
]

SCHEME = "smttask-digest/1"
DIGEST_LENGTH = 20

def _make_dumps() -> Any:
    """Canonical JSON text: sorted keys, compact separators, no ASCII escaping, NaN allowed."""
    encoder = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                               allow_nan=True)
    c_make_encoder = getattr(json.encoder, "c_make_encoder", None)
    if c_make_encoder is None:  # pragma: no cover - pure-Python json
        return encoder.encode
    # The C encoder the stdlib builds on every call, built once (the same output).
    c_encoder = c_make_encoder(None, None, json.encoder.encode_basestring, None, ":", ",",
                               True, False, True)
    return lambda obj: "".join(c_encoder(obj, 0))


_dumps = _make_dumps()


def array_fingerprint(arr: np.ndarray) -> list[Any]:
    """``[dtype.str, shape, xxh3-128 hex]`` of an array's C-contiguous bytes."""
    if arr.dtype.hasobject:
        raise TypeError("object arrays cannot be hashed")
    from .typing import dtype_to_json

    data = arr if arr.flags.c_contiguous else np.ascontiguousarray(arr)
    return [dtype_to_json(arr.dtype), list(arr.shape),
            xxhash.xxh3_128_hexdigest(data)]  # type: ignore[arg-type]


def _float(x: float) -> float:
    # The JSON encoder writes floats as their shortest round-trip repr, keeps the sign of
    # -0.0, and spells every NaN (whatever its sign or payload) "NaN".
    return float(x)


def encode(value: Any) -> Any:
    """The canonical, JSON-ready form of one validated value."""
    # Hot path first: the JSON scalars and containers.
    t = type(value)
    if t is str or t is int or t is float or t is bool or value is None:
        return value
    if t is list:
        return [encode(v) for v in value]
    if t is tuple:
        return {"$tuple": [encode(v) for v in value]}
    if t is dict and all(type(k) is str for k in value):
        return {_key(k): encode(v) for k, v in value.items()}
    return _encode_other(value)


class Upstream(Protocol):
    """What the digest needs of an upstream task: its name and its digest. A task class
    says it is one with a true ``__smttask_task__`` class attribute."""

    __smttask_task__: bool
    taskname: str

    @property
    def digest(self) -> str: ...


def _encode_other(value: Any) -> Any:
    if getattr(value, "__smttask_task__", False):
        return {"$task": value.taskname, "digest": value.digest}
    if isinstance(value, np.ndarray):
        return {"$ndarray": array_fingerprint(value)}
    if isinstance(value, enum.Enum):
        return encode(value.value)
    if isinstance(value, bool | int | str):  # subclasses
        return encode(_builtin(value))
    if isinstance(value, float):
        return _float(float(value))
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return _float(float(value))
    if isinstance(value, np.complexfloating | complex):
        return {"$complex": [_float(float(value.real)), _float(float(value.imag))]}
    if isinstance(value, tuple):
        return {"$tuple": [encode(v) for v in value]}
    if isinstance(value, list):
        return [encode(v) for v in value]
    if isinstance(value, set | frozenset):
        items = [encode(v) for v in value]
        return {"$set": sorted(items, key=_dumps)}
    if isinstance(value, Mapping):
        if all(isinstance(k, str) for k in value):
            return {_key(str(k)): encode(v) for k, v in value.items()}
        pairs = [[encode(k), encode(v)] for k, v in value.items()]
        return {"$dict": sorted(pairs, key=lambda kv: _dumps(kv[0]))}
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$bytes": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, np.dtype):
        from .typing import dtype_to_json

        return {"$dtype": dtype_to_json(value)}
    if isinstance(value, np.random.Generator):
        from .typing import rng_state

        return {"$rng": encode(rng_state(value))}
    if isinstance(value, PurePath):
        return {"$path": value.as_posix()}
    if isinstance(value, _dt.datetime | _dt.date | _dt.time):
        return {"$" + type(value).__name__: value.isoformat()}
    if isinstance(value, _dt.timedelta):
        return {"$timedelta": [value.days, value.seconds, value.microseconds]}
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return {"$" + type(value).__name__.lower(): str(value)}
    from pydantic import BaseModel

    if isinstance(value, BaseModel):
        fields = {name: encode(getattr(value, name)) for name in type(value).model_fields}
        return {"$model": type(value).__qualname__, "fields": fields}
    # Types added after scheme v1 was fixed: none of them had a digest before.
    own = getattr(type(value), "__smttask_digest__", None)
    if own is not None:
        tag, payload = own(value)
        return {"$" + tag: encode(payload)}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: encode(getattr(value, f.name))
                  for f in dataclasses.fields(value) if f.compare}
        return {"$dataclass": type(value).__qualname__, "fields": fields}
    raise TypeError(
        f"cannot compute a digest of a {type(value).__qualname__} value; use a JSON-like "
        "type, a numpy array, a pydantic model or a dataclass"
    )


def _key(key: str) -> str:
    """User keys starting with '$' get one more, so no dict can pass for a tagged value."""
    return "$" + key if key.startswith("$") else key


def _builtin(value: Any) -> Any:
    for base in (bool, int, str):
        if isinstance(value, base):
            return base(value)
    return value  # pragma: no cover


def canonical(taskname: str, inputs: Mapping[str, Any], version: str | None = None) -> str:
    """The canonical JSON text that the digest hashes."""
    doc: dict[str, Any] = {
        "scheme": SCHEME,
        "task": taskname,
        "inputs": {name: encode(v) for name, v in inputs.items()},
    }
    if version is not None:
        doc["version"] = version
    return _dumps(doc)


def compute(
    taskname: str,
    inputs: Mapping[str, Any],
    version: str | None = None,
    unhashed: Mapping[str, Any] | None = None,
) -> str:
    """The task digest: 20 hex characters, then ``__<name>_<value>`` per unhashed input."""
    text = canonical(taskname, inputs, version)
    digest = xxhash.xxh3_128_hexdigest(text.encode("utf-8", "surrogatepass"))[:DIGEST_LENGTH]
    if unhashed:
        digest += "".join(f"__{name}_{value}" for name, value in unhashed.items())
    return digest
