"""Recorded runs: what a Sumatra record holds, the repo check, the store under concurrency."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from importlib.metadata import version

import pytest
from conftest import Proj, cli

import smttask
from smttask import DirtyRepositoryError, TaskExecutionError, provenance
from smttask.view import RecordStoreView

TASKS = """
import sys
from smttask import RecordedTask

@RecordedTask
def square(x: float) -> float:
    print("squaring", x)
    print("warning!", file=sys.stderr)
    return x * x

@RecordedTask
def plus_one(y: float) -> float:
    return y + 1

@RecordedTask
def explode(x: float) -> float:
    raise ValueError(f"bad x {x}")

@RecordedTask
def interrupt(x: float) -> float:
    raise KeyboardInterrupt
"""


def records(proj):
    return [provenance.get_record(proj.project, label)
            for label in provenance.labels(proj.project)]


def test_record_holds_the_provenance_of_a_run(proj, capsys):
    import git  # noqa: F401  (installed as GitPython)
    import yaml  # noqa: F401  (installed as PyYAML)

    tasks = proj.module(TASKS)
    task = tasks.square(x=3, reason="check the record")
    assert task.run() == 9.0
    assert "squaring 3.0" in capsys.readouterr().out  # still shown live
    [rec] = records(proj)
    assert rec.label == task.record_label
    assert re.fullmatch(r"\d{8}-\d{6}_" + task.digest[:6], rec.label)
    params = json.loads(rec.parameters.pretty())
    assert params == {"x": 3.0, "_smttask": {  # the inputs at the top level, bookkeeping apart
        "format": "smttask-record/1", "task": "square", "module": f"{proj.pkg}.tasks",
        "digest": task.digest}}
    assert rec.main_file == f"{proj.pkg}/tasks.py"
    assert rec.version == proj.git("rev-parse", "HEAD").strip()
    assert rec.reason == "check the record"
    assert rec.diff == ""
    assert {"_finished_", "square"} <= set(rec.tags)
    assert "squaring 3.0" in rec.stdout_stderr and "warning!" in rec.stdout_stderr
    assert rec.duration is not None and rec.duration >= 0
    assert [k.path for k in rec.output_data] == [f"run_dump/square/{task.digest}_result.json"]
    deps = {d.name: d for d in rec.dependencies}
    import numpy
    import pydantic

    assert deps["numpy"].version == numpy.__version__
    assert deps["pydantic"].version == pydantic.__version__
    for module, dist in [("numpy", "numpy"), ("git", "GitPython"), ("yaml", "PyYAML")]:
        assert (deps[module].source, deps[module].version) == (dist, version(dist))
    assert deps[proj.pkg].version == rec.version  # the project's own code: its commit
    assert rec.platforms and rec.platforms[0].system_name
    assert rec.user == "Test Scientist <scientist@example.org>"


def test_loaded_results_make_no_record(proj):
    tasks = proj.module(TASKS)
    tasks.square(x=2).run()
    t = tasks.square(x=2)
    t.run()
    assert t.record_label is None
    assert len(records(proj)) == 1


def test_upstream_outputs_are_input_data(proj):
    tasks = proj.module(TASKS)
    down = tasks.plus_one(y=tasks.square(x=4))
    assert down.run() == 17.0
    rec = provenance.get_record(proj.project, down.record_label)
    up = tasks.square(x=4)
    assert [k.path for k in rec.input_data] == [f"run_dump/square/{up.digest}_result.json"]


def test_records_are_visible_to_sumatra_cli(proj):
    tasks = proj.module(TASKS)
    t = tasks.square(x=5)
    t.run()
    smt = [sys.executable, "-c",
           "import sys; from sumatra.commands import list as l; l(sys.argv[1:])"]
    out = subprocess.run(smt, cwd=proj.root, capture_output=True, text=True, check=True).stdout
    assert t.record_label in out


def _schema(db):
    import sqlite3

    with sqlite3.connect(db) as conn:
        return (conn.execute("PRAGMA journal_mode").fetchone()[0],
                conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master "
                             "ORDER BY name").fetchall(),
                conn.execute("SELECT app, name FROM django_migrations ORDER BY id").fetchall(),
                conn.execute("SELECT * FROM django_content_type ORDER BY id").fetchall())


def test_every_new_store_is_as_migrating_makes_it(tmp_path, monkeypatch):
    """The first new store of these Sumatra and Django versions on a machine is migrated,
    the next ones are copies of it (kept in ~/.cache/smttask): same tables, indexes,
    migrations and content types, still in WAL mode, read by Sumatra's models (``records``;
    its ``smt`` command reads such a copy in the test above)."""
    from conftest import new_proj
    from django.core import management

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # no template yet
    stores = []
    for name in ("first", "second"):
        if name == "second":  # a copy: no migration runs
            monkeypatch.setattr(management, "call_command", None)
        with new_proj(tmp_path / name, monkeypatch) as p:
            task = p.module(TASKS).square(x=2)
            task.run()
            stores.append(p.root / ".smt/records")
            [rec] = records(p)
            assert rec.label == task.record_label and "_finished_" in rec.tags
    [template] = (tmp_path / "cache/smttask").iterdir()
    first, second = (_schema(db) for db in stores)
    assert first[0] == "wal" and first[1] and first == second
    assert _schema(template)[1:] == first[1:]


def test_smt_project_follows_smttask_toml(proj):
    tasks = proj.module(TASKS)
    tasks.square(x=1).run()
    state = json.loads((proj.root / ".smt/project").read_text())
    assert state["name"] == "testproj"
    assert state["data_store"]["root"] == str(proj.root / "data/run_dump")
    assert state["input_datastore"]["root"] == str(proj.root / "data")
    assert state["record_store"]["db_file"] == str(proj.root / ".smt/records")


def test_crash_saves_a_crashed_record_and_no_output(proj):
    tasks = proj.module(TASKS)
    task = tasks.explode(x=2)
    with pytest.raises(TaskExecutionError,
                       match="explode .* failed: ValueError: bad x 2.0") as info:
        task.run()
    assert isinstance(info.value.__cause__, ValueError)
    [rec] = records(proj)
    assert "_crashed_" in rec.tags
    assert "ValueError: bad x 2.0" in rec.outcome
    assert rec.output_data == []
    assert not (proj.root / "data/explode").exists()


def test_interrupt_saves_a_killed_record(proj):
    tasks = proj.module(TASKS)
    with pytest.raises(KeyboardInterrupt):
        tasks.interrupt(x=1).run()
    [rec] = records(proj)
    assert "_killed_" in rec.tags
    assert not (proj.root / "data/interrupt").exists()


def test_labels_are_unique_for_repeated_runs(proj):
    tasks = proj.module(TASKS)
    t = tasks.square(x=7)
    for _ in range(3):
        t.run(recompute=True)
    labels = provenance.labels(proj.project)
    assert len(labels) == 3 == len(set(labels))


# --- the repo check --------------------------------------------------------------------

def test_modified_tracked_code_blocks_the_run(proj):
    tasks = proj.module(TASKS)
    proj.write(f"{proj.pkg}/helpers.py", "X = 1\n")
    proj.commit()
    proj.write(f"{proj.pkg}/helpers.py", "X = 2\n")
    with pytest.raises(DirtyRepositoryError, match=r"helpers.py\. Commit it$") as e:
        tasks.square(x=1).run()  # code: a dirty directory is no way out
    assert e.value.paths == [f"{proj.pkg}/helpers.py"]
    assert not (proj.root / "data").exists()
    proj.git("add", "-A")  # staged is still uncommitted
    with pytest.raises(DirtyRepositoryError):
        tasks.square(x=1).run()


def test_untracked_python_file_in_the_task_package_blocks(proj):
    tasks = proj.module(TASKS)
    proj.write("scratch.txt", "not code\n")
    proj.write("other/notes.py", "print('elsewhere')\n")
    assert tasks.square(x=1).run() == 1.0  # untracked files outside the package are fine
    proj.write(f"{proj.pkg}/new_helper.py", "Y = 1\n")
    with pytest.raises(DirtyRepositoryError, match="new_helper.py"):
        tasks.square(x=2).run()


def test_dirty_directories_are_tolerated_and_noted(proj):
    tasks = proj.module(TASKS)
    proj.write("reports/notes.md", "# changed notes\n")
    t = tasks.square(x=6)
    assert t.run() == 36.0
    rec = provenance.get_record(proj.project, t.record_label)
    assert "tolerated in dirty directories: reports/notes.md" in rec.outcome
    assert rec.diff == ""


def test_store_diff_records_the_diff_and_runs(proj):
    text = (proj.root / "smttask.toml").read_text().replace(
        "[repo]", '[repo]\non_changed = "store-diff"')
    proj.write("smttask.toml", text)
    proj.commit("store-diff")
    tasks = proj.module(TASKS)
    proj.write(f"{proj.pkg}/tasks.py", (proj.root / proj.pkg / "tasks.py").read_text()
               + "\n# an edit\n")
    proj.write("reports/notes.md", "# changed notes\n")
    t = tasks.square(x=8)
    assert t.run() == 64.0
    rec = provenance.get_record(proj.project, t.record_label)
    assert "+# an edit" in rec.diff
    assert "reports/notes.md" not in rec.diff  # dirty directories stay out of the diff


def test_repository_without_commit_is_refused(tmp_path, monkeypatch):
    root = tmp_path / "fresh"
    root.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    (root / "smttask.toml").write_text('[project]\nname = "fresh"\n')
    (root / "fresh_tasks_mod.py").write_text(
        "from smttask import RecordedTask\n"
        "@RecordedTask\n"
        "def one(x: int) -> int:\n"
        "    return x\n")
    monkeypatch.chdir(root)
    monkeypatch.syspath_prepend(str(root))
    import fresh_tasks_mod

    try:
        with pytest.raises(DirtyRepositoryError, match="no commit yet"):
            fresh_tasks_mod.one(x=1).run()
    finally:
        del sys.modules["fresh_tasks_mod"]


# --- concurrency -------------------------------------------------------------------------

WORKER = """
import sys
from {pkg}.tasks import square
for i in range(int(sys.argv[1]), int(sys.argv[1]) + 5):
    square(x=i).run()
