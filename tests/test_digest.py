"""Digest scheme v1 (DESIGN.md §4): golden values, stability across processes, properties.

The golden digests in ``tests/golden/digests.json`` pin scheme v1. Their inputs are rebuilt
here from code (``CASES``: case id -> (description, builder)); the JSON holds only the id,
the description and the expected digest. A changed golden digest is a scheme-version bump
(``tests/golden/make_golden.py --force`` regenerates, on purpose only).
"""

import json
import math
import os
import re
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xxhash

from smttask import MemoizedTask, RecordedTask, TaskInputError
from smttask import digest as D
from smttask.typing import Array

GOLDEN = Path(__file__).parent / "golden" / "digests.json"
HEX_DIGEST = re.compile(r"[0-9a-f]{16,}")


# --- tasks used by the cases (module level: the task name is the function's qualname) ------

@RecordedTask
def scale(x: float, factor: float = 2.0) -> float:
    return x * factor


@MemoizedTask
def up_a(x: float) -> float:
    return x


@MemoizedTask
def up_b(x: float) -> float:
    return x


@RecordedTask
def down(x: float, label: str = "") -> float:
    return x


@RecordedTask
def take_list(v: list[int]) -> int:
    return len(v)


@RecordedTask
def take_tuple(v: tuple[int, ...]) -> int:
    return len(v)


@RecordedTask
def take_any(v: Any) -> int:
    return 0


@RecordedTask
def take_meta(meta: dict[str, str]) -> int:
    return len(meta)


@MemoizedTask
def take_set(s: frozenset[str]) -> int:
    return len(s)


@RecordedTask
def take_count(n: int) -> int:
    return n


@RecordedTask
def take_text(s: str) -> int:
    return len(s)


@RecordedTask(version="2")
def versioned(x: float) -> float:
    return x


@RecordedTask
def take_array(a: Array) -> float:
    return float(a.sum())


@RecordedTask
def mixed(x: float, n: int, name: str, a: Array, opts: dict[str, float]) -> float:
    return x


# --- helpers -------------------------------------------------------------------------------

def nan_from_bits(bits: int) -> float:
    return struct.unpack("<d", struct.pack("<Q", bits))[0]


def c(inputs: dict[str, Any], task: str = "golden", version: str | None = None,
      unhashed: dict[str, Any] | None = None) -> str:
    return D.compute(task, inputs, version, unhashed)


def arr(dtype: str = "<f8", shape: tuple[int, ...] = (6,)) -> np.ndarray:
    n = math.prod(shape)
    return np.arange(n).astype(dtype).reshape(shape)


def structured() -> np.ndarray:
    dt = np.dtype([("id", "<i4"), ("w", ">f8"), ("v", "<f4", (2,))])
    return np.array([(1, 0.5, (1.0, 2.0)), (2, -1.5, (3.0, 4.0))], dtype=dt)


# --- golden cases ----------------------------------------------------------------------------

