"""Scientific types for task inputs and outputs, as pydantic v2 types.

- ``Array``: a numpy array. ``Array[np.float64]`` fixes the dtype, ``Array[float, 2]`` the
  dtype and the number of dimensions. Accepts an ndarray (kept without copying when it
  already fits) or nested lists. In JSON it is ``{"dtype", "shape", "npy"}`` where ``npy``
  is the base64 of the array's ``.npy`` bytes, so values, NaN payloads and byte order
  round-trip exactly.
- ``DType``: a numpy dtype, written as its ``dtype.str`` (a dict when structured).
- ``RNGenerator``: a ``numpy.random.Generator``, written as its bit generator's state.
  Validation copies the generator, so a task never advances the caller's generator.
- ``separate_outputs(item_type, get_names)``: an output of variable length whose items
  are saved as separate files, named by ``get_names`` from the task's inputs.
"""

from __future__ import annotations

import base64
import inspect
import io
from collections.abc import Callable, Iterable
from typing import Annotated, Any

import numpy as np
from pydantic import GetCoreSchemaHandler
from pydantic_core import PydanticCustomError, core_schema

__all__ = [
    "Array",
    "DType",
    "RNGenerator",
    "SeparateOutputs",
    "dtype_from_json",
    "dtype_to_json",
    "is_array_type",
    "rng_state",
    "separate_outputs",
]


class ArraySpec:
    """Validation rules of one ``Array[...]`` parametrisation."""

    __slots__ = ("dtype", "ndim")

    def __init__(self, dtype: np.dtype | None = None, ndim: int | None = None) -> None:
        self.dtype = dtype
        self.ndim = ndim

    def __repr__(self) -> str:
        return f"ArraySpec(dtype={self.dtype}, ndim={self.ndim})"

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            self.validate,
            serialization=core_schema.plain_serializer_function_ser_schema(
                array_to_json, when_used="json"
            ),
        )

    def validate(self, value: Any) -> np.ndarray:
        if isinstance(value, dict) and "npy" in value:
            arr = array_from_json(value)
        elif isinstance(value, dict):
            raise PydanticCustomError("array", "an array object needs its npy data")
        elif isinstance(value, np.ndarray):
            arr = value
        else:
            try:
                arr = np.asarray(value)  # then cast below, only where it is safe
            except (ValueError, TypeError, OverflowError) as exc:
                raise PydanticCustomError("array", "cannot convert to an array: {err}",
                                          {"err": str(exc)}) from None
        if arr.dtype.hasobject:
            raise PydanticCustomError("array", "object arrays are not supported")
        if self.dtype is not None and arr.dtype != self.dtype:
            if not np.can_cast(arr.dtype, self.dtype, "same_kind"):
                raise PydanticCustomError(
                    "array_dtype", "expected dtype {want}, got {got}",
                    {"want": str(self.dtype), "got": str(arr.dtype)},
                )
            arr = arr.astype(self.dtype)
        if self.ndim is not None and arr.ndim != self.ndim:
            raise PydanticCustomError(
                "array_ndim", "expected {want} dimension(s), got {got}",
                {"want": self.ndim, "got": arr.ndim},
            )
        return arr


def array_to_json(arr: np.ndarray) -> dict[str, Any]:
    """``{"dtype", "shape", "npy"}``: the .npy bytes in base64, dtype and shape for readers."""
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return {
        "dtype": dtype_to_json(arr.dtype),
        "shape": list(arr.shape),
        "npy": base64.b64encode(buf.getbuffer()).decode("ascii"),
    }


def array_from_json(data: dict[str, Any]) -> np.ndarray:
    """The array of ``{"npy", "dtype"?, "shape"?}``; PydanticCustomError when it is not one.

    The ``.npy`` header is checked against the number of data bytes before anything is
    allocated, so a short file claiming a huge shape is refused, not loaded.
    """
    npy = data["npy"]
    if not isinstance(npy, str):
        raise PydanticCustomError("array", "npy must be a base64 string")
    try:
        raw = base64.b64decode(npy, validate=True)
    except ValueError as exc:  # binascii.Error
        raise PydanticCustomError("array", "invalid npy data: {err}", {"err": str(exc)}) from None
    arr = _npy_array(raw)
    if "dtype" in data:
        try:
            declared = dtype_from_json(data["dtype"])
        except ValueError as exc:
            raise PydanticCustomError("array", "invalid dtype: {err}", {"err": str(exc)}) from None
        if declared != arr.dtype:
            raise PydanticCustomError("array", "npy data does not match the declared dtype")
    shape = data.get("shape", list(arr.shape))
    if not isinstance(shape, list) or shape != list(arr.shape):
        raise PydanticCustomError("array", "npy data does not match the declared shape")
    return arr


_NPY_MAGIC = b"\x93NUMPY"
_NPY_HEADER = {1: ("<H", "latin1"), 2: ("<I", "latin1"), 3: ("<I", "utf8")}