"""


def test_eight_processes_on_a_fresh_project_lose_no_record(proj):
    proj.module(TASKS)
    assert not (proj.root / ".smt").exists()
    env = {**__import__("os").environ, "PYTHONPATH": str(proj.root)}
    procs = [
        subprocess.Popen([sys.executable, "-c", WORKER.format(pkg=proj.pkg), str(100 * w)],
                         cwd=proj.root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
        for w in range(8)
    ]
    for p in procs:
        out, err = p.communicate(timeout=240)
        assert p.returncode == 0, err
        assert "Traceback" not in err
    labels = provenance.labels(proj.project)
    assert len(labels) == 40 == len(set(labels))
    assert len(RecordStoreView(proj.project).filter.status("finished")) == 40
    # The store still works afterwards.
    tasks = sys.modules.get(f"{proj.pkg}.tasks") or __import__(
        f"{proj.pkg}.tasks", fromlist=["square"])
    tasks.square(x=0.5).run()
    assert len(provenance.labels(proj.project)) == 41
    assert smttask.config.find_project().name == "testproj"


def test_processes_record_without_django_once_a_store_was_made(proj, tmp_path,
                                                               monkeypatch):
    """Once a store was made on this machine, a process lists and records through a plain
    SQLite connection, in that store or in a new project's new store (a copy of the empty
    one): neither Django nor Sumatra is imported (half a second per process)."""
    from conftest import new_proj

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    tasks = proj.module(TASKS)
    tasks.square(x=1.0).run()  # the first store: migrated through Django
    script = """
        import sys
        from smttask import RecordStoreView
        list(RecordStoreView())  # in the new project: before its store exists
        from {pkg}.tasks import square
        task = square(x=2.0)
        task.run()
        print(task.record_label, sorted({{"django", "sumatra"}} & set(sys.modules)))
        """
    with new_proj(tmp_path / "second", monkeypatch) as second:
        second.module(TASKS)
        assert not (second.root / ".smt").exists()
        for p in (proj, second):
            out = p.run_python(script.format(pkg=p.pkg)).stdout.splitlines()[-1].split()
            assert out[1:] == ["[]"], p.root
            record = RecordStoreView(p.project).get(out[0])
            assert record.status == "finished" and record.output_files
        assert _schema(second.root / ".smt/records") == _schema(proj.root / ".smt/records")


def test_a_moved_project_reads_and_records_without_django(proj, tmp_path):
    """A project folder moved or copied elsewhere (its .smt/project names the old absolute
    paths) lists and records at its first command through a plain SQLite connection, as
    before the move: the paths are brought in step, the store and its records kept."""
    tasks = proj.module(TASKS)
    first = tasks.square(x=1.0)
    first.run()
    moved = Proj(shutil.copytree(proj.root, tmp_path / "moved", symlinks=True))
    moved.pkg = proj.pkg
    out = moved.run_python(f"""
        import sys
        from smttask import RecordStoreView
        labels = [r.label for r in RecordStoreView()]
        imported = sorted({{"django", "sumatra"}} & set(sys.modules))
        from {proj.pkg}.tasks import square
        task = square(x=2.0)
        task.run()
        print(task.record_label, labels, imported,
              sorted({{"django", "sumatra"}} & set(sys.modules)))
        """).stdout.splitlines()[-1]
    label = out.split()[0]
    assert out == f"{label} ['{first.record_label}'] [] []"
    assert json.loads((moved.root / ".smt/project").read_text())["default_repository"][
        "url"] == str(moved.root)
    assert [r.label for r in RecordStoreView(moved.project)] == [label, first.record_label]
    assert [r.label for r in RecordStoreView(proj.project)] == [first.record_label]


def test_a_moved_project_whose_smt_folder_cannot_be_written_is_one_line(proj, tmp_path):
    """Following a moved store takes the store's lock: when that fails (here the lock file
    is a folder; a read-only file system does the same), a listing says so in one line."""
    proj.module(TASKS).square(x=1.0).run()
    moved = shutil.copytree(proj.root, tmp_path / "moved", symlinks=True)
    (moved / ".smt/records.lock").unlink()
    (moved / ".smt/records.lock").mkdir()
    out = cli("store", "list", cwd=moved)
    assert out.returncode != 0
    assert out.stderr.startswith(f"Error: cannot open the record store {moved}/.smt/records"), \
        out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr


def test_a_corrupt_store_template_is_set_aside_for_a_migration(proj, tmp_path, monkeypatch):
    """A damaged copy of the empty store in the cache is not copied: the new store is
    migrated as if there were none, and the cache gets a sound copy again."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    template = provenance.template.template_path()
    template.parent.mkdir(parents=True)
    template.write_bytes(b"SQLite format 3\x00" + b"\xff" * 4000)
    task = proj.module(TASKS).square(x=3.0)
    task.run()
    assert [r.label for r in records(proj)] == [task.record_label]
    assert provenance.template.open_template() is not None


