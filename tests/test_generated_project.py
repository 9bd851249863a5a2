"""Projects made by `smttask project init` work at once, from any folder, uninstalled.

Every command that loads task files or records' tasks makes the project's own code
importable itself (the project folder and ``src/``); the project is found from the task
files when the working directory is outside it. No PYTHONPATH, no `pip install -e .`.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import textwrap
import tomllib
import zipfile
from pathlib import Path

import pytest
from conftest import GIT_ENV, cli

import smttask
from smttask import config
from smttask.view import RecordStoreView


@pytest.fixture
def clean_imports(monkeypatch, tmp_path):
    """Undo what a test's in-process commands add to sys.path, sys.modules and the
    active project (the generated packages are uniquely named, but other tests must not
    see them)."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delenv("PYTHONPATH", raising=False)
    yield
    for name, module in list(sys.modules.items()):
        if str(getattr(module, "__file__", None) or "").startswith(str(tmp_path)):
            del sys.modules[name]
    config.activate(None)


def python(code: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    """``code`` in a fresh interpreter, without PYTHONPATH."""
    environ = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, text=True,
                          capture_output=True, env={**environ, **GIT_ENV, **env})
    assert proc.returncode == 0, proc.stderr
    return proc


def package_project(tmp_path: Path, sweep: bool = True) -> tuple[Path, str]:
    """`smttask project init --no-input NAME` and its `python run.py` (six task files)."""
    name = f"deathstar_{secrets.token_hex(3)}"
    made = cli("project", "init", "--no-input", name, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    root = tmp_path / name
    if sweep:
        subprocess.run([sys.executable, "run.py"], cwd=root, check=True, capture_output=True,
                       env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    return root, name


def test_package_project_from_its_folder_a_subfolder_and_outside(tmp_path, clean_imports):
    root, name = package_project(tmp_path)
    files = sorted((root / "tasks").glob("*.taskdesc.json"))
    assert len(files) == 6
    sub, outside = root / "reports", tmp_path
    ran = cli("run", "-n", "2", "tasks", cwd=root)
    assert ran.returncode == 0 and "6 ran" in ran.stderr, ran.stderr
    status = cli("status", "../tasks", cwd=sub)
    assert status.returncode == 0, status.stderr
    assert status.stdout.count("on disk ") == 6
    why = cli("why", str(files[0]), cwd=outside)
    assert why.returncode == 0 and "result on disk" in why.stdout, why.stderr
    found = cli("store", "find-output", str(files[0]), cwd=outside)
    assert found.returncode == 0, found.stderr
    assert Path(found.stdout.strip()).is_file()
    label = RecordStoreView(config.load_project(root)).latest.label
    recreated = cli("store", "recreate", label, "--out", str(tmp_path / "again"), cwd=sub)
    assert recreated.returncode == 0, recreated.stderr
    assert Path(recreated.stdout.strip()).name in {f.name for f in files}
    # Links deleted: `store rebuild` (from a subfolder) restores every one.
    links = sorted((root / "data" / "analyze").glob("*_result.json"))
    assert len(links) == 6
    for link in links:
        link.unlink()
    rebuilt = cli("store", "rebuild", cwd=sub)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "6 link(s) written, 0 skipped" in rebuilt.stdout
    assert all(link.is_symlink() and link.exists() for link in links)
    # A record lost: create-surrogates (from outside, with the path) records the result.
    smttask.provenance.delete_records(config.load_project(root), [label])
    made = cli("store", "create-surrogates", str(root / "tasks"), cwd=outside)
    assert made.returncode == 0, made.stderr
    assert "1 surrogate record(s) created, 5 already recorded, 0 skipped" in made.stderr
    snake = cli("export", "snakemake", "-o", str(tmp_path / "Snakefile"), str(root / "tasks"),
                cwd=outside)
    assert snake.returncode == 0, snake.stderr
    again = cli("run", "-n", "1", str(root / "tasks"), cwd=outside)
    assert again.returncode == 0 and "6 loaded" in again.stderr, again.stderr


def test_package_project_in_fresh_processes_from_outside(tmp_path):
    """The installed command and the library, in fresh interpreters, without PYTHONPATH."""
    root, name = package_project(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    smt = str(Path(sys.executable).with_name("smttask"))

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([smt, *args], cwd=tmp_path, capture_output=True, text=True,
                              env={**env, **GIT_ENV}, timeout=600)

    ran = run("run", "-n", "2", str(root / "tasks"))
    assert ran.returncode == 0 and "6 ran" in ran.stderr, ran.stderr
    status = run("status", str(root / "tasks"))
    assert status.returncode == 0 and status.stdout.count("on disk ") == 6, status.stderr
    # A record's task, rebuilt from Python outside the project.
    out = python(f"""
        from smttask import config
        from smttask.view import RecordStoreView
        record = RecordStoreView(config.load_project({str(root)!r})).latest
        print(type(record.task).__module__, record.task.digest == record.digest)
        """, cwd=tmp_path)
    assert out.stdout.split() == [f"{name}.tasks", "True"]


SRC_TASKS = """
from smttask import RecordedTask

@RecordedTask
def double(x: float) -> float:
    return 2 * x
"""


def src_layout_project(tmp_path: Path) -> tuple[Path, str]:
    """An existing repository with its code in src/, `init --template minimal` committed,
    and two task files saved: its folder and package name."""
    root = tmp_path / "existing"
    pkg = f"lab_{secrets.token_hex(3)}"
    (root / "src" / pkg).mkdir(parents=True)
    (root / "src" / pkg / "__init__.py").write_text("")
    (root / "src" / pkg / "tasks.py").write_text(SRC_TASKS)
    git = {**os.environ, **GIT_ENV}
    subprocess.run(["git", "init", "-q"], cwd=root, check=True, env=git)
    made = cli("project", "init", "--template", "minimal", "--no-input", cwd=root)
    assert made.returncode == 0, made.stderr
    subprocess.run(["git", "add", "-A"], cwd=root, check=True, env=git)
    subprocess.run(["git", "commit", "-qm", "smttask"], cwd=root, check=True, env=git)
    python(f"""
        import sys; sys.path.insert(0, "src")
        from {pkg}.tasks import double
        for x in (1.0, 2.0):
            double(x=x).save("tasks")
        """, cwd=root)
    return root, pkg


def test_minimal_project_with_a_src_layout(tmp_path, clean_imports):
    """An existing repository with its code in src/: init --template minimal, commit, and
    every command finds the code."""
    root, pkg = src_layout_project(tmp_path)
    assert config.load_project(root).packages == [pkg]
    ran = cli("run", "-n", "1", "../tasks", cwd=root / "src")
    assert ran.returncode == 0 and "2 ran" in ran.stderr, ran.stderr
    status = cli("status", str(root / "tasks"), cwd=tmp_path)
    assert status.returncode == 0 and status.stdout.count("on disk ") == 2, status.stderr


def test_rebuild_says_what_it_skipped_and_fails(tmp_path, clean_imports):
    """A record whose task cannot be imported any more is skipped with the reason, and
    the exit code says so."""
    root, name = package_project(tmp_path)
    assert cli("run", "-n", "1", "tasks", cwd=root).returncode == 0
    for link in (root / "data" / "analyze").glob("*_result.json"):
        link.unlink()
    (root / name / "tasks.py").rename(root / name / "analysis.py")  # the module moved
    for module in [m for m in sys.modules if m.startswith(name)]:
        del sys.modules[module]
    out = cli("store", "rebuild", cwd=root)
    assert out.returncode == 1
    assert "0 link(s) written, 6 skipped" in out.stdout
    assert f"cannot import '{name}.tasks'" in out.stderr


#: A wheel into a folder (the build backends come from the test environment).
PIP_WHEEL = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
             "-w"]


def test_generated_project_is_an_installable_package_pinned_to_this_smttask(tmp_path):
    root, name = package_project(tmp_path, sweep=False)
    meta = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    pin = next(d for d in meta["dependencies"] if d.startswith("smttask"))
    from packaging.requirements import Requirement
    from packaging.version import Version

    spec = Requirement(pin).specifier
    assert Version(smttask.__version__) in spec
    assert Version("0.2.0") not in spec  # PyPI's original smttask never satisfies it
    assert Version(smttask.__version__) > Version("0.2.0")
    assert "pip install -e ." in (root / "README.md").read_text()
    wheel = subprocess.run([*PIP_WHEEL, str(tmp_path / "dist"), str(root)], capture_output=True,
                           text=True)
    assert wheel.returncode == 0, wheel.stderr
    [built] = (tmp_path / "dist").glob("*.whl")
    with zipfile.ZipFile(built) as zf:
        names = zf.namelist()
        metadata = zf.read(next(n for n in names if n.endswith("METADATA"))).decode()
    assert f"{name}/tasks.py" in names
    assert f"Requires-Dist: {pin}" in metadata


def test_this_smttask_builds_a_wheel_that_sorts_after_the_original(tmp_path):
    """What `make dist` builds: this version (after PyPI's 0.2.0), templates inside."""
    from packaging.version import Version

    checkout = Path(smttask.__file__).resolve().parents[1]
    built = subprocess.run([*PIP_WHEEL, str(tmp_path), str(checkout)], capture_output=True,
                           text=True)
    assert built.returncode == 0, built.stderr
    [wheel] = tmp_path.glob("smttask-*.whl")
    version = Version(wheel.name.split("-")[1])
    assert version > Version("0.2.0") and str(version) == smttask.__version__
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
    assert "smttask/project_templates/package/pyproject.toml.jinja" in names