def _npy_array(raw: bytes) -> np.ndarray:
    """The array in ``.npy`` bytes, read without pickle and without trusting the header."""
    import ast
    import struct

    def invalid(err: str) -> PydanticCustomError:
        return PydanticCustomError("array", "invalid npy data: {err}", {"err": err})

    if raw[:6] != _NPY_MAGIC or len(raw) < 10 or raw[6] not in _NPY_HEADER:
        raise invalid("not .npy bytes (or an unknown .npy version)")
    size_format, encoding = _NPY_HEADER[raw[6]]
    start = 8 + struct.calcsize(size_format)
    if len(raw) < start:
        raise invalid("truncated header")
    (length,) = struct.unpack_from(size_format, raw, 8)
    if length > 10_000 or len(raw) < start + length:
        raise invalid("header too long or truncated")
    try:
        header = ast.literal_eval(raw[start:start + length].decode(encoding))
        descr, fortran, shape = header["descr"], header["fortran_order"], header["shape"]
        dtype = np.lib.format.descr_to_dtype(descr)
    except (ValueError, SyntaxError, TypeError, KeyError, IndexError, MemoryError,
            RecursionError, UnicodeDecodeError) as exc:
        raise invalid(f"bad header: {type(exc).__name__}") from None
    if not (isinstance(shape, tuple) and all(type(n) is int and n >= 0 for n in shape)
            and isinstance(fortran, bool) and len(shape) <= 64):
        raise invalid("bad header: shape or fortran_order")
    if dtype.hasobject:
        raise PydanticCustomError("array", "object arrays are not supported")
    count = 1
    for n in shape:
        count *= n
    if count * dtype.itemsize != len(raw) - start - length:
        raise invalid(f"the header claims {count * dtype.itemsize} bytes of data, "
                      f"there are {len(raw) - start - length}")
    arr = np.frombuffer(raw, dtype=dtype, count=count, offset=start + length)
    return arr.reshape(shape, order="F" if fortran else "C").copy(order="K")


class Array(np.ndarray):
    """A numpy array input or output; ``Array[dtype]`` or ``Array[dtype, ndim]`` constrain it."""

    def __class_getitem__(cls, params: Any) -> Any:
        if not isinstance(params, tuple):
            params = (params,)
        if len(params) > 2:
            raise TypeError("Array[dtype] or Array[dtype, ndim]")
        dtype = None if params[0] in (Any, None) else np.dtype(params[0])
        ndim = params[1] if len(params) == 2 else None
        if ndim is not None and (not isinstance(ndim, int) or ndim < 0):
            raise TypeError(f"Array ndim must be a non-negative int, not {ndim!r}")
        return Annotated[np.ndarray, ArraySpec(dtype, ndim)]

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return ArraySpec().__get_pydantic_core_schema__(source, handler)


def is_array_type(tp: Any) -> bool:
    """True for ``Array``, ``Array[...]`` and ``np.ndarray`` annotations."""
    if tp is Array or tp is np.ndarray:
        return True
    metadata = getattr(tp, "__metadata__", ())
    return any(isinstance(m, ArraySpec) for m in metadata)


def dtype_to_json(dt: np.dtype) -> Any:
    """A lossless JSON form: ``dtype.str``, or a dict for structured and sub-array dtypes."""
    if dt.fields is not None and dt.names is not None:
        return {
            "names": list(dt.names),
            "formats": [dtype_to_json(dt.fields[n][0]) for n in dt.names],
            "offsets": [dt.fields[n][1] for n in dt.names],
            "itemsize": dt.itemsize,
            "aligned": dt.isalignedstruct,
        }
    if dt.subdtype is not None:
        base, shape = dt.subdtype
        return {"subdtype": dtype_to_json(base), "shape": list(shape)}
    return dt.str


def dtype_from_json(value: Any) -> np.dtype:
    """Inverse of :func:`dtype_to_json` (also accepts a string ``np.dtype`` accepts);
    ValueError for anything else."""
    try:
        return np.dtype(_dtype_spec(value))
    except (TypeError, ValueError, KeyError, IndexError, OverflowError) as exc:
        raise ValueError(f"not a numpy dtype: {exc}") from None


