"""Browsing and maintaining records: RecordStoreView, smttask store/status/why/smt."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import SCALE_TASKS

from smttask import SmttaskError, TaskExecutionError, UsageError, provenance
from smttask.view import RecordStoreView, RSView, parse_when

TASKS = SCALE_TASKS + """
from smttask import TaskOutput

class Parts(TaskOutput):
    low: float
    high: float

@RecordedTask
def split(x: float) -> Parts:
    return x - 1, x + 1
"""



@pytest.fixture
def filled(proj):
    """A project with a few records: 3 scale runs on make(n), one crash, one split."""
    tasks = proj.module(TASKS)
    for n, factor in [(1, 2.0), (2, 2.0), (3, 10.0)]:
        tasks.scale(x=tasks.make(n=n), factor=factor, reason=f"n={n}").run()
    with pytest.raises(TaskExecutionError, match="negative factor"):
        tasks.scale(x=1.0, factor=-1.0).run()
    tasks.split(x=5.0).run()
    return proj, tasks


def test_view_lists_newest_first_and_filters_chain(filled):
    proj, tasks = filled
    rs = RSView()
    assert isinstance(rs, RecordStoreView)
    assert len(rs) == 8  # 3 make + 3 scale + 1 crashed scale + 1 split
    stamps = [r.timestamp for r in rs]
    assert stamps == sorted(stamps, reverse=True)
    assert rs.latest.taskname == "split"
    scale = rs.filter.task("scale")
    assert len(scale) == 4
    assert len(scale.filter.status("finished")) == 3
    assert [r.reason for r in scale.filter.status("crashed")] == [""]
    assert len(rs.filter.tags("make")) == 3
    assert len(scale.filter.params(eq={"factor": 2.0})) == 2
    assert {r.reason for r in scale.filter.params(ge={"x.n": 2})} == {"n=2", "n=3"}
    assert len(scale.filter.params(gt={"x.n": 3})) == 0
    assert len(rs.filter(lambda r: r.duration is not None and r.taskname == "make")) == 3
    future = datetime.now(UTC) + timedelta(days=1)
    assert len(rs.filter.after(future)) == 0 and len(rs.filter.before(future)) == 8
    assert len(rs.filter.after("1h")) == 8


def test_record_view_rebuilds_task_and_outputs(filled):
    proj, tasks = filled
    rec = RSView().filter.task("split").latest
    assert rec.task.digest == tasks.split(x=5.0).digest
    assert rec.get_output("low") == 4.0 and rec.get_output("high") == 6.0
    assert all(p.exists() for p in rec.outputs) and len(rec.outputs) == 2
    with pytest.raises(KeyError):
        rec.get_output("middle")
    assert rec.inputs == {"x": 5.0}
    assert rec.status == "finished"
    first = RSView().get(rec.label[:-2])
    assert first.label.startswith(rec.label[:-2])


def test_tags_and_comments_are_saved(filled):
    proj, _ = filled
    rec = RSView().filter.task("split").latest
    rec.add_tag("good")
    rec.add_comment("looks right")
    again = RSView().get(rec.label)
    assert "good" in again.tags and "looks right" in again.outcome
    RSView().filter.task("make").add_tag("upstream")
    assert len(RSView().filter.tags("upstream")) == 3
    again.remove_tag("good")
    assert "good" not in RSView().get(rec.label).tags
    # One write for both, seen alike by Sumatra (its tag rows) and by smttask (the column).
    again.edit(add_tags=["checked"], remove_tags=["split"], comment="second look")
    ours = RSView().get(rec.label)
    sumatras = provenance.get_record(proj.project, rec.label)
    assert ours.tags == set(sumatras.tags) == {"checked", "_finished_"}
    assert ours.outcome == sumatras.outcome and ours.outcome.endswith("looks right\nsecond look")
    with pytest.raises(KeyError):
        provenance.edit_record(proj.project, "20000101-000000_nosuch", add_tags=("x",))


def test_table_and_html(filled):
    rs = RSView().filter.task("scale")
    table = rs.table()
    assert {"label", "task", "status", "x", "x.n", "factor"} <= set().union(*table)
    assert "<table>" in rs._repr_html_()


def test_store_list_and_json(filled):
    proj, _ = filled
    out = proj.cli("store", "list", "--task", "scale", "--status", "finished")
    assert out.returncode == 0
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["label", "task", "status", "duration", "reason", "version"]
    assert len(lines) == 4 and all("scale" in ln for ln in lines[1:])
    js = proj.cli("store", "list", "--json", "--limit", "0")
    rows = [json.loads(ln) for ln in js.stdout.splitlines()]
    assert len(rows) == 8 and rows[0]["task"] == "split"
    limited = proj.cli("store", "list", "--limit", "2")
    assert len(limited.stdout.splitlines()) == 3 and "--limit 0 shows all" in limited.stderr
    assert "scale" not in proj.cli("store", "list", "--since", "2999-01-01").stdout


def test_store_show_recreate_and_rerun(filled):
    proj, tasks = filled
    rec = RSView().filter.task("scale").filter.params(eq={"factor": 10.0}).latest
    shown = proj.cli("store", "show", rec.label[:9])
    assert shown.returncode == UsageError.exit_code and "matches" in shown.stderr  # ambiguous
    shown = proj.cli("store", "show", rec.label)
    assert shown.returncode == 0
    assert "x.n = 3" in shown.stdout and "factor = 10.0" in shown.stdout
    assert "_result.json" in shown.stdout and "(deleted)" not in shown.stdout
    made = proj.cli("store", "recreate", rec.label, "--out", "again")
    path = proj.root / made.stdout.strip()
    assert path.parent == proj.root / "again"
    assert json.loads(path.read_text())["digest"] == rec.digest
    run = proj.cli("run", "again")
    assert run.returncode == 0 and "1 loaded" in run.stderr


def test_find_output(filled):
    proj, tasks = filled
    path = tasks.scale(x=tasks.make(n=1), factor=2.0).save(proj.root / "tasks")
    found = proj.cli("store", "find-output", str(path))
    assert found.returncode == 0
    assert Path(found.stdout.strip()).is_file()
    missing = tasks.scale(x=9.0, factor=9.0).save(proj.root / "tasks")
    assert proj.cli("store", "find-output", str(missing)).returncode == 1


def test_rebuild_restores_every_link(filled):
    proj, tasks = filled
    links = [p for p in (proj.root / "data").rglob("*") if p.is_symlink()]
    assert len(links) == 8  # 3 make + 3 scale + 2 split
    for link in links:
        link.unlink()
    out = proj.cli("store", "rebuild")
    assert out.returncode == 0 and "8 link(s) written" in out.stdout
    assert all(p.is_symlink() and p.exists() for p in links)
    before = len(provenance.labels(proj.project))
    assert tasks.scale(x=tasks.make(n=2), factor=2.0).run() == 4.0  # loads again
    assert len(provenance.labels(proj.project)) == before


def test_delete_is_a_dry_run_by_default_and_mends_links(filled):
    proj, tasks = filled
    t = tasks.split(x=5.0)
    t.run(recompute=True)  # a second file (_2), the link points to it
    newest = RSView().filter.task("split").latest
    link = proj.root / "data/split" / f"{t.digest}_low.json"
    assert link.resolve().name.endswith("_low_2.json")
    dry = proj.cli("store", "delete", newest.label)
    assert dry.returncode == 0 and "dry run" in dry.stderr
    assert newest.label in [r.label for r in RSView()]
    done = proj.cli("store", "delete", newest.label, "--no-dry-run")
    assert done.returncode == 0
    assert newest.label not in [r.label for r in RSView()]
    assert link.resolve().name == f"{t.digest}_low.json"  # back to the older file
    assert tasks.split(x=5.0).run().low == 4.0


def test_status_and_why_explain_cache_decisions(filled):
    proj, tasks = filled
    folder = proj.root / "tasks"
    done = tasks.scale(x=tasks.make(n=1), factor=2.0).save(folder)
    near = tasks.scale(x=tasks.make(n=1), factor=3.0).save(folder)
    new = tasks.split(x=1.0).save(folder)
    out = proj.cli("status", "tasks")
    lines = {Path(ln.split()[2].rstrip(":")).name: ln for ln in out.stdout.splitlines()}
    assert lines[done.name].startswith("on disk")
    assert lines[near.name].startswith("will run")
    why = proj.cli("why", str(near))
    assert why.returncode == 0
    assert "differs in 1 input(s): factor: 2.0 → 3.0" in why.stdout
    deep = tasks.scale(x=tasks.make(n=7), factor=2.0).save(folder)
    assert "x.n: 1 → 7" in proj.cli("why", str(deep)).stdout or \
        "x.n: 2 → 7" in proj.cli("why", str(deep)).stdout
    assert "split" in proj.cli("why", str(new)).stdout
    # A deleted link: the record exists, the explanation says how to restore it.
    t = tasks.scale(x=tasks.make(n=1), factor=2.0)
    (proj.root / "data/scale" / f"{t.digest}_result.json").unlink()
    assert "smttask store rebuild" in proj.cli("why", str(done)).stdout


def test_create_surrogates_for_unrecorded_results(filled):
    proj, tasks = filled
    rec = RSView().filter.task("split").latest
    path = rec.task.save(proj.root / "tasks")
    provenance.delete_records(proj.project, [rec.label])  # the files stay
    out = proj.cli("store", "create-surrogates", str(path))
    assert out.returncode == 0 and "1 surrogate record(s) created" in out.stderr
    sur = RSView().filter.tags("surrogate").latest
    assert sur.taskname == "split" and "Surrogate record" in sur.outcome
    assert sur.get_output("high") == 6.0
    again = proj.cli("store", "create-surrogates", str(path))
    assert "0 surrogate record(s)" in again.stderr


SMT_SESSION = """
import json, sys
from click.testing import CliRunner
from smttask.cli import main

