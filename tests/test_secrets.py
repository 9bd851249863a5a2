"""The password of a PostgreSQL record store: from the environment only, never written to
the project, never printed. The server requires the password of the role used here."""

from __future__ import annotations

import os
import secrets
import stat
import subprocess

import pytest
from conftest import cli

from smttask import ConfigError, config, store_url

PASSWORD = "s3cret-" + secrets.token_hex(4)
ROLE = "scientist_" + secrets.token_hex(3)


def test_a_password_in_smttask_toml_is_refused_with_advice(tmp_path):
    (tmp_path / "smttask.toml").write_text(
        f'[project]\nname = "x"\n[record_store]\nurl = "postgresql://me:{PASSWORD}@db/lab"\n')
    with pytest.raises(ConfigError) as info:
        config.load_project(tmp_path)
    message = str(info.value)
    assert PASSWORD not in message and "\n" not in message
    assert "record_store.url: holds a password: remove it (postgresql://me@db/lab)" in message
    assert "PGPASSWORD, ~/.pgpass or SMTTASK_RECORD_STORE_URL" in message


def test_urls_are_masked_wherever_they_appear():
    text = f"store postgresql://me:{PASSWORD}@db:5432/lab, other postgres://u:p%40ss@h/d"
    assert store_url.mask(text) == ("store postgresql://me:***@db:5432/lab, other "
                                    "postgres://u:***@h/d")
    assert store_url.without_password(f"postgresql://me:{PASSWORD}@db/lab") == \
        "postgresql://me@db/lab"


def test_the_environment_overrides_the_store_url(tmp_path, monkeypatch):
    (tmp_path / "smttask.toml").write_text('[project]\nname = "x"\n')
    url = f"postgresql://me:{PASSWORD}@db.example.org/lab"
    monkeypatch.setenv(store_url.ENV, url)
    project = config.load_project(tmp_path)
    assert project.connect_url == url
    assert project.record_store_url == "postgresql://me@db.example.org/lab"
    monkeypatch.setenv(store_url.ENV, "http://elsewhere/x")
    with pytest.raises(ConfigError, match="SMTTASK_RECORD_STORE_URL: a record store is"):
        config.load_project(tmp_path).connect_url  # noqa: B018


# --- with a real server that checks the password ------------------------------------------

@pytest.fixture
def locked_store(postgres):
    db = f"smt_{secrets.token_hex(4)}"
    postgres.createdb(db)
    role = f"{ROLE}_{secrets.token_hex(2)}"
    url = postgres.role_with_password(role, PASSWORD, db)
    return url, url.replace(f"{role}@", f"{role}:{PASSWORD}@")


def everything_in(root) -> str:
    """Every file of the project on disk (git's objects included) and its git history."""
    texts = []
    for folder, _, files in os.walk(root):
        for name in files:
            with open(os.path.join(folder, name), "rb") as fh:
                texts.append(fh.read().decode("latin-1"))
    log = subprocess.run(["git", "log", "-p", "--all"], cwd=root, capture_output=True,
                         text=True, check=True).stdout
    return log + "".join(texts)


@pytest.mark.xdist_group("postgres")
def test_init_uses_a_password_and_writes_it_nowhere(tmp_path, locked_store):
    url, with_password = locked_store
    root = tmp_path / "lab"
    proc = cli("project", "init", str(root), "--no-input", "--record-store", with_password,
               cwd=tmp_path, process=True)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout + proc.stderr
    assert PASSWORD not in out
    assert "PGPASSWORD, ~/.pgpass or SMTTASK_RECORD_STORE_URL" in out
    assert f'url = "{url}"' in (root / "smttask.toml").read_text()
    assert subprocess.run(["git", "log", "--oneline"], cwd=root, capture_output=True,
                          text=True).stdout.count("\n") == 1
    assert PASSWORD not in everything_in(root)  # git log -p, .smt/project, answers file
    project_file = root / ".smt" / "project"
    assert stat.S_IMODE(project_file.stat().st_mode) == 0o600
    assert subprocess.run(["git", "check-ignore", "-q", ".smt/project"], cwd=root).returncode == 0


@pytest.mark.xdist_group("postgres")
def test_later_commands_take_the_password_from_the_environment(tmp_path, locked_store):
    url, with_password = locked_store
    root = tmp_path / "lab"
    assert cli("project", "init", str(root), "--no-input", "--template", "minimal",
               "--record-store", with_password, cwd=tmp_path, process=True).returncode == 0
    without = cli("store", "list", cwd=root, process=True,
                  env={"PGPASSWORD": "", "PGPASSFILE": str(tmp_path / "none")})
    assert without.returncode == 6 and without.stderr.startswith("Error: cannot open the "
                                                                 f"record store {url}")
    assert without.stderr.count("\n") == 1 and PASSWORD not in without.stderr
    for env in ({"PGPASSWORD": PASSWORD}, {store_url.ENV: with_password}):
        listed = cli("store", "list", cwd=root, env=env, process=True)
        assert listed.returncode == 0, listed.stderr
        smt = cli("smt", "list", cwd=root, env=env, process=True)  # Sumatra connects
        assert smt.returncode == 0, smt.stderr  # by itself, through libpq
        assert PASSWORD not in smt.stdout + smt.stderr + listed.stdout + listed.stderr
    pgpass = tmp_path / "pgpass"
    pgpass.write_text(f"127.0.0.1:*:*:*:{PASSWORD}\n")
    pgpass.chmod(0o600)
    assert cli("store", "list", cwd=root, env={"PGPASSFILE": str(pgpass)},
               process=True).returncode == 0
    assert PASSWORD not in everything_in(root)
