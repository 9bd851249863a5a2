"""Earlier commits: temporary checkouts of a record's commit, clones of a remote, and the
remote's URL without credentials (reproducing and sharing records)."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

from ..errors import GitError
from .git import _git, _run


def has_commit(root: Path, commit: str) -> bool:
    """True if ``commit`` names a commit of the repository at ``root``."""
    return bool(commit) and _run(root, "cat-file", "-e", f"{commit}^{{commit}}").returncode == 0


@contextlib.contextmanager
def checkout(root: Path, commit: str, diff: str = "") -> Iterator[Path]:
    """A temporary ``git worktree`` of ``commit`` (with ``diff`` applied), removed after.

    The user's working tree, index and branches are never touched.
    """
    if not has_commit(root, commit):
        raise GitError(f"commit {commit[:10] or '(none)'} is not in the repository {root} "
                       "(was the history rewritten, or is this another clone?)")
    parent = Path(tempfile.mkdtemp(prefix="smttask-checkout-"))
    tree = parent / "tree"
    try:
        _git(root, "worktree", "add", "--detach", "--quiet", str(tree), commit)
        try:
            if diff.strip():
                _apply(tree, diff, commit)
            yield tree
        finally:
            _run(root, "worktree", "remove", "--force", str(tree))
            _run(root, "worktree", "prune")
    finally:
        shutil.rmtree(parent, ignore_errors=True)


def _apply(tree: Path, diff: str, commit: str) -> None:
    text = diff if diff.endswith("\n") else diff + "\n"
    proc = _run(tree, "apply", "--whitespace=nowarn", "-", stdin=text)
    if proc.returncode != 0:
        msg = (proc.stderr.strip().splitlines() or ["git apply failed"])[-1]
        raise GitError(f"the recorded diff does not apply to commit {commit[:10]}: {msg}")


@contextlib.contextmanager
def clone(url: str) -> Iterator[Path]:
    """A fresh clone of ``url`` (nothing checked out) in a temporary folder, deleted after;
    take commits from it with :func:`checkout`."""
    parent = Path(tempfile.mkdtemp(prefix="smttask-clone-"))
    try:
        proc = _run(parent, "clone", "--quiet", "--no-checkout", url, "repo")
        if proc.returncode != 0:
            msg = (proc.stderr.strip().splitlines() or ["git clone failed"])[-1]
            raise GitError(f"cannot clone {_without_credentials(url)}: {msg}")
        yield parent / "repo"
    finally:
        shutil.rmtree(parent, ignore_errors=True)


def _without_credentials(url: str) -> str:
    """``url`` with any user name and password removed (they must never be shared)."""
    parts = urllib.parse.urlsplit(url)
    if not parts.scheme or "@" not in parts.netloc:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit(parts._replace(netloc=host))


def remote_url(root: Path) -> str | None:
    """The URL of the ``origin`` remote (else the first remote), credentials removed;
    None when the repository has no remote."""
    names = _git(root, "remote").split()
    if not names:
        return None
    name = "origin" if "origin" in names else names[0]
    url = _git(root, "remote", "get-url", name).strip()
    return _without_credentials(url) if url else None


