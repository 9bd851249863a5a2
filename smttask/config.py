"""smttask.toml: the project's one human-edited configuration file.

A project is a folder holding ``smttask.toml``; :func:`find_project` walks up from the
working directory (or the folder of the task files, :func:`project_of`) to find it, and
:meth:`Project.add_to_path` makes its own packages importable. The module also holds the
process-wide runtime switch :data:`record` (``smttask.config.record = False`` in a
notebook turns recording off).
"""

from __future__ import annotations

import functools
import importlib
import os
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from . import _fs, safeload, store_url
from .errors import ConfigError, ProjectNotFoundError, UsageError

__all__ = [
    "CONFIG_FILE",
    "Project",
    "ProjectConfig",
    "SlurmSection",
    "activate",
    "add_dirty_directories",
    "check_name",
    "check_output",
    "check_store_url",
    "find_project",
    "hours",
    "is_module_name",
    "load_project",
    "minutes",
    "normalise_relpath",
    "on_code_change",
    "project_of",
    "record",
    "remove_dirty_directories",
    "render_config",
]

CONFIG_FILE = "smttask.toml"
#: The largest smttask.toml read, in bytes, and how deep its arrays may nest.
MAX_BYTES = 1 << 20
MAX_DEPTH = 32

#: Record runs and write results (set to False in notebooks or scripts run as __main__).
record: bool = True

#: Overrides smttask.toml's ``[cache] on_code_change`` in this process when set
#: ("warn", "recompute" or "ignore"; ``smttask run --recompute-stale`` sets "recompute").
on_code_change: str | None = None

NAME_PATTERN = re.compile(r"^\w[\w\- ]*$")  # Sumatra's project-name rule


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- the rules, shared by smttask.toml and the project wizard -------------------------------

def check_name(value: str) -> str:
    """A Sumatra project name, or ValueError saying what is allowed."""
    if not NAME_PATTERN.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a valid project name: use letters, digits, '_', '-' and "
            "spaces, starting with a letter or digit"
        )
    return value


def check_store_url(value: str) -> str:
    """A record store: a SQLite file path or a postgresql:// URL without a password;
    ValueError otherwise (see :mod:`smttask.store_url`)."""
    return store_url.check(value)


def is_module_name(name: str) -> bool:
    """True for a dotted module name (``pkg.tasks``) with no dunder part (``__main__``)."""
    parts = name.split(".")
    return 0 < len(name) <= 200 and all(
        p.isidentifier() and not (p.startswith("__") and p.endswith("__")) for p in parts)


def check_output(output: str, input: str) -> str:
    """The output datastore, normalised; ValueError unless it is inside ``input``."""
    out = normalise_relpath(output)
    if out == input or not PurePosixPath(out).is_relative_to(input):
        raise ValueError(
            f"the output datastore {out!r} must be a subfolder of the input datastore "
            f"{input!r}, e.g. '{input}/run_dump'"
        )
    return out


class ProjectSection(_Section):
    name: str
    #: Packages or modules whose task files may be loaded, besides those found on disk.
    packages: list[str] | None = None

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        return check_name(value)

    @field_validator("packages")
    @classmethod
    def _module_names(cls, value: list[str] | None) -> list[str] | None:
        for name in value or ():
            if not is_module_name(name):
                raise ValueError(f"{name[:80]!r} is not a module name (e.g. mylab or "
                                 "mylab.tasks; no path, no .py, no __main__)")
        return value


def normalise_relpath(value: str) -> str:
    """A clean, relative POSIX path ('./data/' -> 'data'); raises ValueError otherwise."""
    bad = safeload.control_character(value)
    if bad is not None:
        raise ValueError(f"{value!r} holds a control character ({bad})")
    path = PurePosixPath(value.replace("\\", "/"))
    if path.is_absolute():
        raise ValueError(f"{value!r} must be relative to the project folder")
    parts = [p for p in path.parts if p not in ("", ".")]
    if ".." in parts:
        raise ValueError(f"{value!r} must stay inside the project folder")
    if not parts:
        raise ValueError(f"{value!r} is the project folder itself")
    return "/".join(parts)


