"""Fuzzed loaders: random and mutated task files, smttask.toml files and CLI arguments,
seeded from the real formats. Every input must load or fail with a one-line SmttaskError
(or the parser's documented error), within a watchdog's time: no other exception, no hang.

``make test`` runs about 10,000 cases; ``make fuzz`` (SMTTASK_FUZZ_SCALE=20) 200,000. The
number of cases is printed at the end of the test session.
"""

from __future__ import annotations

import copy
import json
import math
import os
import random
import sys
import textwrap

import pytest
from conftest import Hang, watchdog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smttask import SmttaskError, config, store_url, taskfile
from smttask.errors import ConfigError, UsageError
from smttask.view import parse_when

SCALE = float(os.environ.get("SMTTASK_FUZZ_SCALE", "1"))
HANG_SECONDS = 10


def fuzz(examples: int):
    """Hypothesis settings for ``examples`` cases (times SMTTASK_FUZZ_SCALE)."""
    return settings(max_examples=max(1, int(examples * SCALE)), deadline=None,
                    database=None, suppress_health_check=list(HealthCheck))


class Counter:
    """Cases run, and those that raised outside the allowed errors or hung."""

    def __init__(self) -> None:
        self.cases = 0
        self.unexpected: list[str] = []
        self.hangs: list[str] = []

    def check(self, func, arg, allowed: type[BaseException] | tuple = SmttaskError,
              shown: object = None) -> None:
        """Run one case, ``func(arg)``: it must return, or raise ``allowed`` with a one-line
        message (``shown``, default ``arg``, is what a failure report shows)."""
        self.cases += 1
        shown = arg if shown is None else shown
        try:
            with watchdog(HANG_SECONDS):
                func(arg)
        except allowed as exc:
            if "\n" in str(exc):
                self.unexpected.append(f"multi-line message {str(exc)[:200]!r} for "
                                       f"{_short(shown)}")
        except Hang:
            self.hangs.append(_short(shown))
        except Exception as exc:  # noqa: BLE001 - counting them is the point
            self.unexpected.append(f"{type(exc).__name__}: {str(exc)[:200]} for "
                                   f"{_short(shown)}")


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) < 300 else text[:300] + "..."


@pytest.fixture
def count(record_property):
    counter = Counter()
    yield counter
    record_property("fuzz_cases", counter.cases)
    record_property("fuzz_unexpected", len(counter.unexpected))
    record_property("fuzz_hangs", len(counter.hangs))
    assert not counter.unexpected, "\n".join(counter.unexpected[:10])
    assert not counter.hangs, "\n".join(counter.hangs[:10])


# --- the project the task files belong to ---------------------------------------------

TASKS = '''
from typing import Literal, Optional, Tuple

import numpy as np
from pydantic import BaseModel

from smttask import MemoizedTask, RecordedTask
from smttask.typing import Array, DType, RNGenerator


class Settings(BaseModel):
    rate: float
    label: str = ""


@RecordedTask
def make(n: int, scale: float = 1.0) -> Array[float, 1]:
    return np.arange(n) * scale


@RecordedTask
def analyze(arr: Array, dt: float, nbins: int, labels: Tuple[str, ...] = ()) -> float:
    return float(arr.sum() * dt)


@RecordedTask
def typed(dt: DType, mode: Literal["a", "b"], flag: bool, extra: Optional[dict[str, int]] = None
          ) -> int:
    return 1


@MemoizedTask
def noisy(rng: RNGenerator, settings: Settings, values: list[float]) -> float:
    return float(rng.normal()) * settings.rate + sum(values)


@RecordedTask
def fixed(arr: Array[np.int32, 2], name: str) -> str:
    return name
'''


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzzproj")
    pkg = "fuzzpkg_" + os.urandom(4).hex()
    (root / "smttask.toml").write_text(config.render_config("fuzz", dirty_directories=["a"]))
    (root / pkg).mkdir()
    (root / pkg / "__init__.py").write_text("")
    (root / pkg / "tasks.py").write_text(textwrap.dedent(TASKS))
    here = os.getcwd()
    os.chdir(root)
    sys.path.insert(0, str(root))
    try:
        import importlib

        import numpy as np

        tasks = importlib.import_module(f"{pkg}.tasks")
        made = tasks.make(n=3, scale=0.5)
        seeds = [
            made,
            tasks.analyze(arr=np.arange(4.0), dt=0.1, nbins=2, labels=("x", "é")),
            tasks.analyze(arr=made, dt=1.0, nbins=3, reason="nested"),
            tasks.typed(dt=np.dtype([("a", "<f8"), ("b", "<i4", (2,))]), mode="a", flag=True,
                        extra={"k": 1}),
            tasks.typed(dt=np.dtype(">u2"), mode="b", flag=False),
            tasks.noisy(rng=np.random.default_rng(5), settings={"rate": 2.0}, values=[1.0]),
            tasks.fixed(arr=np.ones((2, 2), dtype=np.int32), name="n"),
        ]
        descs = [taskfile.describe(t) for t in seeds]
        yield {"root": root, "pkg": pkg, "descs": descs,
               "texts": [json.dumps(d) for d in descs]}
    finally:
        os.chdir(here)
        sys.path.remove(str(root))
        for name in [m for m in sys.modules if m.startswith(pkg)]:
            del sys.modules[name]


