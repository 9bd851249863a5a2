"""Shared fixtures: a throwaway git repository holding an smttask project."""

from __future__ import annotations

import contextlib
import gc
import importlib
import importlib.util
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import smttask

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test Scientist",
    "GIT_AUTHOR_EMAIL": "scientist@example.org",
    "GIT_COMMITTER_NAME": "Test Scientist",
    "GIT_COMMITTER_EMAIL": "scientist@example.org",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}

# New SQLite record stores are copies of an empty store cached under the cache folder
# (smttask.provenance.template), which follows HOME. The documentation's sessions each
# have a HOME of their own, and a worker pool's fork server started in one keeps it for
# the rest of its pytest worker's life: its workers then found no cached store and
# imported Django to make each new store. One cache folder for the run, as on a user's
# machine (tests of a missing cache set their own).
os.environ.setdefault("XDG_CACHE_HOME", os.path.join(os.path.expanduser("~"), ".cache"))

# One BLAS thread per process. The suite runs a worker per core, and most tests start
# interpreters that import numpy: OpenBLAS would start a thread per core in each, and its
# start alone costs about 0.1 s of CPU per interpreter (half of numpy's import).
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

# Repositories without git's sample hooks and description: the suite makes some 300 of
# them, and the sample files were a fifth of all the files a run leaves to delete.
if "GIT_TEMPLATE_DIR" not in os.environ:
    _empty = Path(tempfile.gettempdir()) / "smttask-tests-empty-git-template"
    _empty.mkdir(exist_ok=True)
    os.environ["GIT_TEMPLATE_DIR"] = str(_empty)

CONFIG = """\
[project]
name = "testproj"

[repo]
dirty_directories = ["reports"]
"""

#: Two composable recorded tasks (``scale(x=make(n=…), factor=…)``; a negative factor
#: fails), shared by the record-store tests.
SCALE_TASKS = """
from smttask import RecordedTask

@RecordedTask
def make(n: int) -> float:
    return float(n)

@RecordedTask
def scale(x: float, factor: float) -> float:
    if factor < 0:
        raise ValueError("negative factor")
    return x * factor
"""

SMTTASK = str(Path(sys.executable).with_name("smttask"))


def cli(*args: str, cwd: Path, env: dict | None = None, input: str | None = None,
        process: bool = False) -> subprocess.CompletedProcess:
    """``smttask ARGS`` run from ``cwd``; its exit code, stdout and stderr.

    By default in this process, through click's test runner (no interpreter start-up, no
    Sumatra import per call); ``process=True`` runs the installed command instead, for
    tests of what only a real process shows (signals, start-up, a fresh interpreter).
    """
    env = {**GIT_ENV, **(env or {})}
    if process:
        return subprocess.run([SMTTASK, *args], cwd=cwd, capture_output=True, text=True,
                              input=input, env={**os.environ, **env}, timeout=600)
    from click.testing import CliRunner

    from smttask.cli import main

    here = os.getcwd()
    os.chdir(cwd)
    try:
        result = CliRunner().invoke(main, list(args), input=input, env=env,
                                    catch_exceptions=False, prog_name="smttask")
    finally:
        os.chdir(here)
    return subprocess.CompletedProcess(["smttask", *args], result.exit_code, result.stdout,
                                       result.stderr)