class PathsSection(_Section):
    input: str = "data"
    output: str = "data/run_dump"
    tasks: str = "tasks"

    @field_validator("input", "output", "tasks")
    @classmethod
    def _relative(cls, value: str) -> str:
        return normalise_relpath(value)

    @model_validator(mode="after")
    def _output_inside_input(self) -> PathsSection:
        check_output(self.output, self.input)
        return self


class RepoSection(_Section):
    on_changed: Literal["error", "store-diff"] = "error"
    dirty_directories: list[str] = []

    @field_validator("dirty_directories")
    @classmethod
    def _relative(cls, value: list[str]) -> list[str]:
        return [normalise_relpath(v) for v in value]


def hours(value: str) -> float:
    """Hours in a duration such as '90m', '12h', '3d' or '2w'; ValueError otherwise."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([mhdw])\s*", value)
    if m is None:
        raise ValueError(f"{value!r} is not a duration: use e.g. 90m, 12h, 3d or 2w")
    return float(m[1]) * {"m": 1 / 60, "h": 1, "d": 24, "w": 168}[m[2]]


class RecordStoreSection(_Section):
    url: str = ".smt/records"
    #: A running record from another host (or whose job the scheduler cannot tell about)
    #: counts as lost after this long.
    lost_after: str = "2d"

    @field_validator("lost_after")
    @classmethod
    def _duration(cls, value: str) -> str:
        hours(value)
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_store_url(value)


class SlurmSection(_Section):
    """Resources of each SLURM array element: the defaults of ``smttask run --executor
    slurm`` (``[executor.slurm]``), which its options override."""

    partition: str | None = None
    time: str = "1:00:00"  # per task file: HH:MM:SS, MM:SS or minutes
    cpus: int = 1
    mem: str | None = None  # e.g. "4G"
    array_parallelism: int = 64
    #: Task files run one after the other by each array element; "auto" packs short tasks
    #: so that an element's start-up costs at most as much as the tasks it runs.
    tasks_per_job: int | Literal["auto"] = "auto"

    @field_validator("tasks_per_job")
    @classmethod
    def _per_job(cls, value: int | str) -> int | str:
        if value != "auto" and (not isinstance(value, int) or value < 1):
            raise ValueError(f"{value!r}: give a number of task files ≥ 1, or \"auto\"")
        return value

    @field_validator("time")
    @classmethod
    def _time(cls, value: str) -> str:
        minutes(value)
        return value

    def with_overrides(self, **overrides: Any) -> SlurmSection:
        """These options with the given ones replaced (None: keep), validated."""
        data = {**self.model_dump(), **{k: v for k, v in overrides.items() if v is not None}}
        try:
            return SlurmSection.model_validate(data)
        except ValidationError as exc:
            raise UsageError(_describe(exc).removeprefix(f"{CONFIG_FILE}: ")) from None


def minutes(value: str) -> int:
    """Minutes in a SLURM-style duration: '90', '30:00', '1:30:00' or '1-12:00:00'."""
    days, _, rest = value.strip().rpartition("-")
    parts = rest.split(":")
    try:
        numbers = [int(p) for p in parts]
        day_count = int(days) if days else 0
    except ValueError:
        raise ValueError(f"{value!r} is not a duration: use minutes, MM:SS or HH:MM:SS") \
            from None
    if len(numbers) == 1:
        total = numbers[0]
    elif len(numbers) == 2:
        total = numbers[0] + (numbers[1] > 0)
    elif len(numbers) == 3:
        total = numbers[0] * 60 + numbers[1] + (numbers[2] > 0)
    else:
        raise ValueError(f"{value!r} is not a duration: use minutes, MM:SS or HH:MM:SS")
    return max(1, total + day_count * 24 * 60)


class CacheSection(_Section):
    """What to do with a result on disk whose task's code changed since it was computed."""

    on_code_change: Literal["warn", "recompute", "ignore"] = "warn"


class ExecutorSection(_Section):
    slurm: SlurmSection = SlurmSection()


