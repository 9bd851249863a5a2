"""The record store's URL: its two forms, where its password comes from, how it is shown.

- A store is a SQLite file (a path: relative to the project folder and inside it, or
  absolute, e.g. a shared store) or a PostgreSQL database,
  ``postgresql://user@host[:port]/database``.
- smttask.toml is committed, so it never holds a password. The password comes from the
  environment: ``PGPASSWORD`` or ``~/.pgpass`` (read by PostgreSQL's client library
  itself), or :data:`ENV`, a whole URL (password included) that replaces smttask.toml's.
- Wherever a URL is shown, its password is replaced by ``***`` (:func:`mask`).
"""

from __future__ import annotations

import os
import re
from pathlib import PurePosixPath
from urllib.parse import SplitResult, urlsplit

from .errors import ConfigError

__all__ = ["ENV", "PASSWORD_ADVICE", "check", "mask", "override", "password",
           "without_password"]

#: A whole store URL (password included) that replaces smttask.toml's record_store.url.
ENV = "SMTTASK_RECORD_STORE_URL"

PASSWORD_ADVICE = (f"provide the password with PGPASSWORD, ~/.pgpass or {ENV} (never in a "
                   "committed file)")

_SCHEMES = ("postgresql", "postgres")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def check(value: str, *, password_allowed: bool = False) -> str:
    """``value`` if it is a store URL smttask accepts; ValueError saying what is accepted.

    A password is refused unless ``password_allowed`` (the URL is then never written).
    """
    if _CONTROL.search(value):
        raise ValueError("holds a control character")
    if "://" in value:
        _check_postgres(value, password_allowed)
        return value
    if not value.strip():
        raise ValueError("give a file path, e.g. .smt/records")
    path = PurePosixPath(value)
    if not path.is_absolute() and ".." in path.parts:
        raise ValueError(f"{value!r} must stay inside the project folder (or be an absolute "
                         "path, e.g. for a shared store)")
    return value


def _split(value: str) -> SplitResult:
    parts = urlsplit(value)
    if parts.scheme not in _SCHEMES:
        raise ValueError("a record store is a SQLite file path or a postgresql:// URL "
                         "(postgresql://user@host:port/database)")
    return parts


def _check_postgres(value: str, password_allowed: bool) -> None:
    parts = _split(value)
    try:
        parts.port  # noqa: B018 - raises for a port that is not a number in range
    except ValueError:
        raise ValueError("the port must be a number from 1 to 65535") from None
    database = parts.path.lstrip("/")
    if not database or "/" in database:
        raise ValueError("the URL names no database (postgresql://user@host:port/database)")
    if parts.query or parts.fragment:
        raise ValueError("nothing may follow the database name (set connection options in "
                         "the PG* environment variables)")
    if parts.password is not None and not password_allowed:
        raise ValueError(f"holds a password: remove it ({without_password(value)}) and "
                         + PASSWORD_ADVICE)


def password(url: str) -> str | None:
    """The password in a postgresql:// URL, or None."""
    return urlsplit(url).password if "://" in url else None


def without_password(url: str) -> str:
    """``url`` with its password (and the colon before it) removed."""
    if "://" not in url:
        return url
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user, _, host = parts.netloc.rpartition("@")
    return parts._replace(netloc=f"{user.partition(':')[0]}@{host}").geturl()


_PASSWORD_IN_URL = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@]*:)[^\s@]*@")


def mask(text: str) -> str:
    """``text`` with the password of every URL in it replaced by ``***``."""
    return _PASSWORD_IN_URL.sub(r"\1***@", text)


def override() -> str | None:
    """The URL of :data:`ENV` (checked, password allowed), or None when it is not set."""
    value = os.environ.get(ENV, "")
    if not value:
        return None
    try:
        return check(value, password_allowed=True)
    except ValueError as exc:
        raise ConfigError(f"{ENV}: {mask(str(exc))}") from None
