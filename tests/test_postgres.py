"""A PostgreSQL record store: created at init, used by every command, safe under load."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from smttask import RecordStoreError, provenance
from smttask import batch as batches

# One server per test session: these tests run on one xdist worker.
pytestmark = pytest.mark.xdist_group("postgres")

SMTTASK = str(Path(sys.executable).with_name("smttask"))

TASKS = """
from smttask import RecordedTask

@RecordedTask
def cube(x: int) -> int:
    return x ** 3
"""


def use_store(proj, url):
    text = (proj.root / "smttask.toml").read_text() + f'\n[record_store]\nurl = "{url}"\n'
    proj.write("smttask.toml", text)
    proj.commit("postgres store")



def test_records_go_to_postgres(proj, postgres):
    db = f"smt_{secrets.token_hex(4)}"
    use_store(proj, postgres.createdb(db))
    tasks = proj.module(TASKS)
    t = tasks.cube(x=3)
    assert t.run() == 27
    assert postgres.sql("SELECT label FROM django_store_record", db).strip() == t.record_label
    assert not (proj.root / ".smt/records").exists()  # no SQLite file on the side
    out = proj.cli("store", "list")
    assert out.returncode == 0 and t.record_label in out.stdout
    assert proj.cli("smt", "list").stdout.split() == [t.record_label]


def test_a_process_moves_from_a_sqlite_store_to_postgres(proj, postgres):
    """One process, two projects' stores in turn (a notebook, the test suite): the SQLite
    store's connection options must not follow to PostgreSQL."""
    tasks = proj.module(TASKS)
    assert tasks.cube(x=2).run() == 8  # the default SQLite store
    use_store(proj, postgres.createdb(db := f"smt_{secrets.token_hex(4)}"))
    t = tasks.cube(x=4)
    assert t.run() == 64
    assert postgres.sql("SELECT label FROM django_store_record", db).strip() == t.record_label


def test_eight_workers_lose_no_record(proj, postgres):
    db = f"smt_{secrets.token_hex(4)}"
    use_store(proj, postgres.createdb(db))
    tasks = proj.module(TASKS)
    paths = [tasks.cube(x=x).save(proj.root / "tasks") for x in range(48)]
    batch = batches.run(paths, jobs=8)
    assert batch.ok and batch.count("ran") == 48
    labels = provenance.labels(proj.project)
    assert len(labels) == 48 == len(set(labels))
    count = postgres.sql("SELECT count(*) FROM django_store_record", db)
    assert int(count) == 48


def _store_rows(postgres, db: str) -> dict[str, list[str]]:
    """Every row of Sumatra's tables as sorted JSON (a record's tags as a set)."""
    found = {}
    for table in postgres.sql("SELECT tablename FROM pg_tables "
                              "WHERE tablename LIKE 'django_store%'", db).split():
        rows = json.loads(postgres.sql(f"SELECT coalesce(json_agg(t), '[]') FROM {table} t", db))
        for row in rows:
            if "tags" in row:
                row["tags"] = sorted(row["tags"].split(","))
        found[table] = sorted(json.dumps(row, sort_keys=True) for row in rows)
    return found


def test_sumatra_saving_our_records_again_changes_no_row(proj, postgres):
    """As on SQLite (tests/test_records.py): the rows the writer sends in one round trip
    are the rows Sumatra's own save makes."""
    use_store(proj, postgres.createdb(db := f"smt_{secrets.token_hex(4)}"))
    tasks = proj.module(TASKS + "\n@RecordedTask\ndef plus(y: int) -> int:\n    return y + 1\n")
    assert tasks.plus(y=tasks.cube(x=2)).run() == 9
    tasks.cube(x=2).run(recompute=True)
    before = _store_rows(postgres, db)
    assert len(before["django_store_record"]) == 3
    assert len(before["django_store_parameterset"]) == 2
    assert before["django_store_record_dependencies"] and before["django_store_record_platforms"]
    store = provenance.bootstrap(proj.project)
    for label in provenance.labels(proj.project):
        store.save(proj.project.name, store.get(proj.project.name, label))
    assert _store_rows(postgres, db) == before