CASES: dict[str, tuple[str, Callable[[], str]]] = {
    # scalars
    "float_zero": ("float 0.0", lambda: c({"x": 0.0})),
    "float_neg_zero": ("float -0.0 (distinct from 0.0)", lambda: c({"x": -0.0})),
    "float_nan": ("float NaN", lambda: c({"x": math.nan})),
    "float_nan_payload": ("NaN with payload bits 0x7ff8000000000001 (= every NaN)",
                          lambda: c({"x": nan_from_bits(0x7FF8000000000001)})),
    "float_nan_negative": ("negative signalling-pattern NaN 0xfff0000000000001 (= every NaN)",
                           lambda: c({"x": nan_from_bits(0xFFF0000000000001)})),
    "float_pos_inf": ("float +inf", lambda: c({"x": math.inf})),
    "float_neg_inf": ("float -inf", lambda: c({"x": -math.inf})),
    "float_1e-300": ("float 1e-300", lambda: c({"x": 1e-300})),
    "float_subnormal": ("smallest subnormal 5e-324", lambda: c({"x": 5e-324})),
    "float_0.1": ("float 0.1", lambda: c({"x": 0.1})),
    "float_3": ("float 3.0", lambda: c({"x": 3.0})),
    "int_3": ("int 3 (distinct from float 3.0)", lambda: c({"x": 3})),
    "int_2pow100": ("int 2**100", lambda: c({"x": 2**100})),
    "int_2pow53_plus_1": ("int 2**53 + 1 (not representable as float)",
                          lambda: c({"x": 2**53 + 1})),
    "int_neg_2pow63": ("int -2**63", lambda: c({"x": -(2**63)})),
    "bool_true": ("bool True (distinct from 1)", lambda: c({"x": True})),
    "none": ("None", lambda: c({"x": None})),
    "complex": ("complex 1-0j with -0.0 imaginary part", lambda: c({"x": complex(1.0, -0.0)})),
    "np_float32_0.1": ("numpy float32 0.1", lambda: c({"x": np.float32(0.1)})),
    "np_int64_7": ("numpy int64 7 (as Python int 7)", lambda: c({"x": np.int64(7)})),
    "bytes": ("bytes b'\\x00\\xffab'", lambda: c({"x": b"\x00\xffab"})),
    # strings
    "str_ascii": ("ascii string", lambda: c({"s": "hello"})),
    "str_non_ascii": ("non-ASCII string", lambda: c({"s": "naïve Größe ∂x/∂t — Ωμ"})),
    "str_emoji": ("emoji incl. a ZWJ sequence", lambda: c({"s": "🧪🔬 👩‍🔬"})),
    "str_lone_surrogate": ("str with a lone surrogate (os.fsdecode of a non-UTF-8 name)",
                           lambda: c({"s": "data_\udcff.bin"})),
    # containers
    "list_ints": ("list [1, 2, 3]", lambda: c({"v": [1, 2, 3]})),
    "tuple_ints": ("tuple (1, 2, 3) (distinct from the list)", lambda: c({"v": (1, 2, 3)})),
    "dict_str_keys": ("dict with str keys", lambda: c({"d": {"b": 1, "a": [2.5, None]}})),
    "dict_dollar_keys": ("str-keyed dict whose keys look like tags",
                         lambda: c({"d": {"$tuple": [1, 2], "$$x": 1, "y$": 2}})),
    "dict_int_keys": ("dict with int keys", lambda: c({"d": {2: "b", 1: "a", -3: "c"}})),
    "set_strs": ("set of str", lambda: c({"s": {"gamma", "alpha", "beta"}})),
    "frozenset_ints": ("frozenset of int", lambda: c({"s": frozenset({16, 8, 3})})),
    "nested": ("nested dict/list/tuple/set",
               lambda: c({"n": {"a": [(1, 2.0), {"k": {3, 4}}], "b": {"c": (None, "x")}}})),
    "multi_inputs": ("several inputs",
                     lambda: c({"x": 1.5, "n": 4, "name": "run", "flags": [True, False]})),
    # task name, version, unhashed
    "name_other": ("same inputs as float_3 under another task name",
                   lambda: c({"x": 3.0}, task="golden_other")),
    "version_1": ("float_3 with version '1'", lambda: c({"x": 3.0}, version="1")),
    "version_2": ("float_3 with version '2'", lambda: c({"x": 3.0}, version="2")),
    "unhashed_n3": ("float_3 with unhashed n=3", lambda: c({"x": 3.0}, unhashed={"n": 3})),
    # arrays
    "arr_f64": ("float64 arange(6)", lambda: c({"a": arr("<f8")})),
    "arr_f32": ("float32 arange(6)", lambda: c({"a": arr("<f4")})),
    "arr_i8": ("int8 arange(6)", lambda: c({"a": arr("i1")})),
    "arr_i64": ("int64 arange(6)", lambda: c({"a": arr("<i8")})),
    "arr_bool": ("bool array", lambda: c({"a": np.array([True, False, True])})),
    "arr_c128": ("complex128 array", lambda: c({"a": np.array([1 + 2j, -0.0 - 1j])})),
    "arr_be_f8": ("big-endian >f8 arange(6)", lambda: c({"a": arr(">f8")})),
    "arr_structured": ("structured array with a >f8 field and a subarray field",
                       lambda: c({"a": structured()})),
    "arr_0d": ("0-d float64 array 3.0", lambda: c({"a": np.array(3.0)})),
    "arr_2d": ("2x3 float64", lambda: c({"a": arr("<f8", (2, 3))})),
    "arr_3x2": ("3x2 float64 (same bytes as 2x3)", lambda: c({"a": arr("<f8", (3, 2))})),
    "arr_empty": ("empty float64 (0,)", lambda: c({"a": np.zeros(0)})),
    "arr_empty_2d": ("empty float64 (2, 0)", lambda: c({"a": np.zeros((2, 0))})),
    "arr_special_floats": ("float64 array with -0.0, nan, +-inf",
                           lambda: c({"a": np.array([-0.0, np.nan, np.inf, -np.inf])})),
    "arr_strided_view": ("a[::2] of float64 arange(12)",
                         lambda: c({"a": np.arange(12.0)[::2]})),
    "arr_transposed": ("transpose of 2x3 float64", lambda: c({"a": arr("<f8", (2, 3)).T})),
    # decorated tasks
    "task_scale_int3": ("scale(x=3): float input given an int", lambda: scale(x=3).digest),
    "task_scale_float3": ("scale(x=3.0)", lambda: scale(x=3.0).digest),
    "task_scale_neg_zero": ("scale(x=-0.0)", lambda: scale(x=-0.0).digest),
    "task_scale_factor": ("scale(x=3.0, factor=0.1)", lambda: scale(x=3.0, factor=0.1).digest),
    "task_down_up_a": ("down(x=up_a(x=1.0))", lambda: down(x=up_a(x=1.0)).digest),
    "task_down_up_b": ("down(x=up_b(x=1.0)): other upstream class, equal inputs",
                       lambda: down(x=up_b(x=1.0)).digest),
    "task_down_chain": ("down(x=down(x=up_a(x=1.0)), label='é')",
                        lambda: down(x=down(x=up_a(x=1.0)), label="é").digest),
    "task_list_from_tuple": ("take_list(v=(1, 2, 3)): tuple converted to list",
                             lambda: take_list(v=(1, 2, 3)).digest),
    "task_tuple_from_list": ("take_tuple(v=[1, 2, 3]): list converted to tuple",
                             lambda: take_tuple(v=[1, 2, 3]).digest),
    "task_set_from_list": ("take_set(s=['b', 'a', 'c'])",
                           lambda: take_set(s=["b", "a", "c"]).digest),
    "task_versioned": ("versioned(x=1.0), declared version '2'",
                       lambda: versioned(x=1.0).digest),
    "task_array_from_lists": ("take_array(a=[[1.0, 2.0], [3.0, 4.0]])",
                              lambda: take_array(a=[[1.0, 2.0], [3.0, 4.0]]).digest),
    "task_mixed": ("mixed task with every kind of input",
                   lambda: mixed(x=1, n=2, name="ünïcode", a=arr("<f4", (2, 3)),
                                 opts={"tol": 1e-9, "gain": -0.0}).digest),
}


