"""ParamColl as a mapping, as a task input, and nested (collections or dataclasses)."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import textwrap
from dataclasses import dataclass

import pytest

from smttask import MemoizedTask, ParamCollError, Task, TaskInputError
from smttask.workflows import ParamColl, expand


@pytest.fixture
def stats():
    return pytest.importorskip("scipy.stats")


class Sweep(ParamColl):
    μ: float = 0.0
    σ: float = 1.0
    n: int = 10


class Model(ParamColl):
    λ: float
    σ: float = 1.0


@dataclass
class ModelDC:
    λ: float
    σ: float = 1.0


class Data(ParamColl):
    L: int
    model: Model


class DataDC(ParamColl):
    L: int
    model: ModelDC


class Vec(ParamColl):
    x: list[float]


@MemoizedTask
def first(p: Vec) -> float:
    return 0.0


@MemoizedTask
def mean_of(p: Sweep) -> float:
    return sum(q["μ"] for q in p.outer()) / len(p.outer())


@MemoizedTask
def simulate(L: int, model: Model) -> float:
    return L * model.λ


@MemoizedTask
def simulate_dc(L: int, model: ModelDC) -> float:
    return L * model.λ


# --- 2. a mapping of its fields -----------------------------------------------------------------

def test_a_paramcoll_is_a_mapping_of_its_fields():
    p = Sweep(μ=expand([0.0, 1.0]), σ=2.0, paramseed=3)
    assert list(p) == list(p.keys()) == ["μ", "σ", "n"]  # paramseed is not a parameter
    assert p["σ"] == 2.0 and p["μ"] == expand([0.0, 1.0])
    assert len(p) == 3 and "σ" in p and "paramseed" not in p
    assert dict(**p) == dict(p) == {"μ": expand([0.0, 1.0]), "σ": 2.0, "n": 10}
    assert list(p.values())[1:] == [2.0, 10] and list(p.items())[1] == ("σ", 2.0)
    assert p.get("nope", 5) == 5
    with pytest.raises(KeyError, match="nope"):
        p["nope"]
    plain = Sweep(σ=2.0)

    def f(μ: float, σ: float, n: int) -> float:
        return μ + σ * n

    assert f(**plain) == 20.0


def test_a_field_cannot_shadow_the_mapping_methods():
    with pytest.raises(ParamCollError, match="Bad: 'keys' cannot be a field name"):
        class Bad(ParamColl):
            keys: int = 1


def test_draws_without_a_seed_are_a_type_error_with_one_clear_line(stats):
    with pytest.raises(ParamCollError) as info:
        Sweep(σ=expand(stats.norm(0, 1)))
    assert isinstance(info.value, TypeError)
    assert str(info.value) == ("Sweep: σ draws from a distribution and needs a seed: pass "
                               "paramseed=<int or str>")


# --- 3. a valid task input, digested from its definition ---------------------------------------

DIGEST_CODE = """
    import json
    from scipy import stats
    from smttask import MemoizedTask
    from smttask.workflows import ParamColl, expand

    class Sweep(ParamColl):
        μ: float = 0.0
        σ: float = 1.0
        n: int = 10

    @MemoizedTask
    def mean_of(p: Sweep) -> float:
        return 0.0

    p = Sweep(μ=expand([0.0, 0.5, 1.0]), σ=expand(stats.gamma(2.0, scale=0.5)), paramseed=7)
    print(json.dumps([mean_of(p=p).digest, mean_of(p=Sweep(n=3)).digest]))