def test_init_creates_and_migrates_the_postgres_store(tmp_path, postgres):
    db = f"smt_{secrets.token_hex(4)}"
    url = postgres.createdb(db)
    proc = subprocess.run([SMTTASK, "project", "init", "--no-input", "--template", "minimal",
                           "--record-store", url, "--no-git"], cwd=tmp_path,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    tables = postgres.sql("SELECT tablename FROM pg_tables WHERE schemaname='public'", db)
    assert "django_store_record" in tables


def test_credentials_are_never_printed(proj, postgres):
    db = f"smt_{secrets.token_hex(4)}"
    postgres.createdb(db)
    postgres.sql("CREATE ROLE scientist LOGIN PASSWORD 's3cret-pw'")
    postgres.sql(f"GRANT ALL ON DATABASE {db} TO scientist; "
                 f"ALTER DATABASE {db} OWNER TO scientist")
    use_store(proj, f"postgresql://scientist@127.0.0.1:{postgres.port}/{db}")
    env = {"SMTTASK_RECORD_STORE_URL":
           f"postgresql://scientist:s3cret-pw@127.0.0.1:{postgres.port}/{db}"}
    info = proj.cli("project", "info", env=env)
    assert info.returncode == 0
    assert "s3cret-pw" not in info.stdout + info.stderr
    assert f"postgresql://scientist@127.0.0.1:{postgres.port}/{db}" in info.stdout


def test_unreachable_server_is_one_clear_line(proj, postgres):
    from services import free_port

    port = free_port()
    use_store(proj, f"postgresql://scientist@127.0.0.1:{port}/nowhere")
    proj.module(TASKS)
    env = {"SMTTASK_RECORD_STORE_URL":
           f"postgresql://scientist:s3cret-pw@127.0.0.1:{port}/nowhere"}
    proc = proj.cli("store", "list", env=env)
    assert proc.returncode == RecordStoreError.exit_code == 6
    assert proc.stderr.startswith("Error: cannot open the record store postgresql://"
                                  "scientist@127.0.0.1")
    assert proc.stderr.count("\n") == 1 and "s3cret-pw" not in proc.stderr
    assert "Traceback" not in proc.stderr


def test_records_reach_postgres_without_django_and_survive_a_lost_connection(proj, postgres):
    """Once the store is made, a process records into PostgreSQL on a psycopg2 connection
    of its own (no Django, no Sumatra import). If the server drops that connection, the
    record being saved fails with one clear line and the next one reconnects."""
    db = f"smt_{secrets.token_hex(4)}"
    use_store(proj, postgres.createdb(db))
    tasks = proj.module(TASKS)
    assert tasks.cube(x=1).run() == 1  # the store is made (through Django)
    out = proj.run_python(f"""
        import sys
        from {proj.pkg}.tasks import cube
        print(cube(x=2).run(), sorted({{"django", "sumatra"}} & set(sys.modules)))
        """).stdout.splitlines()[-1]
    assert out == "8 []"
    assert tasks.cube(x=3).run() == 27  # this process's own connection, now open
    postgres.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                 f"WHERE datname = '{db}' AND pid <> pg_backend_pid()", db)
    with pytest.raises(RecordStoreError, match="cannot save the record of cube"):
        tasks.cube(x=4).run()
    assert tasks.cube(x=5).run() == 125
    labels = postgres.sql("SELECT count(*) FROM django_store_record", db).strip()
    assert labels == "4"  # 1, 2, 3 and 5


def test_a_ready_store_is_read_without_django_as_django_reads_it(proj, postgres):
    """Listings and the other reads of a ready PostgreSQL store go through psycopg2: the
    same rows as Django's ORM for every query, and `store list` in a fresh process imports
    neither Django nor Sumatra."""
    from test_queries import fill, queries

    use_store(proj, postgres.createdb(f"smt_{secrets.token_hex(4)}"))
    project = fill(proj)
    for query in queries(project):
        direct = provenance.rows(project, query, engine="postgres")
        assert direct == provenance.rows(project, query, engine="django"), query
    newest = provenance.rows(project, engine="django")
    assert provenance.labels(project) == [r["label"] for r in reversed(newest)]
    assert provenance.count(project) == len(newest) == 9  # 4 make, 5 scale (1 crashed)
    out = proj.run_python("""
        import sys
        from smttask.cli import main
        try:
            main(["store", "list", "--task", "scale"])
        except SystemExit as exit:
            print(exit.code, sorted({"django", "sumatra"} & set(sys.modules)))
        """).stdout.splitlines()
    assert out[-1] == "0 []"
    assert sum(line.split()[1:2] == ["scale"] for line in out) == 5
