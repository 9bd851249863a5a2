"""Running git: the one place that calls the ``git`` program, and the small operations
built directly on it (repository root, author, commits, status of paths, merges)."""

from __future__ import annotations

import functools
import os
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ..errors import GitError


def _run(cwd: Path | str, *args: str, stdin: str | None = None
         ) -> subprocess.CompletedProcess[str]:
    try:  # never a password prompt: a clone that needs one fails instead of waiting
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                              check=False, input=stdin,
                              env={**os.environ, "GIT_TERMINAL_PROMPT": "0"})
    except FileNotFoundError:
        if not Path(cwd).is_dir():
            raise GitError(f"{cwd}: folder does not exist") from None
        raise GitError("git is not installed; smttask needs git to pin the code of each "
                       "run (apt-get install git)") from None


def _git(cwd: Path | str, *args: str, stdin: str | None = None) -> str:
    proc = _run(cwd, *args, stdin=stdin)
    if proc.returncode != 0:
        msg = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "git failed"
        raise GitError(f"git {args[0]} in {cwd}: {msg}")
    return proc.stdout


@functools.cache
def repo_root(path: Path) -> Path:
    """The top folder of the git repository containing ``path``."""
    proc = _run(path, "rev-parse", "--show-toplevel")
    if proc.returncode != 0:
        raise GitError(
            f"{path} is not inside a git repository; run `git init` and commit your code "
            "(recorded runs pin the commit that produced each result)"
        )
    return Path(proc.stdout.strip()).resolve()


def in_repository(path: Path) -> bool:
    """True if ``path`` (or, when it does not exist yet, its nearest existing parent) is in
    a git repository."""
    probe = next(p for p in (path, *path.parents) if p.exists())
    return _run(probe, "rev-parse", "--show-toplevel").returncode == 0




@functools.cache
def git_user(root: Path) -> str:
    """``Name <email>`` of the git author (config or GIT_AUTHOR_* variables), or ''."""
    proc = _run(root, "var", "GIT_AUTHOR_IDENT")
    ident = proc.stdout.strip()
    return ident.rsplit(" ", 2)[0] if proc.returncode == 0 and ident else ""


def commit_file(path: Path, message: str) -> str:
    """Commit this one file as it is now (other staged changes stay staged); the commit."""
    path = Path(path).resolve()
    _git(path.parent, "add", "--", path.name)
    proc = _run(path.parent, "commit", "-q", "-m", message, "--", path.name)
    if proc.returncode != 0:
        why = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "git failed"
        raise GitError(f"cannot commit {path.name}: {why} (set `git config user.name` and "
                       "`user.email` if git asks who you are)")
    return _git(path.parent, "rev-parse", "HEAD").strip()


def commit_all(root: Path, message: str) -> str | None:
    """``git init`` (if needed), add everything and commit; the commit, or None when git
    cannot commit (no user name or email configured)."""
    if not (root / ".git").exists():
        _git(root, "init", "-q")
    _git(root, "add", "-A")
    if _run(root, "commit", "-q", "-m", message).returncode != 0:
        return None
    return _git(root, "rev-parse", "HEAD").strip()



def uncommitted(root: Path, paths: Sequence[str]) -> list[str]:
    """Those of ``paths`` (relative to ``root``) with uncommitted changes, staged or not
    (untracked files included); empty outside a repository."""
    if not paths or not in_repository(root):
        return []
    out = _git(root, "status", "--porcelain", "-z", "--untracked-files=all", "--", *paths)
    prefix = Path(root).resolve().relative_to(repo_root(Path(root).resolve())).as_posix()
    found = {entry[3:] for entry in out.split("\0") if len(entry) > 3}  # repo-relative
    return sorted(p if prefix == "." else p.removeprefix(prefix + "/") for p in found)


def merge_texts(ours: str, base: str, theirs: str, labels: tuple[str, str, str]
                ) -> tuple[str, int]:
    """Three-way merge of three versions of a text (``git merge-file``): the merged text
    and its number of conflicts, each marked ``<<<<<<< ours`` … ``>>>>>>> theirs``."""
    with tempfile.TemporaryDirectory(prefix="smttask-merge-") as tmp:
        files = []
        for name, text in (("ours", ours), ("base", base), ("theirs", theirs)):
            path = Path(tmp) / name
            path.write_text(text, encoding="utf-8")
            files.append(str(path))
        args = [a for label in labels for a in ("-L", label)]
        proc = _run(tmp, "merge-file", "-p", *args, *files)
    if not 0 <= proc.returncode < 128:
        raise GitError(f"git merge-file failed: {proc.stderr.strip() or proc.returncode}")
    return proc.stdout, proc.returncode