"""
# Pinned (a change is a digest-scheme change, see tests/golden). The first hashes
# {"inputs":{"p":{"$model":"Sweep","fields":{"n":10,"paramseed":7,"μ":{"$expand":[0.0,0.5,1.0]},
# "σ":{"$expand":{"args":[2.0],"dist":"gamma","kwds":{"scale":0.5}}}}}},"scheme":…,"task":"mean_of"}
SWEEP_DIGESTS = ["c622cf71672379d2b4ae", "8bfc086267a46f179682"]


def run_python(code: str, **env: str) -> str:
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, env={**os.environ, **env}, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_paramcoll_with_expand_is_a_task_input_with_a_stable_digest(stats):
    p = Sweep(μ=expand([0.0, 0.5, 1.0]), σ=expand(stats.gamma(2.0, scale=0.5)), paramseed=7)
    here = [mean_of(p=p).digest, mean_of(p=Sweep(n=3)).digest]
    # Another process with another string-hash seed (this one's is random) agrees.
    there = json.loads(run_python(DIGEST_CODE, PYTHONHASHSEED="1"))
    assert there == here
    assert here == SWEEP_DIGESTS
    assert mean_of(p=p).run() == 0.5


def test_the_digest_follows_the_definition(stats):
    base = Sweep(μ=expand([0.0, 1.0]), σ=expand(stats.norm(0, 1)), paramseed=1)
    variants = [
        Sweep(μ=expand([0.0, 2.0]), σ=expand(stats.norm(0, 1)), paramseed=1),
        Sweep(μ=expand([0.0, 1.0]), σ=expand(stats.norm(0, 2)), paramseed=1),
        Sweep(μ=expand([0.0, 1.0]), σ=expand(stats.uniform(0, 1)), paramseed=1),
        Sweep(μ=expand([0.0, 1.0]), σ=expand(stats.norm(0, 1)), paramseed=2),
        Sweep(μ=expand([0.0, 1.0]), σ=expand(stats.norm(0, 1)), paramseed=1, n=11),
    ]
    digests = {mean_of(p=v).digest for v in [base, *variants]}
    assert len(digests) == 6
    # Validated values: ints for a float field are the same definition.
    assert mean_of(p=Sweep(μ=expand([0, 1]), σ=expand(stats.norm(0, 1)), paramseed=1)) is \
        mean_of(p=base)


def test_an_undigestable_distribution_is_a_clear_input_error(stats):
    coll = Vec(x=expand(stats.multivariate_normal([0, 0])), paramseed=0)
    with pytest.raises(TaskInputError, match="only frozen scipy.stats univariate"):
        first(p=coll)


def test_paramcoll_input_round_trips_through_a_task_file(proj, stats):
    tasks = proj.module("""
        from smttask import RecordedTask
        from smttask.workflows import ParamColl

        class Sweep(ParamColl):
            μ: float = 0.0
            σ: float = 1.0

        @RecordedTask
        def count(p: Sweep) -> int:
            return len(p.inner(4))
    """)
    task = tasks.count(p=tasks.Sweep(μ=expand([0.0, 1.0]), σ=expand(stats.norm(0, 1)),
                                     paramseed=3))
    assert task.run() == 2
    path = task.save("tasks")
    assert Task.from_desc(path) is task
    out = proj.run_python(f"""
        from smttask import Task
        t = Task.from_desc({str(path)!r})
        print(t.digest, t.run(), t.result_source)
    """).stdout
    assert out.split() == [task.digest, "2", "disk"]


# --- 4. nested collections and dataclasses ----------------------------------------------------

def test_nested_collections_take_part_in_outer_and_inner():
    coll = Data(L=expand([1, 2, 3]), model=Model(λ=expand([1.1, 1.2, 1.3])))
    sets = list(coll.outer())
    assert len(sets) == 9
    assert sets[:3] == [{"L": 1, "model": Model(λ=λ)} for λ in (1.1, 1.2, 1.3)]
    assert sets[-1] == {"L": 3, "model": Model(λ=1.3)}
    assert list(coll.inner()) == [{"L": k, "model": Model(λ=λ)}
                                  for k, λ in ((1, 1.1), (2, 1.2), (3, 1.3))]
    assert set(coll.expanded) == {"L", "model.λ"}
    # Each set gives the digest of the same values typed by hand.
    assert [simulate(**s).digest for s in sets] == [
        simulate(L=L, model=Model(λ=λ)).digest for L in (1, 2, 3) for λ in (1.1, 1.2, 1.3)]
    with pytest.raises(ValueError, match="equal lengths.*L: 3, model.λ: 2"):
        Data(L=expand([1, 2, 3]), model=Model(λ=expand([1.1, 1.2]))).inner()


def test_nested_dataclasses_expand_like_nested_collections():
    coll = DataDC(L=expand([1, 2, 3]), model=ModelDC(λ=expand([1, 2, 3])))
    sets = list(coll.outer())
    assert len(sets) == 9
    assert sets[1] == {"L": 1, "model": ModelDC(λ=2.0)}
    assert type(sets[1]["model"].λ) is float  # validated against the dataclass's field type
    assert coll["model"].λ == expand([1.0, 2.0, 3.0])
    assert [simulate_dc(**s).run() for s in sets] == [L * λ for L in (1, 2, 3)
                                                      for λ in (1.0, 2.0, 3.0)]
    nested = Data(L=expand([1, 2, 3]), model=Model(λ=expand([1, 2, 3])))
    assert [(s["L"], s["model"].λ) for s in sets] == \
        [(s["L"], s["model"].λ) for s in nested.outer()]
    with pytest.raises(ValueError, match=r"model.λ: value #1 = 'x'"):
        DataDC(L=1, model=ModelDC(λ=expand([1, "x"])))


def test_nested_draws_use_the_nested_seed_and_do_not_grow_outer(stats):
    inner = Model(λ=1.0, σ=expand(stats.norm(0, 1)), paramseed=4)
    coll = Data(L=expand([1, 2]), model=inner)
    sets = list(coll.outer())
    assert len(sets) == 2
    assert [s["model"].σ for s in sets] == [q["σ"] for q in inner.inner(2)]
    assert sets[0]["model"].paramseed is None  # a set is plain values: no seed needed
    endless = Data(L=1, model=inner).inner()
    assert endless.infinite and [s["model"].σ for s in endless[:3]] == \
        [q["σ"] for q in inner.inner(3)]
    # A dataclass has no seed of its own: its draws use the collection's.
    with pytest.raises(ParamCollError, match="DataDC: model.σ draws from a distribution"):
        DataDC(L=1, model=ModelDC(λ=1.0, σ=expand(stats.norm(0, 1))))
    dc = DataDC(L=expand([1, 2]), model=ModelDC(λ=1.0, σ=expand(stats.norm(0, 1))),
                paramseed=4)
    draws = [s["model"].σ for s in dc.outer()]
    assert len(set(draws)) == 2 and draws == [s["model"].σ for s in dc.inner()]


def test_nested_collections_pickle_and_round_trip_through_json(stats):
    colls = [
        Data(L=expand([1, 2, 3]), model=Model(λ=expand([1.1, 1.2]))),
        Data(L=expand([1, 2]), model=Model(λ=1.0, σ=expand(stats.norm(0, 1)), paramseed=5)),
        DataDC(L=expand([1, 2]), model=ModelDC(λ=expand([1.5, 2.5]))),
        DataDC(L=1, model=ModelDC(λ=expand([1.5, 2.5]), σ=expand(stats.norm(0, 1))),
               paramseed=5),
    ]
    for coll in colls:
        again = pickle.loads(pickle.dumps(coll))
        assert again == coll
        assert list(again.outer()) == list(coll.outer())
        cls = type(coll)
        for loaded in (cls.model_validate_json(coll.model_dump_json()),
                       cls.model_validate(coll.model_dump())):
            assert loaded == coll
            assert list(loaded.outer()) == list(coll.outer())
    assert colls[2].model_dump(mode="json")["model"] == {"λ": {"$expand": [1.5, 2.5]}, "σ": 1.0}


def test_nested_collections_are_task_inputs_with_stable_digests():
    coll = DataDC(L=expand([1, 2]), model=ModelDC(λ=expand([1.5, 2.5])))

    @MemoizedTask
    def count(p: DataDC) -> int:
        return len(p.outer())

    same = DataDC(L=expand([1, 2]), model=ModelDC(λ=expand([1.5, 2.5])))
    assert count(p=coll) is count(p=same)
    assert count(p=coll).run() == 4
    other = DataDC(L=expand([1, 2]), model=ModelDC(λ=expand([1.5, 3.5])))
    assert count(p=other).digest != count(p=coll).digest
