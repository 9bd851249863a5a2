"""Git state of the project: the commit, and the changes that block a recorded run.

The only module that runs git. A recorded run needs a tree that is clean outside the
*dirty directories*: staged or unstaged changes to tracked files block it, and so does an
untracked Python file inside the task's own package (it could be imported without ever
being committed). Changes inside dirty directories never block; they are reported as
tolerated so that the record can say so.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.parse
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

from .errors import DirtyRepositoryError, GitError, TaskDefinitionError

__all__ = [
    "Checked",
    "RepoState",
    "checkout",
    "clone",
    "code_location",
    "commit_all",
    "commit_file",
    "diff",
    "git_user",
    "has_commit",
    "in_repository",
    "loaded_code",
    "new_files_diff",
    "merge_texts",
    "pin",
    "remote_url",
    "repo_root",
    "require_recordable",
    "require_tracked",
    "state",
    "unblock_hint",
    "uncommitted",
    "untracked",
]


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


@dataclass(frozen=True)
class RepoState:
    """What git says about the tree, split by the dirty-directory rule (repo-relative paths)."""

    root: Path
    commit: str | None
    blocking: list[str] = field(default_factory=list)
    tolerated: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.blocking

    def verdict(self, on_changed: str) -> str:
        """May a run be recorded now? ("yes", or "no" and why), as ``project info`` says."""
        if self.commit is None:
            text = "no: commit your code first"
        elif self.blocking and on_changed == "error":
            text = "no, blocked by: " + ", ".join(self.blocking)
        elif self.blocking:
            text = "yes, recording the diff of: " + ", ".join(self.blocking)
        else:
            text = "yes"
        if self.tolerated:
            text += f" (tolerated in dirty directories: {', '.join(self.tolerated)})"
        return text


@dataclass(frozen=True)
class Checked:
    """A repository state that allows recording, with the diff to record (or '')."""

    state: RepoState
    diff: str = ""


def _under(path: str, dirs: list[PurePosixPath]) -> bool:
    p = PurePosixPath(path.rstrip("/"))
    return any(p == d or p.is_relative_to(d) for d in dirs)


def _has_python(path: Path) -> bool:
    if path.is_file():
        return path.suffix == ".py"
    return path.is_dir() and any(path.rglob("*.py"))


def state(
    path: Path, dirty_directories: Sequence[str] = (), code_paths: Sequence[str] = ()
) -> RepoState:
    """Parse ``git status`` once: the commit, blocking and tolerated paths.

    ``code_paths`` are repo-relative paths (a package folder or a module file) where an
    untracked Python file also blocks.
    """
    root = repo_root(Path(path).resolve())
    out = _git(root, "status", "--porcelain=v2", "-z", "--branch", "--untracked-files=normal",
               "--ignore-submodules=none")
    dirty = [PurePosixPath(d) for d in dirty_directories]
    code = [PurePosixPath(c) for c in code_paths]
    commit: str | None = None
    changed: list[str] = []
    entries = out.split("\0")
    i = 0
    while i < len(entries):
        entry = entries[i]
        i += 1
        if not entry:
            continue
        kind = entry[0]
        if entry.startswith("# branch.oid "):
            oid = entry.split()[2]
            commit = None if oid == "(initial)" else oid
        elif kind == "1":
            changed.append(entry.split(" ", 8)[8])
        elif kind == "2":
            changed.append(entry.split(" ", 9)[9])
            changed.append(entries[i])  # the rename's origin
            i += 1
        elif kind == "u":
            changed.append(entry.split(" ", 10)[10])
        elif kind == "?":
            rel = entry[2:]
            if _under(rel, code) or any(PurePosixPath(c).is_relative_to(rel.rstrip("/"))
                                        for c in code_paths):
                if _has_python(root / rel):
                    changed.append(rel)
    blocking = sorted({p for p in changed if not _under(p, dirty)})
    tolerated = sorted({p for p in changed if _under(p, dirty)})
    return RepoState(root=root, commit=commit, blocking=blocking, tolerated=tolerated)


def diff(root: Path, dirty_directories: Sequence[str] = ()) -> str:
    """``git diff HEAD`` without the dirty directories."""
    excludes = [f":(exclude){d}" for d in dirty_directories]
    return _git(root, "diff", "HEAD", "--no-color", "--", ".", *excludes)


_pinned: Checked | None = None


def pin(checked: Checked | None) -> None:
    """Reuse one checked state for every later run in this process (a batch checks once)."""
    global _pinned
    _pinned = checked


def code_location(module_name: str, root: Path) -> tuple[Path, str]:
    """(the module's file, the repo-relative path of its top-level package or module)."""
    module = sys.modules[module_name]
    file = Path(module.__file__).resolve()  # type: ignore[arg-type]
    top = sys.modules[module_name.partition(".")[0]]
    top_file = Path(top.__file__).resolve()  # type: ignore[arg-type]
    top_path = top_file.parent if top_file.name == "__init__.py" else top_file
    if not top_path.is_relative_to(root):
        raise TaskDefinitionError(
            f"{module_name} ({file}) lies outside the project repository {root}; "
            "recorded tasks must be defined in the project's own code"
        )
    return file, top_path.relative_to(root).as_posix()


def require_recordable(
    path: Path, dirty_directories: Sequence[str], code_paths: Sequence[str], on_changed: str
) -> Checked:
    """The repo state and the diff to record, or DirtyRepositoryError.

    Under ``on_changed="error"`` blocking changes raise; under ``"store-diff"`` they are
    returned as a diff (dirty directories excluded) and the run may go on.
    """
    if _pinned is not None and _pinned.state.root == repo_root(Path(path).resolve()):
        return _pinned
    st = state(path, dirty_directories, code_paths)
    if st.commit is None:
        raise DirtyRepositoryError(
            f"the repository {st.root} has no commit yet; commit your code first "
            "(each record pins the commit that produced it)"
        )
    if not st.blocking:
        return Checked(st)
    if on_changed == "store-diff":
        return Checked(st, diff(st.root, dirty_directories))
    shown = ", ".join(st.blocking[:10]) + (" …" if len(st.blocking) > 10 else "")
    raise DirtyRepositoryError(
        f"uncommitted changes block recording: {shown}. "
        + unblock_hint(st.blocking, Path(path).resolve().relative_to(st.root), code_paths),
        st.blocking,
    )


def unblock_hint(blocking: Sequence[str], project: PurePosixPath | Path,
                 code_paths: Sequence[str] = ()) -> str:
    """What to do about blocking changes (repo-relative paths), path by path: code, files
    directly in the project folder ``project`` (repo-relative; smttask.toml,
    pyproject.toml) and files outside it must be committed; other files may instead have
    their top folder below the project folder marked dirty."""
    base = PurePosixPath(*Path(project).parts)
    code = [PurePosixPath(c) for c in code_paths]
    commit: list[str] = []
    folders: dict[str, list[str]] = {}
    for rel in blocking:
        p = PurePosixPath(rel.rstrip("/"))
        inside = p.relative_to(base).parts if p.is_relative_to(base) else ()
        if len(inside) < 2 or p.suffix in (".py", ".pyx") or _under(rel, code):
            commit.append(rel)
        else:
            folders.setdefault(inside[0], []).append(rel)
    others = [rel for found in folders.values() for rel in found]
    parts = []
    if commit and not others:
        parts.append("Commit it" if len(commit) == 1 else "Commit them")
    elif commit:
        parts.append(f"Commit {_few(commit)} (code and configuration must be committed)")
    if others:
        verb = "commit" if commit else "Commit"
        also = " too" if commit else ""
        parts.append(f"{verb} {_few(others)}{also}, or, if not code, mark "
                     f"{'its folder' if len(folders) == 1 else 'their folders'} dirty: "
                     f"`smttask project dirty add {' '.join(folders)}`")
    return "; ".join(parts)


def _few(paths: Sequence[str]) -> str:
    return ", ".join(paths[:5]) + (" …" if len(paths) > 5 else "")


_tracked: dict[Path, set[str]] = {}


_code_seen: dict[Path, tuple[int, list[Path]]] = {}


def loaded_code(root: Path) -> list[Path]:
    """Files of the modules imported in this process that lie in the repository (outside
    virtual environments and installed packages)."""
    seen = _code_seen.get(root)
    if seen is not None and seen[0] == len(sys.modules):  # nothing imported since
        return seen[1]
    count = len(sys.modules)
    prefixes = tuple({os.path.join(p, "") for p in (sys.prefix, sys.base_prefix,
                                                     sys.exec_prefix)})
    base = os.path.join(str(root), "")
    found = set()
    for module in list(sys.modules.values()):
        file = getattr(module, "__file__", None)
        if not isinstance(file, str) or not file.startswith(base):
            continue
        if file.startswith(prefixes) or f"{os.sep}site-packages{os.sep}" in file \
                or f"{os.sep}dist-packages{os.sep}" in file:
            continue
        found.add(Path(file))
    _code_seen[root] = (count, sorted(found))
    return _code_seen[root][1]


def untracked(root: Path, files: Sequence[Path], dirty_directories: Sequence[str] = ()
              ) -> tuple[list[str], list[str]]:
    """The repo-relative paths among ``files`` that git does not track (untracked or
    ignored): (outside the dirty directories, inside them)."""
    known = _tracked.setdefault(root, set())
    rel = sorted({p.relative_to(root).as_posix() for p in files
                  if p.is_relative_to(root)} - known)
    if not rel:
        return [], []
    for i in range(0, len(rel), 500):
        out = _git(root, "--literal-pathspecs", "ls-files", "-z", "--", *rel[i:i + 500])
        known.update(p for p in out.split("\0") if p)
    missing = [p for p in rel if p not in known]
    dirty = [PurePosixPath(d) for d in dirty_directories]
    return ([p for p in missing if not _under(p, dirty)],
            [p for p in missing if _under(p, dirty)])


def require_tracked(checked: Checked, dirty_directories: Sequence[str], on_changed: str
                    ) -> Checked:
    """``checked``, also refusing (or, under store-diff, recording) the code imported in
    this process that git does not track; untracked code in dirty directories is listed
    as tolerated."""
    root = checked.state.root
    blocking, tolerated = untracked(root, loaded_code(root), dirty_directories)
    if not blocking and not tolerated:
        return checked
    state = replace(checked.state, tolerated=sorted({*checked.state.tolerated, *tolerated}))
    if not blocking:
        return Checked(state, checked.diff)
    if on_changed == "store-diff":
        return Checked(state, checked.diff + new_files_diff(root, blocking))
    raise DirtyRepositoryError(
        "code that git does not track was imported: " + ", ".join(blocking[:10])
        + (" …" if len(blocking) > 10 else "") + "; a run using it could not be repeated "
        "from its commit. Add and commit it (or move it out of the repository)", blocking)


def new_files_diff(root: Path, paths: Sequence[str]) -> str:
    """A diff adding ``paths`` (repo-relative, untracked) as new files."""
    import difflib

    parts = []
    for rel in paths:
        try:
            lines = (root / rel).read_text(encoding="utf-8").splitlines(keepends=True)
        except (OSError, UnicodeDecodeError) as exc:
            lines = [f"(unreadable: {exc})\n"]
        parts.append(f"diff --git a/{rel} b/{rel}\nnew file mode 100644\n")
        for line in difflib.unified_diff([], lines, "/dev/null", f"b/{rel}"):
            parts.append(line if line.endswith("\n") else
                         f"{line}\n\\ No newline at end of file\n")
    return "".join(parts)


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


# --- earlier commits: reproducing and sharing records ------------------------------------

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
