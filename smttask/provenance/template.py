"""New SQLite stores as copies of an empty store cached per machine; moved ones followed.

Migrating a new store costs a fifth of a second and Django's import half a second more;
copying the cached empty store (``$XDG_CACHE_HOME/smttask/``, keyed by the Sumatra and
Django versions and smttask's schema) costs a millisecond and needs no Django. The cache
is written atomically after the first migration on a machine and checked before each copy;
a damaged one is ignored and remade.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path

from .. import _fs
from ..config import Project
from .projectfile import version_of, write_project_file
from .store import locked, read_only
from .writer import SCHEMA, stored_schema

__all__ = [
    "copy_template",
    "keep_template",
    "open_template",
    "ready_sqlite",
    "template_path",
]


def template_path() -> Path:
    """Where the empty SQLite store of these Sumatra and Django versions is kept, once
    migrated on this machine: new stores are copies (migrating costs a fifth of a second
    and Django's import half a second more; copying, a millisecond)."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return (Path(cache) / "smttask" / f"empty-store-sumatra-{version_of('Sumatra')}-django-"
            f"{version_of('Django')}-{SCHEMA}.sqlite")


def open_template() -> sqlite3.Connection | None:
    """The cached empty store, read-only, if there is one and it is sound."""
    path = template_path()
    try:
        db = read_only(path)
    except sqlite3.Error:
        return None
    try:
        sound = (db.execute("PRAGMA quick_check").fetchone() == ("ok",)
                 and stored_schema(db.cursor()) == SCHEMA
                 and db.execute("SELECT count(*) FROM django_store_record").fetchone() == (0,))
    except sqlite3.Error:
        sound = False
    if not sound:
        db.close()
        return None
    return db


def copy_template(target: sqlite3.Connection) -> bool:
    """Fill an empty SQLite database with the cached empty store, in WAL mode; False if
    there is no sound one."""
    template = open_template()
    if template is None:
        return False
    with contextlib.closing(template):
        template.backup(target)
    target.execute("PRAGMA journal_mode=WAL")
    return True


def keep_template(migrated: sqlite3.Connection) -> None:
    """Keep a copy of a just-migrated empty store as the template (best effort)."""
    path = template_path()
    tmp = path.with_name(f"{_fs.TEMP_PREFIX}{os.getpid()}-{path.name}")
    with contextlib.suppress(OSError, sqlite3.Error):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.closing(sqlite3.connect(tmp)) as copy:
                migrated.backup(copy)
                copy.execute("PRAGMA journal_mode=DELETE")  # one file, readable read-only
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)


def ready_sqlite(project: Project) -> bool:
    """Make the project's SQLite store ready for smttask's own connection without Django:
    a new store copied from the cached empty one, or ``.smt/project`` brought in step for
    a store made by this smttask in a project that was moved or copied (its absolute
    paths). False if it cannot: no template yet, not SQLite, a store to migrate
    (:func:`.binding.bootstrap` does those)."""
    url = project.record_store_url
    if "://" in url:
        return False
    with locked(project):
        Path(url).parent.mkdir(parents=True, exist_ok=True)
        try:
            with contextlib.closing(sqlite3.connect(url, timeout=30)) as db:
                if db.execute("SELECT count(*) FROM sqlite_master").fetchone() != (0,):
                    if stored_schema(db.cursor()) < SCHEMA:  # an older store: to migrate
                        return False
                elif not template_path().is_file() or not copy_template(db):
                    return False
        except sqlite3.Error:  # not a database, or no smttask tables: bootstrap decides
            return False
        write_project_file(project)
    return True