def digest_of(case_id: str) -> str:
    return CASES[case_id][1]()


def all_digests() -> dict[str, str]:
    return {cid: digest_of(cid) for cid in CASES}


def load_golden() -> dict[str, Any]:
    return json.loads(GOLDEN.read_text(encoding="utf-8"))


# --- golden tests ------------------------------------------------------------------------------

def test_golden_file_covers_exactly_the_cases():
    golden = load_golden()
    assert golden["scheme"] == D.SCHEME
    assert set(golden["cases"]) == set(CASES)
    assert len(CASES) >= 30
    for cid, entry in golden["cases"].items():
        assert entry["description"] == CASES[cid][0]


@pytest.mark.parametrize("case_id", list(CASES))
def test_golden_digest(case_id):
    assert digest_of(case_id) == load_golden()["cases"][case_id]["digest"]


def test_golden_digests_in_fresh_processes():
    """Other interpreters with other str hash seeds (set order) give the pinned digests."""
    code = ("import json, sys; sys.path.insert(0, sys.argv[1]); import test_digest; "
            "print(json.dumps(test_digest.all_digests()))")
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(Path(__file__).parent)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env={**os.environ, "PYTHONHASHSEED": seed})
        for seed in ("0", "123456")
    ]
    expected = {cid: e["digest"] for cid, e in load_golden()["cases"].items()}
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert json.loads(out) == expected


