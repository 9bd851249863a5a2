"""Reading files smttask does not trust (task files, smttask.toml): one way to fail.

Every check raises ``ValueError`` with a short reason; the loaders turn it into their
own one-line :class:`~smttask.errors.SmttaskError` naming the file. Limits:

- only a regular file is read (a folder, a FIFO or a device never is: a FIFO would block);
- at most ``limit`` bytes (512 MiB for a task file, 1 MiB for smttask.toml);
- UTF-8 only, with no lone surrogates;
- brackets nested at most ``depth`` levels (100 in JSON, 32 in TOML), checked on the text
  before any parser recurses.
"""

from __future__ import annotations

import os
import re
import stat

__all__ = ["check_json_depth", "check_toml_depth", "control_character", "read_text"]


def read_text(path: str | os.PathLike[str], limit: int) -> str:
    """The UTF-8 text of a regular file of at most ``limit`` bytes; ValueError otherwise.

    ``FileNotFoundError`` passes through (callers say what to do about a missing file).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except IsADirectoryError:
        raise ValueError("is a folder, not a file") from None
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise ValueError(f"cannot read: {exc.strerror or exc}") from None
    except ValueError:  # os.open's answer to a NUL in the path
        raise ValueError("the path holds a NUL character") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise ValueError("is a folder, not a file")
        if not stat.S_ISREG(info.st_mode):
            raise ValueError("is not a regular file (a FIFO, socket or device is never read)")
        if info.st_size > limit:
            raise ValueError(f"is {_size(info.st_size)}, larger than the limit of "
                             f"{_size(limit)}")
        chunks, left = [], limit + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 24))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
    except OSError as exc:
        raise ValueError(f"cannot read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if len(data) > limit:
        raise ValueError(f"is larger than the limit of {_size(limit)}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset "
                         f"{exc.start})") from None


def _size(n: int) -> str:
    for unit, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= factor:
            return f"{n / factor:.4g} {unit}"
    return f"{n} bytes"


# Every pattern matches wherever it starts (an unterminated string runs to the end of the
# text or line), so removing strings and comments takes linear time on any input.
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z)', re.DOTALL)
_TOML_SKIP = re.compile(
    r'"""(?:[^"\\]|\\.|"(?!""))*(?:"""|\\?\Z)'  # multi-line basic string
    r"|'''.*?(?:'''|\Z)"  # multi-line literal string
    r'|"[^"\\\n]*(?:\\.[^"\\\n]*)*(?:"|\\?(?=\n)|\\?\Z)'  # basic string
    r"|'[^'\n]*(?:'|(?=\n)|\Z)"  # literal string
    r"|#[^\n]*",  # comment
    re.DOTALL,
)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


def _max_depth(code: str) -> int:
    """The deepest bracket nesting of ``code`` (strings and comments already removed)."""
    brackets = _NOT_BRACKET.sub("", code).encode("ascii")
    if not brackets:
        return 0
    if len(brackets) < 1 << 16:  # a config file: no numpy import for it
        depth = deepest = 0
        for byte in brackets:
            depth += 1 if byte in (0x5B, 0x7B) else -1
            deepest = max(deepest, depth)
        return deepest
    import numpy as np

    codes = np.frombuffer(brackets, dtype=np.uint8)
    steps = np.where((codes == ord("[")) | (codes == ord("{")), 1, -1)
    return int(np.cumsum(steps).max())


def _opens(text: str) -> int:
    return text.count("[") + text.count("{")


def check_json_depth(text: str, depth: int) -> None:
    """ValueError if JSON ``text`` nests arrays and objects more than ``depth`` deep."""
    if _opens(text) > depth and _max_depth(_JSON_STRING.sub("", text)) > depth:
        raise ValueError(f"nested more than {depth} levels deep")


def check_toml_depth(text: str, depth: int) -> None:
    """ValueError if TOML ``text`` nests arrays and inline tables more than ``depth`` deep."""
    if _opens(text) > depth and _max_depth(_TOML_SKIP.sub("", text)) > depth:
        raise ValueError(f"nested more than {depth} levels deep")


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def control_character(text: str) -> str | None:
    """The first control character (or lone surrogate) of ``text``, escaped; None if none."""
    m = _CONTROL.search(text)
    return None if m is None else repr(m[0])[1:-1]
