"""`smttask project init`, `dirty`, `info`: the wizard in a real terminal, copier, git."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pexpect
import pytest
from conftest import GIT_ENV, SMTTASK, cli

import smttask
from smttask import ConfigError, RecordStoreError, ScaffoldError, config, provenance, scaffold

PTY_ENV = {**os.environ, "PROMPT_TOOLKIT_NO_CPR": "1", "TERM": "xterm"}


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and ".git" not in p.relative_to(folder).parts}


def spawn(*args, cwd):
    child = pexpect.spawn(SMTTASK, list(args), cwd=str(cwd), env=PTY_ENV, encoding="utf-8",
                          timeout=30, dimensions=(40, 120))
    return child


def test_wizard_in_a_terminal_with_one_corrected_answer(tmp_path):
    child = spawn("project", "init", "myproj", cwd=tmp_path)
    child.expect("Project name")
    child.sendcontrol("u")
    child.send("bad/name\r")
    child.expect("not a valid project name")  # explained, asked again
    child.expect("Project name")
    child.sendcontrol("u")
    child.send("Death Star\r")
    child.expect("Template")
    child.send("\r")  # package (the default in an empty folder)
    child.expect("Input datastore")
    child.send("\r")
    child.expect("Output datastore")
    child.sendcontrol("u")
    child.send("data/out\r")
    child.expect("Dirty directories")
    child.send(" \r")  # untick "reports", keep "labnotes"
    child.expect("Other dirty")
    child.send("notes, figs\r")
    child.expect("When code has")
    child.send("\x1b[B\r")  # store-diff
    child.expect("Record store")
    child.send("\r")
    child.expect("create one with a first commit")
    child.send("y")
    child.expect("Create the project")
    child.send("y")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    root = tmp_path / "myproj"
    cfg = tomllib.loads((root / "smttask.toml").read_text())
    assert cfg["project"]["name"] == "Death Star"
    assert cfg["paths"]["output"] == "data/out"
    assert cfg["repo"] == {"on_changed": "store-diff",
                           "dirty_directories": ["labnotes", "notes", "figs"]}
    assert (root / "death_star" / "tasks.py").is_file()
    log = subprocess.run(["git", "log", "--oneline"], cwd=root, capture_output=True, text=True)
    assert "Start the Death Star project" in log.stdout


def test_yes_accepts_every_default_in_a_terminal(tmp_path):
    """docs/projects.md's example, as written, in a terminal: no question at all."""
    child = pexpect.spawn(SMTTASK, ["project", "init", "--template", "minimal", "--dirty",
                                    "notebooks", "--yes"], cwd=str(tmp_path),
                          env={**PTY_ENV, **GIT_ENV}, encoding="utf-8", timeout=60,
                          dimensions=(40, 120))
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    assert "?" not in child.before  # nothing was asked
    cfg = config.load_project(tmp_path).config
    assert cfg.repo.dirty_directories == ["notebooks"]
    assert cfg.repo.on_changed == "error" and cfg.paths.input == "data"  # the defaults


