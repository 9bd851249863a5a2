"""The tree's state for a recorded run: the commit, the changes that block it (outside the
dirty directories), untracked code the task imports, and the hint that unblocks it."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

from ..errors import DirtyRepositoryError, TaskDefinitionError
from .git import _git, repo_root


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