# --- mutation -----------------------------------------------------------------------------
#
# Hypothesis draws the ingredients of each example (values from the formats' own
# vocabulary, odd numbers and strings, a seed); a plain mutator then makes CASES inputs
# from them, each loaded: generating with Hypothesis alone would cost more than loading.

CASES = 50  # inputs made from each Hypothesis example

KEYS = ["smttask", "taskname", "module", "inputs", "reason", "digest", "npy", "dtype", "shape",
        "names", "formats", "offsets", "itemsize", "aligned", "subdtype", "bit_generator",
        "state", "ndarray", "data", "n", "scale", "arr", "dt", "nbins", "labels", "mode",
        "flag", "extra", "rng", "settings", "values", "rate", "self", "__class__"]
STRINGS = ["taskdesc/1", "make", "analyze", "typed", "noisy", "fixed", "<f8", ">u2", "|V0",
           "O", "f8,i4", "U99999999999", "os", "run", "__main__", "PCG64", "BitGenerator",
           "k05VTVBZAQB2AHsnZGVzY3InOiAnPGY4JywgJ2ZvcnRyYW5fb3JkZXInOiBGYWxzZSwgJ3NoYXBlJzo",
           "", "\x00", "\ud800", "a" * 300]
DEEP = "\x00deep"  # replaced, in the JSON text, by brackets nested 50 to 5,000 deep

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(),
    st.sampled_from([10**4000, -(10**4299), 2**63, -(2**63) - 1, 2**64, DEEP]),
    st.floats(), st.sampled_from(STRINGS), st.text(max_size=20),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=6)), inner,
                        max_size=4)),
    max_leaves=10,
)
ingredients = st.fixed_dictionaries({
    "values": st.lists(json_values, min_size=1, max_size=5),
    "keys": st.lists(st.sampled_from(KEYS) | st.text(max_size=8), min_size=1, max_size=3),
    "bytes": st.lists(st.binary(min_size=1, max_size=8), min_size=1, max_size=3),
    "seed": st.integers(0, 2**32),
})
BYTES = [b"[", b"{", b"\xff", b"\\u0000", b"\\ud800", b'"', b"\\", b"99999999999999999999",
         b"\x00", b"'" * 3, b'"' * 3, b"#", b"\n"]


def deepen(text: str, rng) -> str:
    """``text`` with each DEEP marker replaced by deep nesting (built as text: the Python
    structures would be too deep to build and dump)."""
    depth = rng.choice([50, 99, 101, 300, 5000])
    if rng.random() < 0.5:
        deep = "[" * depth + "1" + "]" * depth
    else:
        deep = '{"smttask": "taskdesc/1", "inputs": {"a": ' * depth + "1" + "}}" * depth
    return text.replace(json.dumps(DEEP), deep)