def test_ctrl_c_in_the_wizard_leaves_nothing(tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    before = snapshot(tmp_path)
    child = spawn("project", "init", cwd=tmp_path)
    child.expect("Project name")
    child.send("\r")
    child.expect("Template")
    child.sendcontrol("c")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 130
    assert snapshot(tmp_path) == before
    assert not (tmp_path / ".git").exists() and not (tmp_path / ".smt").exists()


def test_package_template_works_at_once(tmp_path):
    proc = cli("project", "init", "--no-input", "deathstar", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    root = tmp_path / "deathstar"
    assert "Next: cd deathstar; python run.py" in proc.stdout
    for rel in ("smttask.toml", "run.py", "README.md", "pyproject.toml", "deathstar/tasks.py",
                "reports/README.md", "labnotes/README.md", ".gitignore", ".smttask-answers.yml"):
        assert (root / rel).is_file(), rel
    text = (root / "smttask.toml").read_text()
    assert text.count("#") >= 8  # every key explained
    assert tomllib.loads(text)["repo"]["dirty_directories"] == ["reports", "labnotes"]
    answers = (root / ".smttask-answers.yml").read_text()
    assert "_src_path:" in answers and "project_name: deathstar" in answers
    assert provenance.count(config.load_project(root)) == 0  # store created and migrated
    assert (root / "README.md").read_text().count("smttask run") >= 1
    status = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True,
                            text=True).stdout
    assert status == ""  # everything committed, .smt/ ignored
    # python run.py writes task files; smttask run runs them; again: all loaded.
    env = {**os.environ, "PYTHONPATH": str(root)}
    subprocess.run([sys.executable, "run.py"], cwd=root, check=True, capture_output=True,
                   env=env)
    files = list((root / "tasks").glob("*.taskdesc.json"))
    assert len(files) == 6
    first = cli("run", "-n", "2", "tasks", cwd=root)
    assert first.returncode == 0 and "6 ran" in first.stderr, first.stderr
    second = cli("run", "-n", "2", "tasks", cwd=root)
    assert second.returncode == 0 and "6 loaded" in second.stderr


def test_minimal_template_in_a_repository_loses_nothing(tmp_path):
    root = tmp_path / "existing"
    root.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    (root / "analysis.py").write_text("print('committed')\n")
    (root / ".gitignore").write_text("*.log")  # no final newline
    (root / "README.md").write_text("# My project\n")
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run(["git", "commit", "-qm", "mine"], cwd=root, check=True)
    (root / "analysis.py").write_text("print('uncommitted edit')\n")
    (root / "scratch.txt").write_text("untracked\n")
    before = snapshot(root)
    proc = cli("project", "init", "--template", "minimal", "--no-input", cwd=root)
    assert proc.returncode == 0, proc.stderr
    after = snapshot(root)
    for rel, content in before.items():
        if rel != ".gitignore":
            assert after[rel] == content, rel  # user files untouched
    assert (root / ".gitignore").read_text().startswith("*.log\n")
    assert ".smt/" in (root / ".gitignore").read_text()
    added = set(after) - set(before)
    assert {p for p in added if not p.startswith(".smt/")} == {
        "smttask.toml", ".smttask-answers.yml"}
    log = subprocess.run(["git", "log", "--oneline"], cwd=root, capture_output=True, text=True)
    assert log.stdout.count("\n") == 1  # no commit made in the user's repository
    assert "commit smttask.toml" in proc.stdout


def test_conflicting_files_stop_everything(tmp_path):
    (tmp_path / "README.md").write_text("# Someone else's readme\n")
    before = snapshot(tmp_path)
    proc = cli("project", "init", "--template", "package", "--no-input", "--no-git",
               cwd=tmp_path)
    assert proc.returncode == 1
    assert "Error: these files exist with another content: README.md" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert snapshot(tmp_path) == before and not (tmp_path / ".smt").exists()


def test_init_creates_missing_parent_folders(tmp_path):
    proc = cli("project", "init", "--no-input", "--template", "minimal", "a/b/proj",
               cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "a/b/proj/smttask.toml").is_file()


def test_init_twice_changes_nothing(tmp_path):
    assert cli("project", "init", "--no-input", cwd=tmp_path).returncode == 0
    before = snapshot(tmp_path)
    again = cli("project", "init", "--no-input", cwd=tmp_path)
    assert again.returncode == 1
    assert "already an smttask project" in again.stderr
    assert snapshot(tmp_path) == before


def test_without_a_terminal_it_says_what_is_missing(tmp_path):
    proc = cli("project", "init", "--name", "x", cwd=tmp_path, input="")
    assert proc.returncode == 2
    assert "no terminal" in proc.stderr and "--template" in proc.stderr
    assert "--no-input" in proc.stderr
    assert not any(tmp_path.iterdir())
    full = cli("project", "init", "--name", "x", "--template", "minimal", "--input", "d",
               "--output", "d/o", "--dirty", "notes", "--on-changed", "error",
               "--record-store", ".smt/records", "--no-git", "--yes", cwd=tmp_path, input="")
    assert full.returncode == 0, full.stderr
    assert config.load_project(tmp_path).config.paths.output == "d/o"


def test_failure_during_init_removes_what_was_created(tmp_path):
    before = snapshot(tmp_path)
    answers = scaffold.make_answers(name="p", template="package", git=True,
                                    record_store="postgresql://nobody@127.0.0.1:9/none")
    with pytest.raises(RecordStoreError, match="cannot open the record store postgresql://"):
        scaffold.init(tmp_path, answers)
    assert snapshot(tmp_path) == before
    assert sorted(os.listdir(tmp_path)) == []


def test_invalid_answers_are_explained():
    with pytest.raises(ScaffoldError, match="output datastore 'results' must be a subfolder"):
        scaffold.make_answers(name="p", input="data", output="results")
    with pytest.raises(ScaffoldError, match="postgresql://"):
        scaffold.make_answers(name="p", record_store="mysql://x/y")


# --- editing the configuration --------------------------------------------------------

def test_dirty_add_remove_list_keep_comments(proj):
    path = proj.root / "smttask.toml"
    path.write_text("# my header\n" + path.read_text().replace(
        'dirty_directories = ["reports"]',
        'dirty_directories = ["reports"]  # my comment') + "\n[paths]\ninput = 'data'  # keep\n")
    (proj.root / "notes").mkdir()
    sub = proj.root / "notes"
    proc = cli("project", "dirty", "add", ".", "../figs/", cwd=sub)
    assert proc.returncode == 0, proc.stderr
    text = path.read_text()
    assert text.startswith("# my header\n")
    assert 'dirty_directories = ["reports", "notes", "figs"]  # my comment' in text
    assert "input = 'data'  # keep" in text
    assert cli("project", "dirty", "list", cwd=proj.root).stdout.split() == [
        "reports", "notes", "figs"]
    assert cli("project", "dirty", "remove", "figs", cwd=proj.root).returncode == 0
    assert config.find_project(proj.root).config.repo.dirty_directories == ["reports", "notes"]
    missing = cli("project", "dirty", "remove", "figs", cwd=proj.root)
    assert missing.returncode == ConfigError.exit_code
    assert "figs is not a dirty directory" in missing.stderr


def test_dirty_add_can_commit_smttask_toml(proj):
    """An uncommitted smttask.toml blocks recorded runs: without a terminal `dirty add`
    says so, the run's error says to commit it, and --commit commits it alone."""
    tasks = proj.module("from smttask import RecordedTask\n\n@RecordedTask\n"
                        "def one(x: int) -> int:\n    return x\n")
    added = proj.cli("project", "dirty", "add", "notebooks")
    assert added.returncode == 0
    assert "smttask.toml is not committed" in added.stderr and "--commit" in added.stderr
    with pytest.raises(smttask.DirtyRepositoryError) as err:
        tasks.one(x=1).run()
    assert str(err.value).endswith("block recording: smttask.toml. Commit it")
    (proj.root / "staged.txt").write_text("mine\n")
    proj.git("add", "staged.txt")
    committed = proj.cli("project", "dirty", "add", "--commit", "notebooks")
    assert committed.returncode == 0 and "committed smttask.toml" in committed.stdout
    assert proj.git("log", "-1", "--format=%s").strip() == \
        "smttask project dirty add notebooks"
    assert proj.git("status", "--porcelain").splitlines() == ["A  staged.txt"]  # left alone
    proj.commit("staged")
    assert tasks.one(x=1).run() == 1
    removed = proj.cli("project", "dirty", "remove", "--commit", "notebooks")
    assert removed.returncode == 0 and "committed smttask.toml" in removed.stdout
    assert proj.git("status", "--porcelain") == ""


def test_blocking_changes_say_what_to_do_with_each_path(proj):
    tasks = proj.module("from smttask import RecordedTask\n\n@RecordedTask\n"
                        "def one(x: int) -> int:\n    return x\n")
    proj.write("notes/todo.md", "a\n")
    proj.commit()
    proj.write("notes/todo.md", "b\n")
    with pytest.raises(smttask.DirtyRepositoryError) as err:
        tasks.one(x=1).run()
    assert str(err.value).endswith("Commit notes/todo.md, or, if not code, mark its folder "
                                   "dirty: `smttask project dirty add notes`")
    proj.write(f"{proj.pkg}/tasks.py", (proj.root / proj.pkg / "tasks.py").read_text() + "#\n")
    with pytest.raises(smttask.DirtyRepositoryError) as err:
        tasks.one(x=2).run()
    assert f"Commit {proj.pkg}/tasks.py (code and configuration must be committed); commit " \
           "notes/todo.md too, or, if not code, mark its folder dirty: `smttask project " \
           "dirty add notes`" in str(err.value)
    assert proj.cli("project", "dirty", "add", "notes").returncode == 0  # the hint works


def test_dirty_add_offers_to_commit_in_a_terminal(proj):
    child = pexpect.spawn(SMTTASK, ["project", "dirty", "add", "labnotes"], cwd=str(proj.root),
                          env={**PTY_ENV, **GIT_ENV}, encoding="utf-8", timeout=60)
    child.expect(r"Commit smttask.toml now\?")
    child.send("y\r")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert proj.git("status", "--porcelain") == ""
    assert "labnotes" in proj.git("show", "HEAD:smttask.toml")


def test_code_folders_cannot_be_dirty_without_force(proj):
    proj.module("X = 1\n")
    proc = cli("project", "dirty", "add", proj.pkg, cwd=proj.root)
    assert proc.returncode == ConfigError.exit_code
    assert "holds Python code of the project" in proc.stderr and "--force" in proc.stderr
    assert proj.pkg not in (proj.root / "smttask.toml").read_text()
    forced = cli("project", "dirty", "add", "--force", proj.pkg, cwd=proj.root)
    assert forced.returncode == 0
    assert proj.pkg in (proj.root / "smttask.toml").read_text()


def test_info_tells_whether_a_run_may_be_recorded(proj):
    proc = cli("project", "info", cwd=proj.root)
    assert proc.returncode == 0
    assert "testproj" in proc.stdout and "recorded run now: yes" in proc.stdout
    assert "(0 records)" in proc.stdout
    proj.write(f"{proj.pkg}/__init__.py", "# changed\n")
    proj.write("reports/notes.md", "changed\n")
    out = cli("project", "info", cwd=proj.root).stdout
    assert f"no, blocked by: {proj.pkg}/__init__.py" in out
    assert "tolerated in dirty directories: reports/notes.md" in out


def test_malformed_config_is_one_line(proj):
    proj.write("smttask.toml", '[project]\nname = "x"\n[paths]\noutput = "out"\n')
    proc = cli("project", "info", cwd=proj.root)
    assert proc.returncode == ConfigError.exit_code
    assert proc.stderr.startswith("Error: smttask.toml: paths: the output datastore")
    assert proc.stderr.count("\n") == 1


def test_the_wizard_fits_80_columns_and_explains_next_to_the_question(tmp_path):
    from terminal import Terminal

    term = Terminal(["project", "init", "myproj"], tmp_path, 80, 24)
    term.expect(r"^\? Project name: myproj")
    term.send("\x15bad/name\r")
    term.expect("not a valid project name")
    rows = term.rows()
    at = rows.index("? Project name: bad/name")
    # The reason is right below the answer, wrapped at words, and asked again below it.
    assert rows[at + 1].startswith("  ✗ 'bad/name' is not a valid project name")
    assert rows[at + 2].startswith("    ") and rows[at + 3] == "? Project name: bad/name"
    assert not any(rows[at + 4:]), rows  # nothing on the last rows
    term.send("\x15Death Star\r")
    term.expect("Description:")
    rows = term.rows()
    assert "  Description: a new project: a package, an example task, run.py, reports/" \
        in rows  # whole, within 80 columns
    term.send("\r")
    term.expect("Input datastore")
    term.send("\r")
    term.expect("Output datastore")
    term.send("\r")
    term.expect("Dirty directories")
    assert "? Dirty directories (changes there never block a run): (space, enter)" \
        in term.rows()
    term.send("\r")
    term.expect("Other dirty")
    term.send("notes, figs\r")
    term.expect("When code has")
    term.send("\r")
    term.expect("Record store")
    term.send("\r")
    term.expect("create one with a first commit")
    term.send("y")
    term.expect("Create the project")
    rows = term.rows()
    # Every question and its answer on one row of their own.
    for line in ("? Project name: Death Star", "? Template: package",
                 "? Input datastore (earlier results are found here): data",
                 "? Output datastore (new results; inside the input one): data/run_dump",
                 "? Dirty directories (changes there never block a run): done (2 selections)",
                 "? Other dirty directories (comma-separated, empty for none): notes, figs",
                 "? When code has uncommitted changes: error: refuse to record (commit first)",
                 "? Record store (SQLite file, or a postgresql:// URL): .smt/records",
                 "? No git repository here: create one with a first commit? Yes"):
        assert line in rows, (line, rows)
    term.send("n")
    assert term.finish() == 1  # declined: nothing created
    assert not (tmp_path / "myproj").exists()