def _record_in_child(x: float) -> str:
    from smttask.provenance.connection import _direct

    inherited = len(_direct)
    task = sys.modules[_TASKS_MODULE[0]].square(x=x)
    task.run()
    return f"{inherited} {task.record_label}"


_TASKS_MODULE: list[str] = []


def test_a_forked_child_records_on_its_own_connection(proj):
    """A process forked after recording (multiprocessing's default on Linux) records on a
    connection of its own, and the parent goes on recording on its: nothing is lost and
    the store stays intact."""
    import multiprocessing
    import sqlite3

    tasks = proj.module(TASKS)
    _TASKS_MODULE[:] = [tasks.__name__]
    tasks.square(x=1.0).run()  # the store is made
    tasks.square(x=2.0).run()  # on the parent's plain connection
    with multiprocessing.get_context("fork").Pool(2) as pool:
        children = pool.map(_record_in_child, [3.0, 4.0, 5.0, 6.0])
    assert all(line.startswith("1 ") for line in children)  # each saw the parent's
    tasks.square(x=7.0).run()
    labels = provenance.labels(proj.project)
    assert len(labels) == len(set(labels)) == 7
    assert {line.split()[1] for line in children} <= set(labels)
    with sqlite3.connect(proj.root / ".smt/records") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


# --- records as Sumatra writes them -------------------------------------------------------

