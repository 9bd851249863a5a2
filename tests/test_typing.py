"""smttask.typing: Array, DType and RNGenerator as pydantic v2 types."""

import base64
import io
import json
import struct
from typing import Annotated, Any

import numpy as np
import pytest
from pydantic import TypeAdapter, ValidationError

from smttask import MemoizedTask, RecordedTask, TaskInputError
from smttask.typing import Array, DType, RNGenerator, is_array_type

ARRAY = TypeAdapter(Array)
F64 = TypeAdapter(Array[np.float64])
DTYPE = TypeAdapter(DType)
RNG = TypeAdapter(RNGenerator)


@RecordedTask
def take_array(a: Array) -> float:
    return float(a.sum())


@RecordedTask
def take_f64(a: Array[np.float64]) -> float:
    return float(a.sum())


@MemoizedTask
def draw(rng: RNGenerator) -> float:
    return float(rng.random())


def nan_with_payload(bits: int) -> float:
    return struct.unpack("<d", struct.pack("<Q", bits))[0]


def roundtrip(adapter: TypeAdapter, value: Any) -> Any:
    text = adapter.dump_json(value)
    json.loads(text)  # plain JSON
    return adapter.validate_json(text)


# --- Array: validation -------------------------------------------------------------------------

@pytest.mark.parametrize("tp", [Array, Array[np.float64], Array[float, 1], Array[None, 1],
                                Array[Any]])
def test_fitting_ndarray_is_not_copied(tp):
    a = np.arange(5.0)
    out = TypeAdapter(tp).validate_python(a)
    assert isinstance(out, np.ndarray)
    assert np.shares_memory(out, a)


def test_ndarray_of_any_dtype_kept_as_is():
    for a in [np.arange(4, dtype=">f8"), np.arange(4, dtype="i1"), np.ones((2, 0), bool),
              np.arange(6.0).reshape(2, 3).T]:
        out = ARRAY.validate_python(a)
        assert np.shares_memory(out, a) or a.size == 0
        assert out.dtype == a.dtype and out.shape == a.shape


def test_task_input_array_is_not_copied():
    a = np.arange(5.0)
    assert np.shares_memory(take_array(a=a).inputs.a, a)
    assert np.shares_memory(take_f64(a=a).inputs.a, a)


def test_nested_lists_become_arrays():
    out = ARRAY.validate_python([[1.0, 2.5], [3.0, 4.0]])
    assert isinstance(out, np.ndarray)
    assert out.dtype == np.float64 and out.shape == (2, 2)
    assert out.tolist() == [[1.0, 2.5], [3.0, 4.0]]
    assert ARRAY.validate_python([True, False]).dtype == np.bool_
    assert ARRAY.validate_python([[1, 2]]).dtype.kind == "i"
    assert ARRAY.validate_python(3.0).shape == ()
    assert ARRAY.validate_python([]).shape == (0,)


def test_float64_array_casts_ints():
    for value in [np.arange(3), np.arange(3, dtype="i1"), np.arange(3, dtype="u8"), [0, 1, 2],
                  (0, 1, 2), np.array([0, 1, 2], dtype=">i4")]:
        out = F64.validate_python(value)
        assert out.dtype == np.float64
        assert out.tolist() == [0.0, 1.0, 2.0]
    assert F64.validate_python(np.arange(3.0, dtype=">f8")).dtype == np.float64


@pytest.mark.parametrize("value", [np.array([1 + 2j]), [1 + 2j], [[1.0, 2j]], ["a", "b"],
                                   np.array(["1.0"])])
def test_float64_array_rejects_values_that_are_not_real_numbers(value):
    with pytest.raises(ValidationError):
        F64.validate_python(value)


@pytest.mark.parametrize("value", [np.array([1.5, 2.0]), [1.5, 2.0], [[0.5]]])
def test_int_array_rejects_fractional_floats(value):
    # An ndarray of floats is refused by Array[np.int64]; the same numbers given as a
    # list must not be truncated silently either.
    with pytest.raises(ValidationError):
        TypeAdapter(Array[np.int64]).validate_python(value)