def paths_in(value, limit: int = 8) -> list[tuple]:
    """Paths to the nodes of ``value`` down to ``limit`` levels (breadth first)."""
    found, level = [()], [((), value)]
    for _ in range(limit):
        nxt = []
        for path, node in level:
            items = node.items() if isinstance(node, dict) else \
                enumerate(node) if isinstance(node, list) else ()
            nxt += [((*path, k), v) for k, v in items]
        found += [path for path, _ in nxt]
        level = nxt
    return found


def mutate_tree(tree, ing, rng):
    """A copy of a JSON/TOML tree with one to three nodes replaced, deleted or added."""
    tree = json.loads(json.dumps(tree))
    for _ in range(rng.randint(1, 3)):
        path = rng.choice(paths_in(tree))
        value = copy.deepcopy(rng.choice(ing["values"]))
        if not path:
            return value
        parent = tree
        for p in path[:-1]:
            parent = parent[p]
        action = rng.choice(["replace", "replace", "delete", "add"])
        if action == "replace":
            parent[path[-1]] = value
        elif action == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[rng.choice(ing["keys"])] = value
        else:
            parent.append(value)
    return tree


def mutate_bytes(data: bytes, ing, rng) -> bytes:
    """``data`` with bytes flipped, inserted, deleted, repeated or cut off."""
    data = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        if not data:
            break
        i = rng.randrange(len(data))
        action = rng.choice(["flip", "insert", "insert", "delete", "cut", "repeat"])
        if action == "flip":
            data[i] = rng.randrange(256)
        elif action == "insert":
            data[i:i] = rng.choice(ing["bytes"] + BYTES)
        elif action == "delete":
            del data[i:i + rng.randint(1, 16)]
        elif action == "cut":
            del data[i:]
        else:
            j = min(len(data), i + rng.randint(1, 64))
            data[j:j] = data[i:j] * rng.choice([2, 10, 100])
    return bytes(data)


# --- task files ---------------------------------------------------------------------------

def test_mutated_task_files(project, count, tmp_path):
    path = tmp_path / "case.taskdesc.json"

    @fuzz(100)
    @given(ingredients)
    def example(ing):
        rng = random.Random(ing["seed"])
        for _ in range(CASES):
            seed = rng.choice(project["descs"])
            kind = rng.random()
            if kind < 0.6:  # a mutated description, as JSON text
                text = deepen(json.dumps(mutate_tree(seed, ing, rng)), rng)
                count.check(taskfile.load, text)
            elif kind < 0.9:  # mutated bytes of a real file
                data = mutate_bytes(json.dumps(seed).encode(), ing, rng)
                path.write_bytes(data)
                count.check(taskfile.load, path, shown=data)
            else:  # a mutated description, as a dict (the Python API)
                desc = mutate_tree(seed, ing, rng)
                if isinstance(desc, dict):
                    count.check(taskfile.load, desc)

    example()


def test_random_task_files(project, count, tmp_path):
    path = tmp_path / "random.taskdesc.json"
    seed = project["descs"][1]

    @fuzz(300)
    @given(json_values)
    def example(value):
        path.write_text(deepen(json.dumps(value), random.Random(0)))
        count.check(taskfile.load, path, shown=value)
        as_inputs = json.dumps({**seed, "inputs": value})
        count.check(taskfile.load, as_inputs)
        as_input = json.dumps({**seed, "inputs": {**seed["inputs"], "arr": value}})
        count.check(taskfile.load, as_input)

    example()


# --- smttask.toml -------------------------------------------------------------------------

TOML_SEEDS = [
    config.render_config("deathstar", dirty_directories=["reports", "labnotes"]),
    config.render_config("p2", input="store", output="store/out", tasks="t", packages=["lab"],
                         on_changed="store-diff",
                         record_store="postgresql://me@db.example.org:5433/lab"),
    '[project]\nname = "x"\n[executor.slurm]\npartition = "gpu"\ntime = "1-00:00:00"\n'
    'cpus = 4\nmem = "4G"\narray_parallelism = 8\ntasks_per_job = 2\n',
]
TOML_KEYS = ["project", "name", "packages", "paths", "input", "output", "tasks", "repo",
             "on_changed", "dirty_directories", "record_store", "url", "executor", "slurm",
             "time", "cpus", "mem", "partition"]
