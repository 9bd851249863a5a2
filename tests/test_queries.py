"""One query model, two engines: SQLite read directly and Django's ORM return the same
rows for the same filters on the same store."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from conftest import SCALE_TASKS

from smttask import TaskExecutionError, provenance
from smttask.provenance import Query

TASKS = SCALE_TASKS


@pytest.fixture
def store(proj):
    return fill(proj)


def fill(proj):
    """Records of two tasks, one crashed, one tagged; the project."""
    tasks = proj.module(TASKS)
    for n in range(4):
        tasks.scale(x=tasks.make(n=n), factor=2.0, reason=f"n={n}").run()
    with pytest.raises(TaskExecutionError):
        tasks.scale(x=1.0, factor=-1.0).run()
    first = provenance.labels(proj.project)[0]
    provenance.edit_record(proj.project, first, add_tags=("good",))
    return proj.project


def queries(project):
    rows = provenance.rows(project)
    stamps = sorted(r["timestamp"] for r in rows)
    middle = stamps[len(stamps) // 2]
    label = rows[3]["label"]
    return [
        Query(),
        Query(tasks=("make",)),
        Query(tasks=("make", "scale")),
        Query(statuses=("crashed",)),
        Query(statuses=("finished", "crashed")),
        Query(tags=("good",)),
        Query(tags=("scale", "_finished_")),
        Query(since=middle),
        Query(until=middle),
        Query(since=stamps[0], until=stamps[-1] + timedelta(microseconds=1)),
        Query(labels=(label, "no-such-label")),
        Query(label_prefix=label[:10]),
        Query(tasks=("scale",), limit=2),
        Query(limit=0),
        Query(tasks=("nosuchtask",)),
        Query(tasks=("mak",)),  # a prefix of a task name is no task name
        Query(tags=("finished",)),  # nor is part of a status tag
        Query(tasknames=True),
        Query(statuses=("finished",), tasknames=True),
    ]


def test_both_engines_return_the_same_rows(store):
    for query in queries(store):
        direct = provenance.rows(store, query, engine="sqlite")
        orm = provenance.rows(store, query, engine="django")
        assert direct == orm, query
    assert len(provenance.rows(store, Query(tasks=("make",)))) == 4
    assert provenance.rows(store, Query(tasks=("mak",)), engine="sqlite") == []
    named = provenance.rows(store, Query(tasks=("make",), tasknames=True), engine="sqlite")
    assert [r["taskname"] for r in named] == ["make"] * 4
    assert len(provenance.rows(store, Query(statuses=("crashed",)))) == 1
    assert [r["label"] for r in provenance.rows(store, Query(tags=("good",)))] == [
        provenance.labels(store)[0]]
    assert provenance.rows(store, Query(limit=0)) == []
    assert len(provenance.rows(store, Query(tasks=("scale",), limit=2))) == 2


def test_rows_are_newest_first_with_tags_as_sets(store):
    rows = provenance.rows(store, engine="sqlite")
    assert [r["timestamp"] for r in rows] == sorted((r["timestamp"] for r in rows),
                                                    reverse=True)
    assert all(isinstance(r["tags"], set) for r in rows)


def test_a_listing_without_parameters_reads_them_when_asked(store):
    """Listings leave the parameters in the database; a record's inputs, task and status
    are still all there when asked for."""
    from smttask.view import RecordStoreView

    full = RecordStoreView.select(Query(tasknames=True))
    lean = RecordStoreView.select(Query(tasknames=True, parameters=False))
    assert all("parameters__content" not in row for row in lean._records)
    assert lean.summaries() == full.summaries() == [r.summary() for r in full]
    assert [r.inputs for r in lean] == [r.inputs for r in full]
    assert [r.taskname for r in lean] == [r.taskname for r in full]


def test_labels_counts_and_data_keys_agree_with_sumatras_orm(store):
    """The plain-SQL reads (labels, count, data keys, the record of an output, a record's
    packages, platform, diff and output) give what Sumatra's ORM gives for the store."""
    from smttask.outputs import Datastore
    from smttask.provenance.binding import bootstrap, record_manager

    records = record_manager(bootstrap(store)).filter(project__id=store.name)
    labels = provenance.labels(store)
    assert labels == list(records.order_by("timestamp", "db_id")
                          .values_list("label", flat=True))
    assert provenance.count(store) == records.count() == 9
    outputs = provenance.output_paths(store, labels)
    inputs = provenance.output_paths(store, labels, output=False)
    keys = provenance.output_keys(store)
    assert keys and all(k.xxh3 for found in keys.values() for k in found)
    datastore = Datastore.of(store)
    for record in records:
        written = sorted(k.path for k in record.output_data.all())
        assert sorted(outputs[record.label]) == written
        assert sorted(keys.get(record.label, [])) == sorted(
            (k.path, k.digest, json.loads(k.metadata).get("xxh3"))
            for k in record.output_data.all())
        assert sorted(inputs[record.label]) == sorted(k.path for k in record.input_data.all())
        for path in written:
            assert provenance.record_of_output(store, datastore.file_of(path)) == record.label
    assert sum(map(len, inputs.values())) == 4  # each scale read its make's result
    assert provenance.record_of_output(store, datastore.output_dir / "nothing.json") is None
    for label in labels:
        record, details = provenance.get_record(store, label), provenance.details(store, label)
        assert details.packages == [(d.name, d.version) for d in record.dependencies]
        assert len(details.packages) > 5
        assert details.platforms == [f"{p.system_name} {p.release} {p.machine} on "
                                     f"{p.network_name}" for p in record.platforms]
        assert (details.diff, details.stdout_stderr) == (record.diff, record.stdout_stderr)
    with pytest.raises(KeyError):
        provenance.details(store, "no-such-label")


def test_a_project_in_a_folder_with_uri_characters_reads_its_own_store(tmp_path, monkeypatch):
    """SQLite is opened read-only through a URI: a project (or cache) folder whose name
    holds ``#``, ``?`` or ``%`` still reads its own store, not a truncated path."""
    from conftest import new_proj

    from smttask.view import RecordStoreView

    odd = tmp_path / "lab #2 why?%41"
    odd.mkdir()
    monkeypatch.setenv("XDG_CACHE_HOME", str(odd / "cache"))
    for name in ("first", "second"):  # the second store: a copy of the cached template
        with new_proj(odd / name, monkeypatch) as p:
            task = p.module(TASKS).make(n=3)
            task.run()
            assert provenance.labels(p.project) == [task.record_label]
            assert provenance.count(p.project) == 1
            assert RecordStoreView(p.project).latest.label == task.record_label
            assert [r["label"] for r in provenance.rows(p.project, engine="sqlite")] == [
                task.record_label]
            smt = p.cli("smt", "list")  # Sumatra's own parsing would open another file
            assert smt.returncode == 6 and "rename the folder" in smt.stderr
    assert provenance.template.open_template() is not None
    assert [f.name for f in tmp_path.iterdir()] == [odd.name]  # no store at a cut path