def test_ndim_is_enforced():
    a2 = TypeAdapter(Array[float, 2])
    assert a2.validate_python([[1, 2], [3, 4]]).shape == (2, 2)
    assert a2.validate_python(np.zeros((0, 3))).shape == (0, 3)
    for bad in [[1.0, 2.0], np.zeros(3), np.zeros((1, 1, 1)), 1.0]:
        with pytest.raises(ValidationError):
            a2.validate_python(bad)
    assert TypeAdapter(Array[float, 0]).validate_python(2).shape == ()


@pytest.mark.parametrize("value", [np.array([1, "a"], dtype=object), [1, None], [{"a": 1}],
                                   np.array([None])])
def test_object_arrays_are_rejected(value):
    with pytest.raises(ValidationError):
        ARRAY.validate_python(value)


def test_ragged_lists_are_rejected():
    with pytest.raises(ValidationError):
        ARRAY.validate_python([[1, 2], [3]])


def test_bad_parametrisations_raise():
    with pytest.raises(TypeError):
        Array[float, 1, 2]
    with pytest.raises(TypeError):
        Array[float, -1]
    with pytest.raises(TypeError):
        Array[float, "2"]


# --- Array: JSON ---------------------------------------------------------------------------------

def _special_f8() -> np.ndarray:
    return np.array([nan_with_payload(0x7FF8000000000001), nan_with_payload(0xFFF0000000000abc),
                     -0.0, np.inf, -np.inf, 5e-324, 0.1])


JSON_CASES = {
    "f8_special": _special_f8,
    "f8_big_endian": lambda: np.arange(6, dtype=">f8").reshape(2, 3),
    "f8_be_nan_payload": lambda: _special_f8().astype(">f8"),
    "f4": lambda: np.array([0.1, -0.0, np.nan], dtype="<f4"),
    "f2": lambda: np.array([0.5, 65504.0], dtype="<f2"),
    "bool": lambda: np.array([[True, False], [False, True]]),
    "int8": lambda: np.array([-128, 0, 127], dtype="i1"),
    "uint64": lambda: np.array([0, 2**64 - 1], dtype="<u8"),
    "int32_be": lambda: np.array([1, -2], dtype=">i4"),
    "complex128": lambda: np.array([1 + 2j, complex(np.nan, -0.0)]),
    "complex64_be": lambda: np.array([1 - 1j], dtype=">c8"),
    "datetime64": lambda: np.array(["2024-02-29T12:00"], dtype="<M8[ns]"),
    "unicode": lambda: np.array(["ä", "🧪x"]),
    "0d": lambda: np.array(2.5),
    "0d_int": lambda: np.array(7, dtype="i1"),
    "empty": lambda: np.zeros(0),
    "empty_2d": lambda: np.zeros((2, 0), dtype="i1"),
    "3d": lambda: np.arange(24, dtype="<i8").reshape(2, 3, 4),
    "fortran": lambda: np.asfortranarray(np.arange(6.0).reshape(2, 3)),
    "strided_view": lambda: np.arange(20.0)[::3],
}


@pytest.mark.parametrize("case", list(JSON_CASES))
def test_array_json_round_trip_is_exact(case):
    a = JSON_CASES[case]()
    out = roundtrip(ARRAY, a)
    assert isinstance(out, np.ndarray)
    assert out.dtype == a.dtype and out.dtype.str == a.dtype.str  # byte order included
    assert out.shape == a.shape
    assert out.tobytes() == a.tobytes()  # bit for bit, in C order


def test_array_json_preserves_nan_payloads():
    a = _special_f8()
    out = roundtrip(ARRAY, a)
    assert np.array_equal(out.view(np.uint64), a.view(np.uint64))
    assert out.view(np.uint64)[0] == 0x7FF8000000000001
    assert out.view(np.uint64)[1] == 0xFFF0000000000ABC
    assert np.signbit(out[2])


def test_array_json_layout():
    a = np.arange(3, dtype=">f8")
    data = json.loads(ARRAY.dump_json(a))
    assert data["dtype"] == ">f8"
    assert data["shape"] == [3]
    buf = io.BytesIO(base64.b64decode(data["npy"]))
    assert np.load(buf, allow_pickle=False).tobytes() == a.tobytes()


