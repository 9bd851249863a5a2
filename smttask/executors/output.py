"""What the tasks print, carried to a display line by line.

A worker's stdout and stderr (file descriptors 1 and 2, so output from C code and
subprocesses too) are pipes whose other end the parent reads without blocking
(:class:`Stream`); in the parent's own process, :class:`LineWriter` stands in for
``sys.stdout`` and ``sys.stderr`` while a task runs. Both cut the text into lines
(:class:`Lines`).
"""

from __future__ import annotations

import codecs
import io
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection

__all__ = ["LineWriter", "Lines", "Stream", "redirect"]


def redirect(streams: list[Connection]) -> None:
    """Point this process's stdout and stderr (file descriptors 1 and 2) at the pipes."""
    for fd, name, pipe in zip((1, 2), ("stdout", "stderr"), streams, strict=True):
        old = getattr(sys, name)
        if old is not None:
            old.flush()
        os.dup2(pipe.fileno(), fd)
        pipe.close()
        if old is None:
            setattr(sys, name, open(fd, "w", closefd=False))  # noqa: SIM115
        stream = getattr(sys, name)
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(line_buffering=True)


class Lines:
    """Text arriving in pieces, cut into lines; of a line redrawn with carriage returns
    (a progress bar), only its last state."""

    def __init__(self) -> None:
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.partial = ""

    def feed(self, data: bytes | str) -> list[str]:
        text = data if isinstance(data, str) else self.decoder.decode(data)
        *lines, self.partial = (self.partial + text).split("\n")
        return [_last_state(line) for line in lines]

    def end(self) -> list[str]:
        """The unfinished last line, if any."""
        text, self.partial = self.partial + self.decoder.decode(b"", final=True), ""
        return [_last_state(text)] if text.strip("\r") else []


def _last_state(line: str) -> str:
    return line.rstrip("\r").rsplit("\r", 1)[-1]


@dataclass(eq=False)
class Stream:
    """This end of a worker's stdout or stderr pipe."""

    name: str
    conn: Connection
    lines: Lines = field(default_factory=Lines)
    open: bool = True

    def read(self) -> list[str]:
        """The complete lines that have arrived (never blocks)."""
        found: list[str] = []
        while self.open:
            try:
                data = os.read(self.conn.fileno(), 65536)
            except BlockingIOError:
                break
            except OSError:
                data = b""
            if not data:  # the worker is gone
                self.open = False
                found += self.lines.end()
                break
            found += self.lines.feed(data)
        return found


class LineWriter(io.TextIOBase):
    """A text stream that hands each complete line to ``emit`` (the rest when closed)."""

    def __init__(self, emit: Callable[[str], None]) -> None:
        super().__init__()
        self._emit = emit
        self._lines = Lines()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        for line in self._lines.feed(text):
            self._emit(line)
        return len(text)

    def close(self) -> None:
        if not self.closed:
            for line in self._lines.end():
                self._emit(line)
        super().close()