class ProjectConfig(_Section):
    """The validated content of smttask.toml."""

    project: ProjectSection
    paths: PathsSection = PathsSection()
    repo: RepoSection = RepoSection()
    record_store: RecordStoreSection = RecordStoreSection()
    cache: CacheSection = CacheSection()
    executor: ExecutorSection = ExecutorSection()


def _describe(err: ValidationError) -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"]) or "(top level)"
    msg = first["msg"].removeprefix("Value error, ")
    return f"{CONFIG_FILE}: {loc}: {msg}"


@functools.lru_cache(maxsize=64)
def _absolute(root: Path, path: str) -> str:
    """``path`` relative to ``root``, absolute and resolved (cached: asked for every record)."""
    return str((root / path).resolve())


@dataclass(frozen=True)
class Project:
    """A loaded project: its root folder and validated configuration."""

    root: Path
    config: ProjectConfig
    mtime_ns: int = field(default=0, compare=False)

    @property
    def name(self) -> str:
        return self.config.project.name

    @functools.cached_property
    def config_path(self) -> str:
        return os.path.join(self.root, CONFIG_FILE)

    @functools.cached_property
    def input_dir(self) -> Path:
        return self.root / self.config.paths.input

    @functools.cached_property
    def output_dir(self) -> Path:
        return self.root / self.config.paths.output

    @property
    def tasks_dir(self) -> Path:
        return self.root / self.config.paths.tasks

    @property
    def smt_dir(self) -> Path:
        return self.root / ".smt"

    #: A store password given for this process only (``project init``); never written.
    password: str | None = field(default=None, compare=False, repr=False)

    @property
    def record_store_url(self) -> str:
        """The store URL as shown and written to .smt/project: the URL of
        SMTTASK_RECORD_STORE_URL or smttask.toml, without a password, a relative SQLite
        path made absolute."""
        return store_url.without_password(self.connect_url)

    @property
    def connect_url(self) -> str:
        """The URL to connect with, password included when the environment gives one in
        SMTTASK_RECORD_STORE_URL. Never print or write it."""
        url = store_url.override() or self.config.record_store.url
        if "://" not in url:
            return _absolute(self.root, url)
        if self.password and store_url.password(url) is None:
            scheme, _, rest = url.partition("://")
            user, _, host = rest.rpartition("@")
            return f"{scheme}://{user}:{quote(self.password, safe='')}@{host}"
        return url

    @property
    def code_roots(self) -> list[Path]:
        """The folders the project's packages are imported from: the project folder and
        ``src/`` (if there is one)."""
        return [p for p in (self.root, self.root / "src") if p.is_dir()]

    def add_to_path(self) -> None:
        """Make the project's own packages importable in this process, installed or not
        (:attr:`code_roots` first on ``sys.path``). Every command and library function
        that loads task files or records' tasks calls it."""
        missing = [str(p) for p in self.code_roots if str(p) not in sys.path]
        if missing:
            sys.path[:0] = missing
            importlib.invalidate_caches()

    @property
    def packages(self) -> list[str]:
        """The packages whose modules task files may import: folders holding an
        ``__init__.py`` in :attr:`code_roots` (the project's top and ``src/``), and
        smttask.toml's ``[project] packages``. Never a top-level script such as ``run.py``."""
        found = set(self.config.project.packages or ())
        for base in self.code_roots:
            for entry in base.iterdir():
                if (entry.name.isidentifier() and not entry.name.startswith("_")
                        and (entry / "__init__.py").is_file()):
                    found.add(entry.name)
        return sorted(found)


def load_project(root: str | os.PathLike[str]) -> Project:
    """Read and validate ``<root>/smttask.toml``: one-line ConfigError for any content
    (limits: :data:`MAX_BYTES`, :data:`MAX_DEPTH`)."""
    import tomllib

    root = Path(root).resolve()
    path = root / CONFIG_FILE
    try:
        text = safeload.read_text(path, MAX_BYTES)
        mtime = path.stat().st_mtime_ns
    except FileNotFoundError:
        raise ProjectNotFoundError(
            f"no {CONFIG_FILE} in {root}; run `smttask project init` to create a project"
        ) from None
    except ValueError as exc:
        raise ConfigError(f"{CONFIG_FILE}: {exc}") from None
    try:
        safeload.check_toml_depth(text, MAX_DEPTH)
        data = tomllib.loads(text)
    except (ValueError, RecursionError) as exc:  # TOMLDecodeError, too deep, too many digits
        raise ConfigError(f"{CONFIG_FILE}: (syntax): {' '.join(str(exc).split())}") from None
    try:
        cfg = ProjectConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None
    project = Project(root=root, config=cfg, mtime_ns=mtime)
    _check_places(project)
    return project