def _store_rows(proj) -> dict[str, list[tuple]]:
    """Every row of Sumatra's tables, sorted (ids included; a record's tags as a set)."""
    import sqlite3

    found = {}
    with sqlite3.connect(proj.root / ".smt/records") as db:
        tables = [t for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type='table' "
                                           "AND name LIKE 'django_store%'")]
        for table in tables:
            cur = db.execute(f"SELECT * FROM {table}")
            names = [d[0] for d in cur.description]
            found[table] = sorted((tuple(sorted(v.split(",")) if n == "tags" else v
                                         for n, v in zip(names, row, strict=True)) for row in cur),
                                  key=repr)
    return found


def test_sumatra_saving_our_records_again_changes_no_row(proj):
    """The writer's rows are the ones Sumatra's own save makes: saving each record again
    through Sumatra's ORM adds, drops and changes nothing (parameters, tags, data keys,
    dependencies, platforms)."""
    tasks = proj.module(TASKS)
    tasks.plus_one(y=tasks.square(x=4)).run()  # input data, outputs, two tags each
    tasks.square(x=4).run(recompute=True)  # the same parameters again: one parameter set
    with pytest.raises(TaskExecutionError):
        tasks.explode(x=1).run()
    before = _store_rows(proj)
    assert len(before["django_store_parameterset"]) == 3
    assert len(before["django_store_record"]) == 4
    store = provenance.bootstrap(proj.project)
    for label in provenance.labels(proj.project):
        store.save(proj.project.name, store.get(proj.project.name, label))
    assert _store_rows(proj) == before


