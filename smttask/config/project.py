"""A project: the folder holding smttask.toml, its paths and packages, and how commands
find it (walking up from the working directory or from the task files)."""

from __future__ import annotations

import functools
import importlib
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import quote

from .. import safeload, store_url
from ..errors import ConfigError, ProjectNotFoundError
from .model import CONFIG_FILE, MAX_BYTES, ProjectConfig, validate_text


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
    project = Project(root=root, config=validate_text(text), mtime_ns=mtime)
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


def forget_projects() -> None:
    """Forget the projects found so far: the next :func:`find_project` reads smttask.toml
    again (it does anyway when the file's modification time changed)."""
    _found.clear()


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