def _dtype_spec(value: Any) -> Any:
    """What ``np.dtype`` gets for a JSON dtype, its shape checked first."""
    if isinstance(value, str):
        if len(value) > 1000:
            raise ValueError("a dtype string of more than 1000 characters")
    if isinstance(value, dict) and set(value) == {"subdtype", "shape"}:
        shape = value["shape"]
        if not (isinstance(shape, list) and all(_is_int(n) and n >= 0 for n in shape)):
            raise ValueError("subdtype shape must be a list of non-negative ints")
        return (_dtype_spec(value["subdtype"]), tuple(shape))
    if isinstance(value, dict) and {"names", "formats", "offsets", "itemsize"} <= set(value) \
            <= {"names", "formats", "offsets", "itemsize", "aligned"}:
        names, formats, offsets = value["names"], value["formats"], value["offsets"]
        if not (isinstance(names, list) and all(isinstance(n, str) for n in names)
                and isinstance(formats, list) and isinstance(offsets, list)
                and len(names) == len(formats) == len(offsets) == len(set(names))
                and all(_is_int(o) and o >= 0 for o in offsets)
                and _is_int(value["itemsize"]) and value["itemsize"] >= 0
                and isinstance(value.get("aligned", False), bool)):
            raise ValueError("a structured dtype needs distinct string names, and formats "
                             "and non-negative offsets of the same length")
        return {"names": names, "formats": [np.dtype(_dtype_spec(f)) for f in formats],
                "offsets": offsets, "itemsize": value["itemsize"],
                "aligned": value.get("aligned", False)}
    if isinstance(value, dict):
        raise ValueError("a dtype object has the keys subdtype and shape, or names, formats, "
                         "offsets, itemsize and aligned")
    return value  # a type, a dtype, a list of fields: numpy decides


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _dtype_validate(value: Any) -> np.dtype:
    try:
        return dtype_from_json(value)
    except ValueError as exc:
        raise PydanticCustomError("dtype", "{err}", {"err": str(exc)}) from None


class _DTypeSchema:
    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler):
        return core_schema.no_info_plain_validator_function(
            _dtype_validate,
            serialization=core_schema.plain_serializer_function_ser_schema(
                dtype_to_json, when_used="json"
            ),
        )


DType = Annotated[np.dtype, _DTypeSchema]


def _state_to_json(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return {"ndarray": value.dtype.str, "data": value.tolist()}
    if isinstance(value, dict):
        return {k: _state_to_json(v) for k, v in value.items()}
    return value


def _state_from_json(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {"ndarray", "data"}:
        return np.asarray(value["data"], dtype=value["ndarray"])
    if isinstance(value, dict):
        return {k: _state_from_json(v) for k, v in value.items()}
    return value


def rng_state(gen: np.random.Generator) -> dict[str, Any]:
    """The bit generator's state, JSON-ready (arrays as ``{"ndarray": dtype, "data"}``)."""
    return _state_to_json(gen.bit_generator.state)


_BIT_GENERATORS = ("MT19937", "PCG64", "PCG64DXSM", "Philox", "SFC64")


def _rng_validate(value: Any) -> np.random.Generator:
    if isinstance(value, np.random.Generator):
        state = value.bit_generator.state
    elif isinstance(value, dict) and "bit_generator" in value:
        state = value
    elif isinstance(value, int) and not isinstance(value, bool):
        try:
            return np.random.default_rng(value)
        except ValueError as exc:  # a negative seed
            raise PydanticCustomError("rng", "invalid seed: {err}", {"err": str(exc)}) from None
    else:
        raise PydanticCustomError(
            "rng", "expected a numpy Generator, its state or an int seed"
        )
    name = state["bit_generator"]
    if name not in _BIT_GENERATORS:
        raise PydanticCustomError("rng", "unknown bit generator {name!r} (use one of {known})",
                                  {"name": str(name)[:50], "known": ", ".join(_BIT_GENERATORS)})
    bitgen = getattr(np.random, name)()
    try:
        bitgen.state = _state_from_json(state)
    except (ValueError, TypeError, KeyError, IndexError, OverflowError) as exc:
        raise PydanticCustomError("rng", "invalid {name} state: {err}",
                                  {"name": name, "err": str(exc)}) from None
    return np.random.Generator(bitgen)


class _RNGSchema:
    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler):
        return core_schema.no_info_plain_validator_function(
            _rng_validate,
            serialization=core_schema.plain_serializer_function_ser_schema(
                rng_state, when_used="json"
            ),
        )


RNGenerator = Annotated[np.random.Generator, _RNGSchema]


class SeparateOutputs:
    """Marks an output whose items are saved as separate files (see :func:`separate_outputs`)."""

    __slots__ = ("get_names", "item_type", "params")

    def __init__(self, item_type: Any, get_names: Callable[..., Iterable[str]]) -> None:
        self.item_type = item_type
        self.get_names = get_names
        #: The task inputs that ``get_names`` takes, by name.
        self.params = tuple(inspect.signature(get_names).parameters)

    def __repr__(self) -> str:
        return f"SeparateOutputs({self.item_type!r}, names from {', '.join(self.params)})"


def separate_outputs(item_type: Any, get_names: Callable[..., Iterable[str]]) -> Any:
    """An output type: a tuple of ``item_type`` values, one file per item.

    ``get_names`` takes some of the task's inputs, by parameter name, and returns the
    items' names, which become the file names ``<digest>_<name>.<ext>``::

        class Powers(TaskOutput):
            sqr: float
            more: separate_outputs(float, lambda pmax: [str(p) for p in range(4, pmax + 1)])

    The task returns a sequence with one value per name (a mismatch is an error); loading
    reassembles the tuple in the order of the names.
    """
    return Annotated[tuple[item_type, ...], SeparateOutputs(item_type, get_names)]