def _check_places(project: Project) -> None:
    """ConfigError if a datastore, the task folder or a SQLite store is, or lies inside,
    .git, .smt (stores excepted) or a code package, following symbolic links."""
    root = project.root
    real = os.path.realpath
    code = [(f"the code package {name}", real(base / name.replace(".", "/")))
            for name in project.packages for base in (root, root / "src")]
    git, smt = (".git", real(root / ".git")), (".smt", real(root / ".smt"))
    url = project.config.record_store.url
    places = [(f"paths.{key}", getattr(project.config.paths, key), [git, smt, *code])
              for key in ("input", "output", "tasks")]
    if "://" not in url and not PurePosixPath(url).is_absolute():
        places.append(("record_store.url", url, [git, *code]))  # the default is in .smt
    for key, rel, forbidden in places:
        first = PurePosixPath(rel).parts[0].casefold()
        target = real(root / rel)
        for name, folder in forbidden:
            if first == name or target == folder or target.startswith(folder + os.sep):
                raise ConfigError(f"{CONFIG_FILE}: {key}: {rel!r} is inside {name}; keep data "
                                  "and task files out of git's folder, .smt and the code")


_found: dict[str, Project] = {}
_active: Project | None = None


def activate(project: Project | None) -> Project | None:
    """Make ``project`` the one :func:`find_project` finds without a ``start`` folder,
    wherever the working directory is, and its packages importable (None: back to the
    working directory's project); the previously active one. Batches activate the
    project of their task files in the processes that run them."""
    global _active
    previous, _active = _active, project
    if project is not None:
        project.add_to_path()
    return previous


def find_project(start: str | os.PathLike[str] | None = None) -> Project:
    """The project containing ``start`` (default: the active project, else the working
    directory), walking up.

    The result is cached and re-read when smttask.toml changes.
    """
    if start is None and _active is not None:
        start = _active.root
    key = os.fspath(start) if start is not None else os.getcwd()
    cached = _found.get(key)
    if cached is not None:
        try:
            if os.stat(cached.config_path).st_mtime_ns == cached.mtime_ns:
                return cached
        except FileNotFoundError:
            pass
    here = Path(key).resolve()
    for folder in (here, *here.parents):
        if os.path.lexists(folder / CONFIG_FILE):  # a folder or FIFO there: an error
            project = load_project(folder)
            _found[key] = project
            return project
    raise ProjectNotFoundError(
        f"no {CONFIG_FILE} in {here} or any parent folder; run `smttask project init` "
        "there, or set smttask.config.record = False to run tasks without a project"
    )


def project_of(paths: Iterable[str | os.PathLike[str]]) -> Project:
    """The project holding the first of ``paths`` (task files or folders) that lies in
    one; else the active project or the working directory's (:func:`find_project`)."""
    paths = list(paths)
    for path in paths:
        where = os.path.abspath(path)
        if where.endswith(".json") or not os.path.isdir(where):
            where = os.path.dirname(where)
        try:
            return find_project(where)
        except ProjectNotFoundError:
            continue
    try:
        return find_project()
    except ProjectNotFoundError:
        if not paths:
            raise
        raise ProjectNotFoundError(
            f"no {CONFIG_FILE} in a folder holding {os.fspath(paths[0])} nor in "
            f"{os.getcwd()} or its parents; run `smttask project init` in the project "
            "folder") from None


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
    import tomllib

    try:
        ProjectConfig.model_validate(tomllib.loads(text))
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None
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
    import tomllib

    try:
        ProjectConfig.model_validate(tomllib.loads(text))
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None
    _fs.replace(path, text)
    _found.clear()


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