results = []
for args in json.loads(sys.argv[1]):
    ran = CliRunner().invoke(main, ["smt", *args], prog_name="smttask")
    results.append([ran.exit_code, ran.stdout, ran.stderr])
print(json.dumps(results))
"""


def test_sumatra_commands_run_on_the_project(filled, tmp_path):
    """`smttask smt` hands over to Sumatra's own commands. They run in a process of their
    own (Sumatra configures Django itself), here one for the whole sequence."""
    proj, _ = filled
    newest = RSView().latest.label
    a, b = [r.label for r in RSView().filter.task("scale").filter.status("finished")][:2]
    target = tmp_path / "copy.sqlite"
    commands = [["sync", str(proj.root / ".smt/records"), str(target)], ["list"], ["info"],
                ["version"], ["export"], ["tag", "checked"], ["comment", "a note"],
                ["view", a], ["diff", a, b], ["diff", "--long", a, b]]
    proc = proj.run_python(SMT_SESSION, args=[json.dumps(commands)])
    results = json.loads(proc.stdout.splitlines()[-1])
    for command, (code, _, err) in zip(commands, results, strict=True):
        assert code == 0, (command, err)
    out = dict(zip((c[0] if c[0] != "diff" or len(c) == 3 else "diff --long" for c in commands),
                   (r[1] for r in results), strict=True))
    assert target.stat().st_size > 0
    assert sorted(out["list"].split()) == sorted(r.label for r in RSView())
    assert "testproj" in out["info"]
    assert out["version"].strip().startswith("0.8")
    assert json.loads((proj.root / ".smt/records_export.json").read_text())
    assert "checked" in RSView().get(newest).tags  # no label: the newest record
    assert RSView().get(newest).outcome.endswith("a note")
    assert a in out["view"]
    assert "Parameters differ       : yes" in out["diff"]
    assert "factor" in out["diff --long"]


def test_smt_help_names_smttask_smt(proj, tmp_path):
    """`smttask smt --help`, `-h` and every Sumatra command's help, in and outside a
    project."""
    from smttask.cli.smt import EXPOSED

    for flag in ("--help", "-h"):
        out = proj.cli("smt", flag)
        assert out.returncode == 0, out.stderr
        assert out.stdout.startswith("Usage: smttask smt COMMAND [ARGS]...")
        words = " ".join(out.stdout.split())
        assert "list, info, tag, comment, view, diff, export, sync, version" in words
    assert proj.cli("smt").returncode == 2  # no command: the help, as a usage error
    for command in EXPOSED:
        out = proj.cli("smt", command, "--help")
        assert out.returncode == 0, out.stderr
        assert out.stdout.startswith(f"usage: smttask smt {command}"), out.stdout
    outside = proj.cli("smt", "diff", "-h", cwd=tmp_path)
    assert outside.returncode == 0 and "usage: smttask smt diff" in outside.stdout
    unknown = proj.cli("smt", "delete")
    assert unknown.returncode == 2 and "'delete' is not one of list, info" in unknown.stderr


def test_parse_when():
    assert parse_when("2026-11-25").tzinfo is not None
    assert parse_when("2026-11-25 14:30").hour == 14
    assert parse_when("today") <= datetime.now(UTC)
    assert datetime.now(UTC) - parse_when("3d") > timedelta(days=2.9)
    with pytest.raises(SmttaskError, match="cannot read 'soon' as a date"):
        parse_when("soon")


def test_dataframe_has_inputs_as_columns(filled):
    pytest.importorskip("pandas", reason="pandas is in the test extras")
    df = RSView().filter.task("scale").filter.status("finished").dataframe()
    assert len(df) == 3
    assert {"label", "status", "factor", "x.n"} <= set(df.columns)
    assert sorted(df["x.n"]) == [1, 2, 3]