def test_string_sets_are_stable_across_hash_seeds():
    code = ("import sys; from smttask import digest; "
            "print(digest.compute('t', {'s': set('abcdefghijklmnop'), "
            "'f': frozenset(['x1', 'y2', 'z3', 'w4'])}))")
    outs = {
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       check=True, env={**os.environ, "PYTHONHASHSEED": seed}).stdout
        for seed in ("1", "2", "3")
    }
    assert len(outs) == 1


# --- the scheme as documented (independent of the golden file) ----------------------------------

def test_digest_is_truncated_xxh3_128_of_the_canonical_text():
    text = '{"inputs":{"x":3.0},"scheme":"smttask-digest/1","task":"golden"}'
    assert D.canonical("golden", {"x": 3.0}) == text
    assert c({"x": 3.0}) == xxhash.xxh3_128_hexdigest(text.encode("utf-8"))[:20]


def test_canonical_float_spelling():
    text = D.canonical("t", {"a": -0.0, "b": math.inf, "c": -math.inf,
                             "d": nan_from_bits(0xFFF8000000000123), "e": 0.1, "f": 1e-300})
    assert text == ('{"inputs":{"a":-0.0,"b":Infinity,"c":-Infinity,"d":NaN,"e":0.1,'
                    '"f":1e-300},"scheme":"smttask-digest/1","task":"t"}')


def test_canonical_is_utf8_without_escapes():
    assert '"s":"🧪 Größe"' in D.canonical("t", {"s": "🧪 Größe"})


def test_version_enters_the_document():
    assert '"version":"2"' in D.canonical("t", {"x": 1}, version="2")
    assert "version" not in D.canonical("t", {"x": 1})


def test_array_fingerprint_is_dtype_shape_and_hash_of_c_bytes():
    a = arr(">f8", (2, 3))
    expected = [">f8", [2, 3], xxhash.xxh3_128_hexdigest(a.tobytes(order="C"))]
    assert D.array_fingerprint(a) == expected
    assert D.array_fingerprint(a.T) == [">f8", [3, 2],
                                        xxhash.xxh3_128_hexdigest(a.T.tobytes(order="C"))]
    assert D.canonical("t", {"a": a}) == (
        '{"inputs":{"a":{"$ndarray":' + json.dumps(expected, separators=(",", ":"))
        + '}},"scheme":"smttask-digest/1","task":"t"}')


def test_task_digest_is_compute_of_name_version_and_validated_inputs():
    assert scale(x=3).digest == c({"x": 3.0, "factor": 2.0}, task="scale")
    assert versioned(x=1).digest == c({"x": 1.0}, task="versioned", version="2")
    assert versioned(x=1).digest != c({"x": 1.0}, task="versioned")


def test_reason_is_not_hashed():
    assert scale(x=1.0, reason="first try").digest == scale(x=1.0, reason="other").digest
    assert scale(x=1.0, reason="first try").digest == scale(x=1.0).digest


# --- floats and ints -----------------------------------------------------------------------------

def test_negative_zero_differs_from_zero():
    assert c({"x": -0.0}) != c({"x": 0.0})
    assert scale(x=-0.0).digest != scale(x=0.0).digest


def test_all_nans_are_equal():
    nans = [math.nan, -math.nan, nan_from_bits(0x7FF8000000000001),
            nan_from_bits(0xFFF0000000000001), nan_from_bits(0x7FF0000000000001),
            np.float64("nan"), np.float32("nan"), float(np.float32(np.nan))]
    assert len({c({"x": n}) for n in nans}) == 1
    assert len({scale(x=n).digest for n in nans}) == 1


def test_special_floats_are_distinct():
    values = [0.0, -0.0, math.nan, math.inf, -math.inf, 1e-300, 5e-324, -5e-324, 1e308,
              1.7976931348623157e308]
    assert len({c({"x": v}) for v in values}) == len(values)