class Proj:
    """A project in a fresh git repository, with a uniquely named package for its tasks."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.pkg = f"pkg_{secrets.token_hex(4)}"

    def git(self, *args: str) -> str:
        return subprocess.run(["git", *args], cwd=self.root, check=True, capture_output=True,
                              text=True).stdout

    def write(self, rel: str, text: str) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
        if path.suffix == ".py":  # a rewrite within the second, same size: stale bytecode
            Path(importlib.util.cache_from_source(str(path))).unlink(missing_ok=True)
        return path

    def commit(self, message: str = "work") -> None:
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", message)

    def module(self, source: str, name: str = "tasks", commit: bool = True):
        """Write ``<pkg>/<name>.py``, commit it, import and return it."""
        self.write(f"{self.pkg}/{name}.py", source)
        if commit:
            self.commit(f"add {name}")
        importlib.invalidate_caches()
        return importlib.import_module(f"{self.pkg}.{name}")

    def run_python(self, code: str, check: bool = True, env: dict | None = None,
                   args: list[str] = (), **kw) -> subprocess.CompletedProcess:
        """Run ``code`` (with ``args`` as ``sys.argv[1:]``) in a fresh interpreter in the
        project folder."""
        env = {**os.environ, **GIT_ENV, "PYTHONPATH": str(self.root), **(env or {})}
        proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args],
                              cwd=self.root,
                              capture_output=True, text=True, env=env, **kw)
        if check and proc.returncode != 0:
            raise AssertionError(f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        return proc

    def cli(self, *args: str, env: dict | None = None, process: bool = False,
            cwd: Path | None = None) -> subprocess.CompletedProcess:
        """Run ``smttask ARGS`` in the project folder: in this process (click's runner),
        or as a real command when a process boundary is under test."""
        return cli(*args, cwd=cwd or self.root, env={"PYTHONPATH": str(self.root), **(env or {})},
                   process=process)

    @property
    def project(self) -> smttask.config.Project:
        return smttask.config.find_project(self.root)


@pytest.fixture(scope="session")
def postgres():
    """A real PostgreSQL server for the session (see tests/services.py)."""
    from services import Postgres

    server = Postgres()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def slurm_cluster():
    """A real single-node SLURM cluster for the session (see tests/services.py)."""
    from services import Slurm

    cluster = Slurm()
    yield cluster
    cluster.stop()


@pytest.fixture
def slurm(slurm_cluster, monkeypatch):
    monkeypatch.setenv("SLURM_CONF", str(slurm_cluster.conf))
    return slurm_cluster


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch):
    for key, value in GIT_ENV.items():
        monkeypatch.setenv(key, value)
    # Tables fit COLUMNS when it is set: tests ask for a width explicitly.
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.delenv("LINES", raising=False)
    monkeypatch.setattr(smttask.config, "record", True)


@contextlib.contextmanager
def new_proj(root: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Proj]:
    """A committed project in ``root``, the working directory (and on the import path)
    while the context lasts; its package is forgotten after."""
    root.mkdir()
    p = Proj(root)
    p.git("init", "-q", "-b", "main")
    p.write("smttask.toml", CONFIG)
    p.write(".gitignore", ".smt/\ndata/\ntasks/\n__pycache__/\n")
    p.write(f"{p.pkg}/__init__.py", "")
    p.write("reports/notes.md", "# notes\n")
    p.commit("init")
    monkeypatch.chdir(root)
    monkeypatch.syspath_prepend(str(root))
    yield p
    for name in [m for m in sys.modules if m == p.pkg or m.startswith(p.pkg + ".")]:
        del sys.modules[name]


@pytest.fixture
def proj(tmp_path, monkeypatch) -> Iterator[Proj]:
    with new_proj(tmp_path / "proj", monkeypatch) as p:
        yield p


class Hang(BaseException):
    """Code under test ran past its watchdog (BaseException: no loader may swallow it)."""


@contextlib.contextmanager
def watchdog(seconds: float) -> Iterator[None]:
    """Raise :class:`Hang` in this thread if the block runs longer than ``seconds``."""
    def ring(signum, frame):
        raise Hang(f"ran longer than {seconds} s")

    previous = signal.signal(signal.SIGALRM, ring)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


_cleaner: subprocess.Popen | None = None


def pytest_sessionstart(session):
    """Delete the temporary folders of earlier runs (all but the last) in the background.

    pytest deletes them at the end of the run, one run's 25,000 files: 6-8 s of waiting on
    a disk mounted with ``discard``, after the last test. A folder still locked belongs to
    a run in progress and is left alone.
    """
    global _cleaner
    factory = getattr(session.config, "_tmp_path_factory", None)
    if os.environ.get("PYTEST_XDIST_WORKER") or factory is None or factory._given_basetemp:
        return
    current = factory.getbasetemp()
    runs = sorted((int(p.name[7:]), p) for p in current.parent.glob("pytest-*")
                  if p.name[7:].isdigit())
    old = [p for _, p in runs[:-2] if p != current and not (p / ".lock").exists()]
    doomed = []
    for path in old:
        aside = path.with_name(f"garbage-{secrets.token_hex(8)}")
        with contextlib.suppress(OSError):
            path.rename(aside)
            doomed.append(str(aside))
    if doomed:
        _cleaner = subprocess.Popen(["rm", "-rf", "--", *doomed], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, start_new_session=True)


def pytest_collection_finish(session):
    """What the collection imported stays for the whole run: set it apart from the garbage
    collector's full passes, which scanned it again each time (in a full run, 12 s of the
    workers' CPU went to collections; 10 s with this)."""
    gc.collect()
    gc.freeze()


def pytest_sessionfinish(session):
    if _cleaner is not None:
        _cleaner.wait()


def pytest_terminal_summary(terminalreporter):
    """One line with the fuzz suite's counts (tests/test_fuzz.py), and one with the docs'
    blocks that ran (tests/test_docs.py), when they ran."""
    totals = {"fuzz_cases": 0, "fuzz_unexpected": 0, "fuzz_hangs": 0}
    seen = set()
    blocks: dict[str, tuple[str, str]] = {}
    illustrations = None
    for outcome, reports in terminalreporter.stats.items():
        for rep in reports:
            props = dict(getattr(rep, "user_properties", ()))
            if "doc_block" in props and getattr(rep, "when", "call") == "call":
                blocks[rep.nodeid] = (props["doc_block"], outcome)
            if "doc_illustrations" in props:
                illustrations = props["doc_illustrations"]
            if "fuzz_cases" in props and rep.nodeid not in seen:
                seen.add(rep.nodeid)
                for key in totals:
                    totals[key] += props.get(key, 0)
    if blocks:
        docs = {doc for doc, _ in blocks.values()}
        passed = sum(outcome == "passed" for _, outcome in blocks.values())
        marked = "" if illustrations is None else f", {illustrations} marked illustration"
        terminalreporter.write_line(f"docs: {len(blocks)} blocks ran in {len(docs)} "
                                    f"documents, {passed} as shown{marked}")
    if seen:
        terminalreporter.write_line(
            f"fuzz: {totals['fuzz_cases']:,} cases in {len(seen)} tests, "
            f"{totals['fuzz_unexpected']} exceptions outside the SmttaskError tree, "
            f"{totals['fuzz_hangs']} hangs")
