"""A real terminal for tests: a program in a pseudo-terminal (pexpect) whose output is
read by a terminal emulator (pyte), so that a test sees the screen a person would see."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from pathlib import Path

import pexpect
import pyte
from conftest import GIT_ENV, SMTTASK


class _Screen(pyte.HistoryScreen):
    """A screen that answers the program's questions (cursor position reports), as a
    terminal does: prompt_toolkit lays out its prompts from them."""

    def __init__(self, columns: int, lines: int) -> None:
        super().__init__(columns, lines, history=5000)
        self.answer: Callable[[str], object] = lambda data: None

    def write_process_input(self, data: str) -> None:
        self.answer(data)


class Terminal:
    """``smttask ARGS`` in a ``columns`` × ``lines`` terminal, started in ``cwd``."""

    def __init__(self, args: list[str], cwd: Path, columns: int = 80, lines: int = 24,
                 env: dict | None = None) -> None:
        self.screen = _Screen(columns, lines)
        self.stream = pyte.Stream(self.screen)
        base = {k: v for k, v in os.environ.items()
                if k not in ("COLUMNS", "LINES", "PROMPT_TOOLKIT_NO_CPR")}
        self.child = pexpect.spawn(SMTTASK, args, cwd=str(cwd), encoding="utf-8",
                                   env={**base, **GIT_ENV, "TERM": "xterm-256color",
                                        **(env or {})},
                                   dimensions=(lines, columns), timeout=180)
        self.screen.answer = self.child.send

    def _read(self, timeout: float) -> str | None:
        """Feed what arrives within ``timeout`` to the screen and return it ("" if
        nothing came); None once the program has ended."""
        try:
            data = self.child.read_nonblocking(65536, timeout=timeout)
        except pexpect.TIMEOUT:
            return ""
        except pexpect.EOF:
            return None
        self.stream.feed(data)
        return data

    def expect(self, pattern: str, timeout: float = 60) -> None:
        """Read until ``pattern`` (a regular expression) is on the screen, and until the
        screen is still."""
        deadline = time.monotonic() + timeout
        while not re.search(pattern, "\n".join(self.rows()), re.M):
            if time.monotonic() > deadline or self._read(0.2) is None:
                raise AssertionError(f"{pattern!r} never appeared:\n" + "\n".join(self.rows()))
        while self._read(0.3):
            pass

    def send(self, keys: str) -> None:
        self.child.send(keys)

    def finish(self, each: Callable[[Terminal], None] | None = None) -> int | None:
        """Read until the program ends (calling ``each(self)`` on every screen that
        stays for 20 ms: what a person could see, not a refresh half-read); its exit
        status."""
        deadline = time.monotonic() + 600
        data = self._read(1)
        while data is not None:
            if time.monotonic() > deadline:
                self.child.terminate(force=True)
                raise AssertionError("still running:\n" + "\n".join(self.rows()))
            if data:
                while data and time.monotonic() <= deadline:  # the rest of this refresh
                    data = self._read(0.02)
                if each is not None:
                    each(self)
            if data is not None:
                data = self._read(1)
        self.child.close()
        return self.child.exitstatus

    def rows(self) -> list[str]:
        """The screen, one string per row."""
        return [line.rstrip() for line in self.screen.display]

    def transcript(self) -> list[str]:
        """Every row that scrolled off the top, then the screen (trailing blank rows
        dropped)."""
        cols = self.screen.columns
        lines = ["".join(row[x].data for x in range(cols)).rstrip()
                 for row in self.screen.history.top] + self.rows()
        while lines and not lines[-1]:
            lines.pop()
        return lines

    def colours(self, row: int, pattern: re.Pattern) -> set[str]:
        """The colours of the characters of a screen row that match ``pattern``."""
        line = self.screen.buffer[row]
        return {line[x].fg for x in range(self.screen.columns) if pattern.match(line[x].data)}
