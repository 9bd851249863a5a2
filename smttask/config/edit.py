"""Writing smttask.toml: a new project's file, and the dirty-directory edits that keep the
user's comments and layout (tomlkit)."""

from __future__ import annotations

import os
from pathlib import Path

from .. import _fs
from ..errors import ConfigError
from .model import CONFIG_FILE, validate_text
from .project import Project, forget_projects


def render_config(
    name: str,
    *,
    input: str = "data",
    output: str = "data/run_dump",
    tasks: str = "tasks",
    on_changed: str = "error",
    dirty_directories: list[str] | tuple[str, ...] = (),
    record_store: str = ".smt/records",
    packages: list[str] | None = None,
) -> str:
    """The text of a new, commented smttask.toml (validated before it is returned)."""
    import tomlkit

    def q(value: object) -> str:
        return tomlkit.item(value).as_string()

    lines = [
        "# smttask project configuration. Edit by hand or with `smttask project dirty ...`.",
        "",
        "[project]",
        f"name = {q(name)}  # Sumatra project name",
    ]
    if packages is not None:
        lines.append(f"packages = {q(list(packages))}  # packages whose task files may be run")
    lines += [
        "",
        "[paths]",
        f"input = {q(input)}  # input datastore: earlier results are found here",
        f"output = {q(output)}  # output datastore: results are written here (inside input)",
        f"tasks = {q(tasks)}  # default folder for task files",
        "",
        "[repo]",
        f'on_changed = {q(on_changed)}  # "error": refuse to record with uncommitted code;'
        ' "store-diff": record the diff',
        f"dirty_directories = {q(list(dirty_directories))}  # uncommitted changes allowed here",
        "",
        "[record_store]",
        f"url = {q(record_store)}  # SQLite file (relative to the project) or postgresql://...",
        "",
    ]
    text = "\n".join(lines)
    validate_text(text)
    return text


def _code_paths(project: Project) -> list[Path]:
    """Folders and module files of the project's own packages."""
    paths = []
    for name in project.packages:
        rel = name.replace(".", "/")
        for base in project.code_roots:
            for candidate in (base / rel, base / f"{rel}.py"):
                if candidate.exists():
                    paths.append(candidate.resolve())
    return paths


def _to_repo_relative(directory: str | os.PathLike[str], repo_root: Path) -> str:
    path = Path(directory)
    path = (path if path.is_absolute() else Path.cwd() / path).resolve()
    if not path.is_relative_to(repo_root):
        raise ConfigError(f"{directory} is outside the repository {repo_root}")
    if path == repo_root:
        raise ConfigError("the repository itself cannot be a dirty directory")
    return path.relative_to(repo_root).as_posix()


def _write_dirty(project: Project, dirs: list[str]) -> None:
    import tomlkit

    path = project.root / CONFIG_FILE
    doc = tomlkit.parse(path.read_text())
    repo_table = doc.get("repo")
    if repo_table is None:
        repo_table = tomlkit.table()
        doc["repo"] = repo_table
    if "dirty_directories" in repo_table:
        array = repo_table["dirty_directories"]
        trivia = array.trivia.comment  # keep the line's comment
        array.clear()
        array.extend(dirs)
        array.trivia.comment = trivia
    else:
        repo_table["dirty_directories"] = dirs
    text = tomlkit.dumps(doc)
    validate_text(text)
    _fs.replace(path, text)
    forget_projects()


def add_dirty_directories(
    project: Project, directories: list[str], repo_root: Path, *, force: bool = False
) -> list[str]:
    """Add folders (relative to the working directory) to ``dirty_directories``; the new list.

    A folder holding Python code of the project's packages is refused unless ``force``:
    uncommitted code there would run unrecorded.
    """
    current = list(project.config.repo.dirty_directories)
    for directory in directories:
        rel = _to_repo_relative(directory, repo_root)
        absolute = (repo_root / rel).resolve()
        if not force:
            for code in _code_paths(project):
                if code.is_relative_to(absolute) or absolute.is_relative_to(code):
                    raise ConfigError(
                        f"{rel} holds Python code of the project ({code.relative_to(repo_root)}"
                        "); uncommitted code there would run unrecorded, so code folders must "
                        "not be dirty (use --force to insist)"
                    )
        if rel not in current:
            current.append(rel)
    _write_dirty(project, current)
    return current


def remove_dirty_directories(
    project: Project, directories: list[str], repo_root: Path
) -> list[str]:
    """Remove folders from ``dirty_directories``; the new list."""
    current = list(project.config.repo.dirty_directories)
    for directory in directories:
        rel = _to_repo_relative(directory, repo_root)
        if rel not in current:
            raise ConfigError(f"{rel} is not a dirty directory (they are: "
                              f"{', '.join(current) or 'none'})")
        current.remove(rel)
    _write_dirty(project, current)
    return current