def test_adjacent_floats_and_large_ints_are_distinct():
    rng = np.random.default_rng(7)
    xs = rng.standard_normal(50) * 10.0 ** rng.integers(-300, 300, 50)
    digests = set()
    for x in xs:
        x = float(x)
        digests.add(c({"x": x}))
        digests.add(c({"x": math.nextafter(x, math.inf)}))
    assert len(digests) == 100
    ints = [2**53, 2**53 + 1, 2**63 - 1, 2**63, 2**64, 2**64 + 1, -(2**64), 10**30, 10**30 + 1]
    assert len({c({"n": i}) for i in ints}) == len(ints)


def test_int_float_coercion():
    # compute() sees the value as given: int 3 and float 3.0 differ, as do 1 and True.
    assert c({"x": 3}) != c({"x": 3.0})
    assert c({"x": 1}) != c({"x": True})
    # a declared type validates first: float field given 3 or 3.0, int field given 3 or 3.0
    assert scale(x=3).digest == scale(x=3.0).digest == scale(x=np.float64(3.0)).digest
    assert take_count(n=3).digest == take_count(n=3.0).digest
    assert take_count(n=3).digest != c({"n": 3.0}, task="take_count")


def test_numpy_scalars_hash_as_python_numbers():
    assert c({"x": np.int64(7)}) == c({"x": 7})
    assert c({"x": np.float64(0.1)}) == c({"x": 0.1})
    assert c({"x": np.bool_(True)}) == c({"x": True})
    assert c({"x": np.float32(0.1)}) != c({"x": 0.1})


# --- strings --------------------------------------------------------------------------------------

def test_unicode_strings():
    texts = ["naïve", "naive", "🧪", "🧪🔬", "👩‍🔬", "👩🔬", "Ω", "\u2126", ""]
    assert len({c({"s": t}) for t in texts}) == len(texts)
    assert take_text(s="👩‍🔬 Größe").digest == c({"s": "👩‍🔬 Größe"}, task="take_text")


def test_lone_surrogate_string_gives_a_digest_or_a_task_input_error():
    # A str that cannot be UTF-8 encoded (e.g. os.fsdecode of a non-UTF-8 file name)
    # must not crash task construction with a bare UnicodeEncodeError.
    try:
        t = take_text(s="data_\udcff.bin")
    except TaskInputError:
        return
    assert HEX_DIGEST.fullmatch(t.digest)


# --- containers -----------------------------------------------------------------------------------

def test_dict_key_order_does_not_matter():
    assert c({"d": {"b": 1, "a": 2}}) == c({"d": {"a": 2, "b": 1}})
    assert c({"d": {2: "b", 1: "a"}}) == c({"d": {1: "a", 2: "b"}})
    assert c({"d": {"x": {"q": 1, "p": 2}}}) == c({"d": {"x": {"p": 2, "q": 1}}})
    assert c({"b": 1, "a": 2}) == c({"a": 2, "b": 1})
    assert mixed(x=1, n=2, name="n", a=[1.0], opts={"u": 1.0, "v": 2.0}).digest == \
        mixed(opts={"v": 2.0, "u": 1.0}, a=[1.0], name="n", n=2, x=1).digest


def test_dict_keys_of_different_types_differ():
    assert c({"d": {1: "a"}}) != c({"d": {"1": "a"}})


def test_dollar_keys_are_distinct():
    keys = ["a", "$a", "$$a", "$$$a", "$", "$$", ""]
    assert len({c({"d": {k: 1}}) for k in keys}) == len(keys)
    assert c({"d": {"$a": 1, "b": 2}}) == c({"d": {"b": 2, "$a": 1}})


def test_set_order_does_not_matter():
    s1, s2 = set([8, 16, 3]), set([16, 8, 3])
    assert list(s1) != list(s2)  # same set, different iteration order
    assert c({"s": s1}) == c({"s": s2})
    assert c({"s": frozenset(s1)}) == c({"s": frozenset(s2)})
    assert take_set(s=["b", "a", "c"]).digest == take_set(s=("c", "b", "a")).digest
    assert c({"s": {1, 2}}) != c({"s": {1, 3}})
    assert c({"s": {1, 2}}) != c({"s": [1, 2]})