def test_structured_array_json_round_trip():
    dt = np.dtype([("id", "<i4"), ("w", ">f8"), ("v", "<f4", (2,))])
    a = np.array([(1, 0.5, (1.0, 2.0)), (2, np.nan, (3.0, -0.0))], dtype=dt)
    out = roundtrip(ARRAY, a)
    assert out.dtype == a.dtype
    assert out.tobytes() == a.tobytes()


def test_typed_array_json_round_trip_into_a_declared_dtype():
    out = roundtrip(F64, np.array([1.0, np.nan]))
    assert out.dtype == np.float64
    # JSON written from an int array, read by Array[np.float64]: cast like a Python value
    out = F64.validate_json(ARRAY.dump_json(np.array([1, 2])))
    assert out.dtype == np.float64 and out.tolist() == [1.0, 2.0]
    with pytest.raises(ValidationError):
        F64.validate_json(ARRAY.dump_json(np.array([1j])))


def _json_payload(a: np.ndarray, **changes: Any) -> str:
    data = json.loads(ARRAY.dump_json(a))
    data.update(changes)
    return json.dumps(data)


@pytest.mark.parametrize("changes", [
    {"npy": "!!!not base64!!!"},
    {"npy": base64.b64encode(b"definitely not an npy file").decode()},
    {"npy": "QUJD="},  # bad padding
    {"dtype": "<f4"},  # declared dtype does not match the payload
    {"dtype": ">f8"},  # byte order mismatch
    {"shape": [2, 2]},  # declared shape does not match
])
def test_invalid_array_json_is_a_validation_error(changes):
    with pytest.raises(ValidationError):
        ARRAY.validate_json(_json_payload(np.arange(4.0), **changes))


