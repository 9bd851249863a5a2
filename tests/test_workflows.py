"""Parameter sweeps (ParamColl, expand) and seed streams (SeedGenerator)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from pydantic import Field, ValidationError

from smttask import MemoizedTask, ParamCollError
from smttask.workflows import Expand, ParamColl, SeedGenerator, Sweep, expand


@pytest.fixture
def stats():
    return pytest.importorskip("scipy.stats")


@MemoizedTask
def analyze(arr: list[float], dt: float, nbins: int) -> float:
    return sum(arr) * dt / nbins


class Params(ParamColl):
    dt: float = Field(gt=0)
    nbins: int = 10


class Noisy(ParamColl):
    dt: float = 0.1
    nbins: int = 10
    sigma: float = 1.0
    bias: float = 0.0


class Seeds(SeedGenerator):
    data: int
    noise: int


def run_python(code: str, **env: str) -> str:
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, env={**os.environ, **env}, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


# --- sweeps ----------------------------------------------------------------------------------

def test_outer_is_the_cartesian_product_last_field_fastest():
    coll = Params(dt=expand([0.1, 0.2, 0.5]), nbins=expand([10, 20]))
    sweep = coll.outer()
    assert len(sweep) == 6
    assert list(sweep) == [{"dt": dt, "nbins": n} for dt in (0.1, 0.2, 0.5) for n in (10, 20)]
    assert sweep[-1] == {"dt": 0.5, "nbins": 20}
    assert type(sweep[0]) is dict


def test_inner_zips_and_needs_equal_lengths():
    coll = Params(dt=expand([0.1, 0.2]), nbins=expand([10, 20]))
    assert list(coll.inner()) == [{"dt": 0.1, "nbins": 10}, {"dt": 0.2, "nbins": 20}]
    bad = Params(dt=expand([0.1, 0.2, 0.5]), nbins=expand([10, 20]))
    with pytest.raises(ValueError, match="equal lengths.*dt: 3, nbins: 2"):
        bad.inner()


def test_fields_without_expand_are_repeated_and_no_expand_gives_one_set():
    coll = Params(dt=expand([0.1, 0.2]), nbins=7)
    assert [p["nbins"] for p in coll.outer()] == [7, 7]
    assert list(Params(dt=0.3).outer()) == list(Params(dt=0.3).inner()) == [
        {"dt": 0.3, "nbins": 10}]


def test_sweeps_slice_lazily_like_sequences():
    coll = Params(dt=expand([0.1, 0.2, 0.5, 1.0]), nbins=expand(range(10, 60, 10)))
    full = list(coll.outer())
    part = coll.outer()[3:17:2]
    assert isinstance(part, Sweep) and len(part) == len(full[3:17:2])
    assert list(part) == full[3:17:2]
    assert list(part[1:][::2]) == full[3:17:2][1:][::2]
    assert part[-1] == full[3:17:2][-1]
    assert list(coll.outer(5)) == full[:5]
    assert list(coll.outer(2, 8, 3)) == full[2:8:3]
    with pytest.raises(IndexError):
        coll.outer()[20]


def test_expanded_values_are_validated_and_coerced():
    coll = Params(dt=expand(np.array([1, 2])), nbins=expand(["3", 4]))
    assert list(coll.inner()) == [{"dt": 1.0, "nbins": 3}, {"dt": 2.0, "nbins": 4}]
    assert all(type(p["dt"]) is float and type(p["nbins"]) is int for p in coll.inner())
    with pytest.raises(ValidationError, match=r"dt: value #1 = -1: .*greater than 0"):
        Params(dt=expand([1, -1]))
    with pytest.raises(ValidationError, match="nbins: value #0 = 'many'"):
        Params(dt=1, nbins=expand(["many"]))
    with pytest.raises(ValidationError, match="extra"):
        Params(dt=1, nbinz=expand([1, 2]))


def test_expand_rejects_unordered_or_empty_values():
    with pytest.raises(TypeError, match="not a str"):
        expand("abc")
    with pytest.raises(TypeError, match="sorted"):
        expand({1, 2})
    with pytest.raises(ValueError, match="at least one"):
        expand([])


def test_draws_need_a_seed(stats):
    with pytest.raises(ParamCollError, match="Noisy: sigma draws from a distribution and "
                                             "needs a seed"):
        Noisy(sigma=expand(stats.norm(0, 1)))

    class Seeded(Noisy):
        paramseed: int | str | None = 5

    assert len(Seeded(sigma=expand(stats.norm(0, 1))).inner(3)) == 3


def test_draws_depend_only_on_seed_field_and_index(stats):
    coll = Noisy(dt=expand([0.1, 0.2, 0.5]), sigma=expand(stats.norm(0, 1)), paramseed=1)
    draws = [p["sigma"] for p in coll.outer()]
    assert len(set(draws)) == 3 and all(type(d) is float for d in draws)
    assert [p["sigma"] for p in coll.outer()[::-1]] == draws[::-1]
    assert coll.outer()[2]["sigma"] == coll.inner()[2]["sigma"] == draws[2]
    # Another finite field changes the sets, not draw k.
    wider = Noisy(dt=expand([0.1, 0.2, 0.5]), nbins=expand([1, 2]),
                  sigma=expand(stats.norm(0, 1)), paramseed=1)
    assert [p["sigma"] for p in wider.outer()[:3]] == draws
    # The field name and the seed are part of the key.
    both = Noisy(sigma=expand(stats.norm(0, 1)), bias=expand(stats.norm(0, 1)), paramseed=1)
    assert both.inner()[0]["sigma"] != both.inner()[0]["bias"]
    assert Noisy(sigma=expand(stats.norm(0, 1)), paramseed=2).inner()[0]["sigma"] != draws[0]
    assert Noisy(sigma=expand(stats.norm(0, 1)), paramseed="run-a").inner()[0]["sigma"] != \
        Noisy(sigma=expand(stats.norm(0, 1)), paramseed="run-b").inner()[0]["sigma"]


def test_draws_only_give_an_endless_inner_sweep(stats):
    coll = Noisy(sigma=expand(stats.norm(0, 1)), bias=expand(stats.uniform(0, 1)), paramseed=3)
    sweep = coll.inner()
    assert sweep.infinite
    with pytest.raises(TypeError, match="slice"):
        len(sweep)
    first = list(sweep[:10])
    assert list(coll.inner(10)) == first
    assert sweep[1000:][:3][1] == sweep[1001]
    assert all(0 <= p["bias"] <= 1 for p in first)
    with pytest.raises(ValueError, match="end"):
        sweep[-3:]
    with pytest.raises(ValueError, match="inner"):
        coll.outer()


def test_draws_are_validated_against_the_field_type(stats):
    class Counts(ParamColl):
        n: int = Field(ge=0)

    coll = Counts(n=expand(stats.poisson(4)), paramseed=0)
    assert all(type(p["n"]) is int for p in coll.inner(20))
    with pytest.raises(ValidationError, match="n: a draw = .*fractional"):
        Counts(n=expand(stats.norm(5, 1)), paramseed=0)


def test_json_round_trip_keeps_the_sweep(stats):
    coll = Noisy(dt=expand([0.1, 0.2]), nbins=12, sigma=expand(stats.norm(1, scale=2)),
                 paramseed=9)
    data = coll.model_dump(mode="json")
    assert data["dt"] == {"$expand": [0.1, 0.2]}
    assert data["sigma"] == {"$expand": {"dist": "norm", "args": [1], "kwds": {"scale": 2}}}
    assert json.loads(json.dumps(data)) == data
    for again in (Noisy.model_validate(data), Noisy.model_validate_json(coll.model_dump_json()),
                  Noisy.model_validate(coll.model_dump())):
        assert again == coll
        assert list(again.outer()) == list(coll.outer())
    assert isinstance(coll.dt, Expand) and repr(coll.sigma) == "expand(norm(1, scale=2))"


def test_each_set_gives_the_digest_of_the_same_values_typed_by_hand():
    arr = [1.0, 2.0, 3.0]
    coll = Params(dt=expand([0.1, 0.2, 0.5]), nbins=expand([10, 20]))
    tasks = [analyze(arr=arr, **p) for p in coll.outer()]
    by_hand = [analyze(arr=arr, dt=dt, nbins=n) for dt in (0.1, 0.2, 0.5) for n in (10, 20)]
    assert [t.digest for t in tasks] == [t.digest for t in by_hand]
    assert len({t.digest for t in tasks}) == 6
    # Integers given for a float field digest like the floats typed by hand.
    ints = Params(dt=expand([1, 2]), nbins=3).inner()
    assert analyze(arr=arr, **ints[1]).digest == analyze(arr=arr, dt=2.0, nbins=3).digest


# --- seeds -------------------------------------------------------------------------------------

def test_seed_streams_are_keyed_and_independent():
    seeds = Seeds(42)
    assert seeds.data(1) == seeds.data(1) == Seeds(42).data(1)
    assert seeds.data(1, "a") == seeds.data((1, "a"))
    values = {seeds.data(), seeds.data(1), seeds.data(2), seeds.data("1"), seeds.data(1.5),
              seeds.data(1, 2), seeds.data(2, 1), seeds.data((1, 2), 3), seeds.noise(1),
              Seeds(43).data(1), Seeds("42").data(1)}
    assert len(values) == 11
    assert all(isinstance(v, int) and 0 <= v < 2**32 for v in values)
    assert seeds.data(np.int64(7)) == seeds.data(7.0) == seeds.data(7)  # equal keys, as in a dict
    assert seeds(3) == {"data": seeds.data(3), "noise": seeds.noise(3)}
    assert seeds.noise.rng(5).random() == np.random.default_rng(seeds.noise.seedseq(5)).random()


def test_seed_streams_are_named_not_numbered():
    class More(SeedGenerator):
        init: int
        data: int

    assert More(42).data(3) == Seeds(42).data(3)


def test_unknown_stream_and_bad_keys_are_clear_errors():
    seeds = Seeds(0)
    with pytest.raises(AttributeError, match="no seed stream 'nosie'.*data, noise"):
        seeds.nosie(1)
    with pytest.raises(TypeError, match="seed key"):
        seeds.data([1, 2])
    with pytest.raises(ValueError, match="non-negative"):
        Seeds(-1)
    with pytest.raises(TypeError, match="annotated"):
        SeedGenerator(1)


GOLDEN_SEEDS = {"data(1)": 2933061650, "noise(1)": 2368879153, "data(1, 2)": 3369963557}


def test_seeds_and_draws_are_the_same_in_another_process(stats):
    code = """
        import json
        from scipy import stats
        from smttask.workflows import ParamColl, SeedGenerator, expand

        class Seeds(SeedGenerator):
            data: int
            noise: int

        class Noisy(ParamColl):
            dt: float = 0.1
            nbins: int = 10
            sigma: float = 1.0
            bias: float = 0.0

        s, t = Seeds(42), Seeds("experiment 7")
        coll = Noisy(dt=expand([0.1, 0.2]), sigma=expand(stats.norm(0, 1)), paramseed="abc")
        print(json.dumps({
            "data(1)": s.data(1), "noise(1)": s.noise(1), "data(1, 2)": s.data(1, 2),
            "str": [t.data("trial", (3, "x")), int(t.noise.rng("a").integers(2**62))],
            "draws": [p["sigma"] for p in coll.outer()] + [coll.inner()[1]["sigma"]],
        }))
    """
    # Another process, with a string-hash seed other than this one's, agrees with this one.
    other_seed = "2" if os.environ.get("PYTHONHASHSEED") == "1" else "1"
    here = json.loads(run_python(code, PYTHONHASHSEED=other_seed))
    assert {k: here[k] for k in GOLDEN_SEEDS} == GOLDEN_SEEDS
    s, t = Seeds(42), Seeds("experiment 7")
    assert here["str"] == [t.data("trial", (3, "x")), int(t.noise.rng("a").integers(2**62))]
    assert {"data(1)": s.data(1), "noise(1)": s.noise(1), "data(1, 2)": s.data(1, 2)} == \
        GOLDEN_SEEDS
    coll = Noisy(dt=expand([0.1, 0.2]), sigma=expand(stats.norm(0, 1)), paramseed="abc")
    assert here["draws"] == [p["sigma"] for p in coll.outer()] + [coll.inner()[1]["sigma"]]


def test_workflows_work_without_scipy():
    out = run_python("""
        import sys
        sys.modules["scipy"] = None  # as if scipy were not installed
        from smttask.workflows import ParamColl, SeedGenerator, expand

        class P(ParamColl):
            dt: float

        class Seeds(SeedGenerator):
            data: int

        coll = P(dt=expand([0.1, 0.2]))
        assert P.model_validate(coll.model_dump(mode="json")) == coll
        try:
            P.model_validate({"dt": {"$expand": {"dist": "norm", "args": [], "kwds": {}}}})
        except ImportError as exc:
            print(exc)
        print(len(coll.outer()), Seeds(1).data(0) > 0)
    """)
    assert out.split("\n")[:2] == ["rebuilding a distribution needs scipy: pip install scipy",
                                   "2 True"]


def test_seed_streams_follow_their_annotation():
    from typing import Tuple  # noqa: UP035 - the spelling users of the original write

    class Typed(SeedGenerator):
        data: Tuple[int, int]  # noqa: UP006
        init: tuple[int, int, int]
        noise: int

    seeds = Typed(42)
    pair = seeds.data(3)
    assert isinstance(pair, tuple) and len(pair) == 2
    assert all(isinstance(v, int) and 0 <= v < 2**32 for v in pair)
    assert len(set(pair)) == 2 and pair == Typed(42).data(3) != seeds.data(4)
    assert len(seeds.init(3)) == 3
    assert seeds.noise(1) == Seeds(42).noise(1)  # an int stream is unchanged
    assert seeds(3) == {"data": pair, "init": seeds.init(3), "noise": seeds.noise(3)}
    with pytest.raises(TypeError, match=r"Odd: stream 'data': annotate it int \(one seed\) "
                                        r"or Tuple\[int, int\]"):
        class Odd(SeedGenerator):
            data: float
    with pytest.raises(TypeError, match="fixed length"):
        class Open(SeedGenerator):
            data: tuple[int, ...]