def test_tuples_and_lists():
    assert c({"v": (1, 2, 3)}) != c({"v": [1, 2, 3]})
    assert take_list(v=(1, 2, 3)).digest == take_list(v=[1, 2, 3]).digest
    assert take_list(v=(1, 2, 3)).digest == c({"v": [1, 2, 3]}, task="take_list")
    assert take_tuple(v=[1, 2, 3]).digest == take_tuple(v=(1, 2, 3)).digest
    assert take_tuple(v=[1, 2, 3]).digest == c({"v": (1, 2, 3)}, task="take_tuple")
    assert take_any(v=(1, 2, 3)).digest != take_any(v=[1, 2, 3]).digest


@pytest.mark.parametrize("kind", ["task-vs-dict", "tuple-vs-dict"])
def test_user_dicts_cannot_impersonate_tagged_values(kind):
    """Distinct inputs of one task must not share a digest, whatever the dict keys."""
    if kind == "task-vs-dict":
        up = up_a(x=1.0)  # every input may also be given an upstream task
        forged = {"$task": up.taskname, "digest": up.digest}
        assert take_meta(meta=up).digest != take_meta(meta=forged).digest
    else:
        assert take_any(v=(1, 2)).digest != take_any(v={"$tuple": [1, 2]}).digest


# --- task name, version, unhashed -----------------------------------------------------------------

def test_task_name_and_version_change_the_digest():
    assert c({"x": 3.0}, task="a") != c({"x": 3.0}, task="b")
    assert len({c({"x": 3.0}, version=v) for v in (None, "1", "2", "")}) == 4
    assert up_a(x=1.0).digest != up_b(x=1.0).digest


def test_unhashed_suffix():
    base = c({"x": 3.0})
    assert c({"x": 3.0}, unhashed={"n": 3}) == base + "__n_3"
    assert c({"x": 3.0}, unhashed={"n": 10}) == base + "__n_10"


# --- nested tasks ---------------------------------------------------------------------------------

def test_upstream_task_contributes_name_and_full_digest():
    up = up_a(x=1.0)
    text = D.canonical("down", {"x": up, "label": ""})
    assert f'{{"$task":"up_a","digest":"{up.digest}"}}' in text
    assert len(up.digest) == D.DIGEST_LENGTH


def test_nested_task_digests():
    a1 = down(x=up_a(x=1.0)).digest
    assert a1 == down(x=up_a(x=1)).digest  # upstream inputs validated
    assert a1 != down(x=up_b(x=1.0)).digest  # other upstream class, equal inputs
    assert a1 != down(x=up_a(x=2.0)).digest  # upstream input changed
    assert a1 != down(x=1.0).digest  # value instead of task
    assert a1 != down(x=up_a(x=1.0), label="x").digest
    # a change two levels up reaches the top
    assert down(x=down(x=up_a(x=1.0))).digest != down(x=down(x=up_a(x=-0.0))).digest


# --- arrays ---------------------------------------------------------------------------------------

def test_array_dtype_enters_the_digest():
    dtypes = ["<f8", "<f4", "<f2", "<i8", "<i4", "i1", "u1", "<u8", "<c16", "<c8"]
    assert len({c({"a": arr(dt)}) for dt in dtypes}) == len(dtypes)
    assert c({"a": np.array([True, False])}) != c({"a": np.array([1, 0], dtype="u1")})


def test_array_byte_order_enters_the_digest():
    le, be = arr("<f8"), arr(">f8")
    assert np.array_equal(le, be)
    assert c({"a": le}) != c({"a": be})
    assert c({"a": be}) == c({"a": be.copy()})


def test_array_shape_enters_the_digest():
    a = arr("<f8", (6,))
    shapes = [(6,), (2, 3), (3, 2), (1, 6), (6, 1), (1, 2, 3)]
    assert len({c({"a": a.reshape(s)}) for s in shapes}) == len(shapes)
    empties = [(0,), (0, 3), (3, 0), (0, 0)]
    assert len({c({"a": np.zeros(s)}) for s in empties}) == len(empties)
    assert c({"a": np.array(3.0)}) != c({"a": np.array([3.0])})


def test_non_contiguous_views_hash_like_their_contiguous_copy():
    base = arr("<f8", (4, 6))
    views = [base[::2], base[:, ::2], base.T, base[::-1, 1:], np.asfortranarray(base),
             arr(">i4", (12,))[::3], structured()[::-1]]
    for view in views:
        assert not view.flags.c_contiguous
        copy = np.ascontiguousarray(view)
        assert copy.flags.c_contiguous
        assert c({"a": view}) == c({"a": copy})
    assert c({"a": base.T}) != c({"a": base})


