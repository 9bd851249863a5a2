"""Aligned text columns that fit the terminal: a cell is never split across lines.

On a terminal (or with ``COLUMNS`` set) a table wider than the screen is fitted: the
widest columns are cut in the middle with ``…`` (a record label or a task file keeps its
distinguishing end), down to :data:`NARROWEST` characters; columns that still do not
fit are left out from the right, and the caller says so. Through a pipe nothing is cut:
lines stay whole for grep and scripts.
"""

from __future__ import annotations

import os
import shutil
import sys
import textwrap
from typing import TextIO

__all__ = ["NARROWEST", "fit_columns", "fit_line", "middle", "terminal_width"]

#: A column is cut down to this many characters at most (``2026113…f65755``).
NARROWEST = 12
GAP = "  "


def terminal_width(stream: TextIO | None = None) -> int | None:
    """The width to fit: ``COLUMNS`` when set, the terminal's when ``stream`` (stdout by
    default) is one, else None (no limit)."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    stream = stream if stream is not None else sys.stdout
    try:
        if stream.isatty():
            return shutil.get_terminal_size().columns
    except (AttributeError, ValueError):  # a closed or unusual stream
        return None
    return None


def middle(text: str, room: int) -> str:
    """``text``, or its start and end around ``…`` when it is longer than ``room``."""
    if len(text) <= room or room < 3:
        return text
    head = (room - 1) // 2
    return f"{text[:head]}…{text[len(text) - (room - 1 - head):]}"


def fit_columns(head: list[str], rows: list[list[str]], width: int | None, *,
                whole: int = 0) -> tuple[str, list[str]]:
    """The table as text, and the names of the columns left out to fit ``width``. The
    first ``whole`` columns (record labels) are cut last: after the others are cut and
    the last columns are left out."""
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(head)]
    keep = len(head)
    if width is not None:
        def excess() -> int:
            return sum(widths[:keep]) + len(GAP) * (keep - 1) - width

        floor = [min(w, NARROWEST) for w in widths]
        while excess() > 0:  # the widest cuttable column loses a character
            cuttable = [i for i in range(whole, keep) if widths[i] > floor[i]]
            if not cuttable and keep > max(whole, 1):
                keep -= 1
                continue
            cuttable = cuttable or [i for i in range(keep) if widths[i] > floor[i]]
            if not cuttable:
                break
            widths[max(cuttable, key=lambda j: widths[j])] -= 1

    def line(cells: list[str]) -> str:
        cut = [middle(c, w).ljust(w) for c, w in zip(cells[:keep], widths[:keep], strict=True)]
        return GAP.join(cut).rstrip()

    text = "\n".join([line(head), *(line(r) for r in rows)])
    return text, head[keep:]


def fit_line(first: str, rest: str, width: int | None, indent: int = 4) -> str:
    """``first`` and ``rest`` on one line when they fit; else ``first`` (cut in the
    middle if it alone is too long) and ``rest`` below it, wrapped at spaces."""
    line = f"{first}{rest}"
    if width is None or len(line) <= width:
        return line
    rest = rest.lstrip(": ").strip()
    if indent + max(len(w) for w in rest.split()) > width:
        indent = 4
    wrapped = textwrap.wrap(rest, max(width - indent, 20), initial_indent=" " * indent,
                            subsequent_indent=" " * indent, break_long_words=False,
                            break_on_hyphens=False)
    return "\n".join([middle(first, width), *wrapped])
