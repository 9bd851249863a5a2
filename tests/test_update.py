"""`smttask project update`: an older template's project receives the current template,
with the user's edits kept and conflicts shown (real copier, real git merge-file)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from conftest import cli

from smttask import ScaffoldError, scaffold, templates

OLD = Path(__file__).parent / "fixtures" / "templates" / "package-old"


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True,
                          text=True).stdout


@pytest.fixture
def old_project(tmp_path) -> Path:
    """A package project rendered from the older template (a test fixture), committed."""
    root = tmp_path / "deathstar"
    scaffold.init(root, scaffold.make_answers(name="deathstar", template="package"),
                  source=OLD)
    assert "smt list -l" in (root / "README.md").read_text()  # the old template's
    assert not (root / "labnotes" / "README.md").exists()
    return root


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_answers_name_the_template_and_the_render_is_kept(old_project):
    answers = (old_project / ".smttask-answers.yml").read_text()
    assert "_src_path: smttask:package\n" in answers
    assert f"smttask_version: {templates.version()}\n" in answers
    snap = json.loads((old_project / ".smttask-template.json").read_text())
    assert snap["template"] == "package"
    assert snap["files"]["README.md"] == (old_project / "README.md").read_text()
    assert set(snap["files"]) == {"README.md", "TODO.md", "pyproject.toml", "run.py",
                                  "reports/README.md", "deathstar/__init__.py",
                                  "deathstar/tasks.py"}
    assert git(old_project, "status", "--porcelain") == ""  # committed with the project


def test_update_merges_template_changes_with_edits(old_project):
    readme, run = old_project / "README.md", old_project / "run.py"
    readme.write_text(readme.read_text() + "\n## My notes\n\nThe sweep takes 2 minutes.\n")
    run.write_text(run.read_text() + "print('sweep saved')\n")
    git(old_project, "commit", "-qam", "my edits")
    proc = cli("project", "update", cwd=old_project)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        f"package template: smttask {templates.version()} → {templates.version()}",
        "      merged  README.md",
        "        kept  TODO.md  (no longer in the template)",
        "  up to date  deathstar/__init__.py",
        "  up to date  deathstar/tasks.py",
        "       added  labnotes/README.md",
        "     updated  pyproject.toml",
        "  up to date  reports/README.md",
        "      merged  run.py",
        "4 file(s) changed; review with `git diff`, then commit",
    ]
    text = readme.read_text()
    assert "smttask graph tasks/" in text and "smt list -l" not in text  # the template's
    assert text.endswith("The sweep takes 2 minutes.\n")  # the user's
    code = run.read_text()
    assert code.startswith('"""Build a small parameter sweep') and \
        code.endswith("print('sweep saved')\n")
    assert (old_project / "labnotes" / "README.md").is_file()
    assert (old_project / "TODO.md").is_file()
    snap = json.loads((old_project / ".smttask-template.json").read_text())
    assert "smttask graph tasks/" in snap["files"]["README.md"] and "TODO.md" not in snap["files"]
    git(old_project, "add", "-A")
    git(old_project, "commit", "-qm", "update")
    again = cli("project", "update", cwd=old_project)
    assert again.returncode == 0
    assert "      yours  README.md" in again.stdout and again.stdout.endswith(
        "nothing to change\n")


def test_a_conflicting_edit_is_shown_and_nothing_is_lost(old_project):
    run = old_project / "run.py"
    edit(run, '"""The example sweep: one task file per parameter set.',
         '"""My sweep: dt and nbins, one task file each.')
    git(old_project, "commit", "-qam", "my docstring")
    proc = cli("project", "update", cwd=old_project)
    assert proc.returncode == 1
    assert "    conflict  run.py  (1 conflict: resolve the <<<<<<< markers)" in proc.stdout
    assert proc.stderr == ("1 file(s) with conflicts: run.py; resolve the <<<<<<< markers, "
                           "then commit\n")
    v = templates.version()
    assert run.read_text().startswith(
        '<<<<<<< yours\n"""My sweep: dt and nbins, one task file each.\n=======\n'
        f'"""Build a small parameter sweep and save one task file per parameter set.\n'
        f">>>>>>> template (smttask {v})\n")
    assert "smttask graph tasks/" in (old_project / "README.md").read_text()


def test_uncommitted_edits_stop_the_update(old_project):
    readme = old_project / "README.md"
    readme.write_text(readme.read_text() + "draft\n")
    before = readme.read_text()
    proc = cli("project", "update", cwd=old_project)
    assert proc.returncode == ScaffoldError.exit_code
    assert proc.stderr == ("Error: uncommitted changes in files the update would change: "
                           "README.md; commit them first (nothing was changed)\n")
    assert readme.read_text() == before and not (old_project / "labnotes/README.md").exists()
    dry = cli("project", "update", "--dry-run", cwd=old_project)
    assert dry.returncode == 1  # the same check


def test_dry_run_changes_nothing(old_project):
    proc = cli("project", "update", "--dry-run", cwd=old_project)
    assert proc.returncode == 0, proc.stderr
    assert "(dry run: nothing written)" in proc.stdout and "added  labnotes/README.md" in \
        proc.stdout
    assert git(old_project, "status", "--porcelain") == ""


def test_a_project_from_before_the_snapshot_gets_conflicts_not_losses(old_project):
    answers = old_project / ".smttask-answers.yml"
    edit(answers, "_src_path: smttask:package", f"_src_path: {OLD.parent / 'package'}")
    (old_project / ".smttask-template.json").unlink()
    git(old_project, "commit", "-qam", "as projects were made before")
    proc = cli("project", "update", cwd=old_project)
    assert proc.returncode == 1
    assert "Note: no .smttask-template.json" in proc.stdout
    readme = (old_project / "README.md").read_text()
    assert "smt list -l" in readme and "smttask graph tasks/" in readme  # both sides
    assert "_src_path: smttask:package" in answers.read_text()


def test_no_answers_file_is_one_line(proj):
    proc = proj.cli("project", "update")
    assert proc.returncode == ScaffoldError.exit_code
    assert proc.stderr.startswith("Error: ") and proc.stderr.count("\n") == 1
    assert ".smttask-answers.yml is missing" in proc.stderr