def _as_sumatra_stores(model, obj):
    """The fields Sumatra 0.8.1's get_or_create_from_sumatra_object matches ``obj`` on."""
    fields = {}
    for field in model._meta.get_fields():
        if not field.concrete or field.name in ("id", "output_from_record"):
            continue
        if hasattr(obj, field.name):
            fields[field.name] = getattr(obj, field.name)
        elif field.name == "type":
            fields["type"] = type(obj).__name__
        else:
            fields[field.name] = str(obj.__getstate__())
    return fields


def test_shared_rows_are_the_ones_sumatras_objects_make(proj):
    """The writer builds the executable, repository, launch mode, datastore, dependency
    and platform rows without Sumatra: each is what Sumatra's own object would store."""
    provenance.bootstrap(proj.project)  # Django set up, for Sumatra's models
    from sumatra.datastore.filesystem import FileSystemDataStore
    from sumatra.dependency_finder.python import Dependency
    from sumatra.launch import SerialLaunchMode
    from sumatra.programs import Executable
    from sumatra.recordstore.django_store import models
    from sumatra.versioncontrol._git import GitRepository

    from smttask.provenance import environment as env
    from smttask.provenance import records as rec

    recorder = rec.Recorder(proj.project)
    root = str(proj.root)
    executable = recorder.shared_rows["executable_id"][1]
    objects = {
        "executable_id": (models.Executable, Executable(
            executable["path"], version=executable["version"], options="run",
            name="smttask")),
        "repository_id": (models.Repository, GitRepository(root, upstream="")),
        "launch_mode_id": (models.LaunchMode, SerialLaunchMode(working_directory=root)),
        "datastore_id": (models.Datastore, FileSystemDataStore(str(proj.project.input_dir))),
    }
    for column, (model, obj) in objects.items():
        assert recorder.shared_rows[column][1] == _as_sumatra_stores(model, obj), column
    [platform_info] = SerialLaunchMode().get_platform_information()
    assert env.platform_fields() == _as_sumatra_stores(models.PlatformInformation, platform_info)
    for dep in env.dependencies(proj.root, "abc123"):
        sumatra_dep = Dependency(dep["name"], dep["path"], dep["version"], "", dep["source"])
        assert dep == _as_sumatra_stores(models.Dependency, sumatra_dep)