def test_pickled_object_npy_is_rejected():
    buf = io.BytesIO()
    np.save(buf, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    payload = json.dumps({"npy": base64.b64encode(buf.getvalue()).decode()})
    with pytest.raises(ValidationError):
        ARRAY.validate_json(payload)


# --- Array in tasks -------------------------------------------------------------------------------

def test_task_array_from_nested_lists_equals_ndarray_digest():
    lists = [[1.0, 2.0], [3.0, 4.5]]
    assert take_array(a=lists).digest == take_array(a=np.array(lists)).digest
    assert take_array(a=lists).digest != take_array(a=np.array(lists, dtype=">f8")).digest
    assert take_f64(a=[[1, 2], [3, 4]]).digest == take_f64(a=np.array([[1.0, 2], [3, 4]])).digest
    assert take_f64(a=np.array([[1, 2], [3, 4]])).digest == take_f64(a=[[1, 2], [3, 4]]).digest


def test_task_array_input_errors_are_task_input_errors():
    with pytest.raises(TaskInputError):
        take_f64(a=[1j])
    with pytest.raises(TaskInputError):
        take_array(a=[1, None])


# --- DType ----------------------------------------------------------------------------------------

DTYPES = {
    "f8": "<f8",
    "f8_be": ">f8",
    "i1": "i1",
    "bool": "?",
    "c16": "<c16",
    "datetime": "<M8[ns]",
    "unicode": "<U5",
    "bytes": "S3",
    "struct": [("a", "<i4"), ("b", "<f8")],
    "struct_be_field": [("a", ">i8"), ("b", "<f4")],
    "struct_subarray": [("pos", "<f8", (3,)), ("n", "u1")],
    "struct_nested": [("p", [("x", "<f4"), ("y", "<f4")]), ("id", "<i8")],
}


@pytest.mark.parametrize("case", list(DTYPES))
def test_dtype_json_round_trip(case):
    dt = np.dtype(DTYPES[case])
    out = roundtrip(DTYPE, dt)
    assert isinstance(out, np.dtype)
    assert out == dt
    assert out.str == dt.str


def test_aligned_struct_dtype_json_round_trip():
    dt = np.dtype([("a", "u1"), ("b", "<i4")], align=True)
    out = roundtrip(DTYPE, dt)
    assert out.names == dt.names
    assert out.itemsize == dt.itemsize
    assert out.fields["b"][1] == dt.fields["b"][1]  # offset


def test_dtype_json_text():
    assert json.loads(DTYPE.dump_json(np.dtype(">f8"))) == ">f8"
    assert json.loads(DTYPE.dump_json(np.dtype([("a", "<i4")]))) == {
        "names": ["a"], "formats": ["<i4"], "offsets": [0], "itemsize": 4, "aligned": False}


def test_dtype_validates_common_spellings():
    assert DTYPE.validate_python("float64") == np.float64
    assert DTYPE.validate_python(float) == np.float64
    assert DTYPE.validate_python(np.int8) == np.int8
    for bad in ["not-a-dtype", 3.5]:
        with pytest.raises(ValidationError):
            DTYPE.validate_python(bad)


# --- RNGenerator ---------------------------------------------------------------------------------

def _advanced(bitgen: str, seed: int = 12345) -> np.random.Generator:
    g = np.random.Generator(getattr(np.random, bitgen)(seed))
    g.random(7)
    g.integers(0, 2**32, dtype=np.uint32)  # leaves a buffered 32-bit half where used
    return g


@pytest.mark.parametrize("bitgen", ["PCG64", "MT19937"])
def test_rng_json_round_trip_reproduces_the_stream(bitgen):
    g = _advanced(bitgen)
    out = roundtrip(RNG, g)
    assert type(out.bit_generator) is type(g.bit_generator)
    assert out.integers(0, 2**32, size=5, dtype=np.uint32).tolist() == \
        g.integers(0, 2**32, size=5, dtype=np.uint32).tolist()
    assert out.random(20).tolist() == g.random(20).tolist()
    assert out.standard_normal(5).tolist() == g.standard_normal(5).tolist()


@pytest.mark.parametrize("bitgen", ["PCG64DXSM", "SFC64", "Philox"])
def test_rng_json_round_trip_other_bit_generators(bitgen):
    g = _advanced(bitgen)
    out = roundtrip(RNG, g)
    assert type(out.bit_generator) is type(g.bit_generator)
    assert out.random(20).tolist() == g.random(20).tolist()


def test_rng_validation_copies_the_generator():
    g = np.random.default_rng(5)
    ref = np.random.default_rng(5)
    out = RNG.validate_python(g)
    assert out is not g and out.bit_generator is not g.bit_generator
    drawn = out.random(10)
    assert g.random(10).tolist() == drawn.tolist() == ref.random(10).tolist()


def test_rng_int_seed():
    assert RNG.validate_python(42).random(5).tolist() == \
        np.random.default_rng(42).random(5).tolist()
    for bad in ["42", 4.2, None]:
        with pytest.raises(ValidationError):
            RNG.validate_python(bad)


def test_rng_invalid_state_is_a_validation_error():
    state = json.loads(RNG.dump_json(np.random.default_rng(1)))
    with pytest.raises(ValidationError):
        RNG.validate_python({**state, "bit_generator": "NoSuchGenerator"})
    with pytest.raises(ValidationError):
        RNG.validate_python({**state, "bit_generator": "MT19937"})


def test_task_with_rng_input():
    g = np.random.default_rng(3)
    t = draw(rng=g)
    first = t.run()
    assert t.run(recompute=True) == first  # every run starts from the same state
    assert g.random() == np.random.default_rng(3).random()  # caller's generator untouched
    assert draw(rng=np.random.default_rng(3)).digest == t.digest
    assert draw(rng=3).digest == t.digest
    assert draw(rng=np.random.default_rng(4)).digest != t.digest


# --- is_array_type --------------------------------------------------------------------------------

@pytest.mark.parametrize("tp", [Array, Array[float], Array[np.int8, 3], Array[None, 2],
                                np.ndarray])
def test_is_array_type_true(tp):
    assert is_array_type(tp)


@pytest.mark.parametrize("tp", [float, list[float], Annotated[np.ndarray, "x"], DType,
                                RNGenerator, Any, np.float64])
def test_is_array_type_false(tp):
    assert not is_array_type(tp)