TOML_STRINGS = ["data", "data/run_dump", ".git", ".git/objects", ".smt", ".smt/records",
                "../up", "/abs/path", "postgresql://u:pw@h/db", "postgresql://", "http://x/y",
                "://", "a\x00b", "x\ny", "error", "store-diff", "1:00:00", "99999999999999:00",
                "fuzzpkg", "__main__", "run.py", ""]
toml_values = st.recursive(
    st.one_of(st.booleans(), st.integers(), st.sampled_from([10**4000, 2**64]), st.floats(),
              st.sampled_from(TOML_STRINGS), st.text(max_size=12)),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.sampled_from(TOML_KEYS), inner, max_size=3)),
    max_leaves=8,
)
toml_ingredients = st.fixed_dictionaries({
    "values": st.lists(toml_values, min_size=1, max_size=5),
    "keys": st.lists(st.sampled_from(TOML_KEYS) | st.text(max_size=8), min_size=1, max_size=3),
    "bytes": st.lists(st.binary(min_size=1, max_size=8), min_size=1, max_size=3),
    "seed": st.integers(0, 2**32),
})


@pytest.fixture
def config_dir(tmp_path):
    config.forget_projects()
    yield tmp_path
    config.forget_projects()


def toml_value(value) -> str:
    """A TOML value: JSON's string escapes are TOML's (a surrogate stays invalid TOML)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value != value:
        return "nan"
    if isinstance(value, float) and value in (math.inf, -math.inf):
        return "inf" if value > 0 else "-inf"
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        items = (f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    return json.dumps(value, ensure_ascii=False)


def toml_text(tree) -> str:
    """A TOML document for a dict of tables and values (fast, unlike tomlkit)."""
    if not isinstance(tree, dict):
        return f"value = {toml_value(tree)}\n"
    lines = [f"{json.dumps(k)} = {toml_value(v)}" for k, v in tree.items()
             if not isinstance(v, dict)]
    for key, table in tree.items():
        if isinstance(table, dict):
            lines.append(f"[{json.dumps(key)}]")
            lines += [f"{json.dumps(k)} = {toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


def test_mutated_config_files(config_dir, count):
    import tomllib

    path = config_dir / "smttask.toml"
    trees = [tomllib.loads(t) for t in TOML_SEEDS]

    @fuzz(60)
    @given(toml_ingredients)
    def example(ing):
        rng = random.Random(ing["seed"])
        for _ in range(CASES):
            if rng.random() < 0.5:
                tree = mutate_tree(rng.choice(trees), ing, rng)
                data = toml_text(tree).encode("utf-8", "surrogatepass")
            else:
                data = mutate_bytes(rng.choice(TOML_SEEDS).encode(), ing, rng)
            if rng.random() < 0.02:
                data += b"\n[x]\na = " + rng.choice([b"[", b"{b=", b"[{c="]) * 20000
            path.write_bytes(data)
            count.check(config.load_project, config_dir, ConfigError, data)

    example()


# --- CLI arguments ------------------------------------------------------------------------

arguments = st.one_of(
    st.text(max_size=30),
    st.from_regex(r"\d{1,30}(\.\d{1,20})?\s?[smhdw]", fullmatch=True),
    st.from_regex(r"\d{1,12}(-\d{1,12})?(:\d{1,12}){0,3}", fullmatch=True),
    st.sampled_from(["today", "2026-13-45", "9999-12-31T23:59:59+14:00", "0001-01-01",
                     "1" * 5000 + "d", "../evil", "a.b", "__main__", "x" * 300,
                     "postgresql://u:p@h:0/d", "postgresql://h:65536/d", "postgresql://[::1/d"]),
)


def test_cli_argument_parsers(count):
    @fuzz(400)
    @given(arguments)
    def example(text):
        slurm = config.SlurmSection()
        count.check(parse_when, text, UsageError)
        count.check(config.minutes, text, ValueError)
        count.check(lambda t: slurm.with_overrides(time=t, mem=t, partition=t), text, UsageError)
        count.check(taskfile.check_imports, [text], UsageError)
        count.check(store_url.check, text, ValueError)

    example()