def test_array_values_enter_the_digest():
    a = arr("<f8", (3, 4))
    seen = {c({"a": a})}
    for idx in np.ndindex(a.shape):
        b = a.copy()
        b[idx] = np.nextafter(b[idx], np.inf)
        seen.add(c({"a": b}))
    assert len(seen) == a.size + 1


def test_structured_dtype_enters_the_digest():
    s = structured()
    renamed = s.copy().view(np.dtype([("ID", "<i4"), ("w", ">f8"), ("v", "<f4", (2,))]))
    assert s.tobytes() == renamed.tobytes()
    assert c({"a": s}) != c({"a": renamed})
    assert c({"a": s}) == c({"a": structured()})


def test_object_arrays_are_rejected():
    with pytest.raises(TypeError):
        c({"a": np.array([1, None], dtype=object)})


def test_unsupported_values_raise():
    with pytest.raises(TypeError):
        c({"x": object()})
    with pytest.raises(TaskInputError):
        take_any(v=object())


# --- properties -----------------------------------------------------------------------------------

def _mixed_kwargs(seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    return {
        "x": float(rng.standard_normal()),
        "n": int(rng.integers(-10**6, 10**6)),
        "name": "".join(str(ch) for ch in rng.choice(list("abcé🧪Ω"), 5)),
        "a": rng.standard_normal((3, 4)).astype(str(rng.choice(["<f8", ">f8", "<f4"]))),
        "opts": {str(k): float(rng.uniform())
                 for k in rng.choice(list("pqrstu"), 3, replace=False)},
    }


def _equal_copy(kw: dict[str, Any]) -> dict[str, Any]:
    """Equal values in other objects: array copy (maybe Fortran order), reversed dict."""
    return {
        "x": kw["x"],
        "n": float(kw["n"]),  # int input given as an integral float
        "name": str(kw["name"]),
        "a": np.asfortranarray(kw["a"].copy()),
        "opts": dict(reversed(list(kw["opts"].items()))),
    }


def _mutations(kw: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    a = kw["a"]
    out = [
        ("x", {**kw, "x": math.nextafter(kw["x"], math.inf)}),
        ("x-sign", {**kw, "x": -kw["x"]}),
        ("n", {**kw, "n": kw["n"] + 1}),
        ("name", {**kw, "name": kw["name"] + " "}),
        ("a-dtype", {**kw, "a": a.astype(a.dtype.newbyteorder())}),
        ("a-shape", {**kw, "a": a.reshape(4, 3)}),
        ("opts-key", {**kw, "opts": {k + "_": v for k, v in kw["opts"].items()}}),
        ("opts-value", {**kw, "opts": {**kw["opts"], next(iter(kw["opts"])): 0.5 + 1e-12}}),
        ("opts-extra", {**kw, "opts": {**kw["opts"], "zz": 0.0}}),
    ]
    b = a.copy()
    b.flat[7] = np.nextafter(b.flat[7], np.inf)
    out.append(("a-value", {**kw, "a": b}))
    return out


@pytest.mark.parametrize("seed", range(15))
def test_equal_validated_inputs_give_equal_digests(seed):
    kw = _mixed_kwargs(seed)
    assert mixed(**kw).digest == mixed(**_equal_copy(kw)).digest
    assert mixed(**kw).digest == mixed(*kw.values()).digest  # positional


@pytest.mark.parametrize("seed", range(15))
def test_any_single_change_gives_a_different_digest(seed):
    kw = _mixed_kwargs(seed)
    base = mixed(**kw).digest
    for what, changed in _mutations(kw):
        assert mixed(**changed).digest != base, what


def test_digests_are_hex_with_at_least_64_bits():
    assert D.DIGEST_LENGTH * 4 >= 64
    for cid, digest in all_digests().items():
        plain = digest.split("__", 1)[0]
        assert HEX_DIGEST.fullmatch(plain), cid
        assert len(plain) == D.DIGEST_LENGTH
