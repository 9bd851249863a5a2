"""How tasks and records show themselves: one-line summaries and notebook HTML.

``short(value)`` is the one-line text of an input value (arrays by dtype and shape,
tasks by name and digest, long values cut). :func:`task_html`, :func:`record_html` and
:func:`records_html` are what ``Task``, ``RecordView`` and ``RecordStoreView`` show in
Jupyter (their ``_repr_html_``).
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .errors import ProjectNotFoundError

if TYPE_CHECKING:
    from .task import Task
    from .view import RecordStoreView, RecordView

__all__ = ["MAX_COLUMNS", "MAX_ROWS", "record_html", "records_html", "short", "task_html"]

#: Rows and input columns a RecordStoreView shows in a notebook.
MAX_ROWS = 50
MAX_COLUMNS = 20

STYLE = ("<style>.smttask table{border-collapse:collapse;font-size:90%}"
         ".smttask td,.smttask th{border:1px solid #ddd;padding:2px 6px;text-align:left}"
         ".smttask th{background:#f4f4f4}.smttask .st-finished,.smttask .st-on-disk"
         "{color:#2e7d32}.smttask .st-crashed,.smttask .st-killed{color:#c62828}"
         ".smttask .st-would-run,.smttask .st-running{color:#ef6c00}</style>")


def short(value: Any, width: int = 40) -> str:
    """One line of text for an input value: never longer than ``width`` characters."""
    if getattr(value, "__smttask_task__", False):
        digest = value._digest or "?"
        return f"{value.taskname}({digest[:8]})"
    if type(value).__module__ == "numpy" and hasattr(value, "shape"):
        if getattr(value, "ndim", 0) == 0:
            return repr(value.item())
        return f"<array {value.dtype} {tuple(value.shape)}>"
    if hasattr(value, "bit_generator"):
        return f"<Generator {type(value.bit_generator).__name__}>"
    text = repr(value).replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _status(text: str) -> str:
    return f'<span class="st-{_e(text.replace(" ", "-"))}">{_e(text)}</span>'


def table(head: Iterable[str], rows: Iterable[Iterable[Any]], *, raw: bool = False) -> str:
    """An HTML table; cells escaped unless ``raw``."""
    th = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c if raw else _e(c)}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f"<table><tr>{th}</tr>{body}</table>"


def fold(summary: str, body: str) -> str:
    """A fold-out block (closed) holding preformatted text."""
    return f"<details><summary>{_e(summary)}</summary><pre>{_e(body)}</pre></details>"


def task_html(task: Task) -> str:
    """Name, digest, kind and status, inputs as a table, where the result is, and the
    upstream graph when there is one."""
    from .graph import build

    graph = build([task])
    node = graph.nodes[graph.roots[0]]
    rows = []
    for name, value in task.inputs.__dict__.items():
        if getattr(value, "__smttask_task__", False):
            up = graph.nodes[next(e.source for e in graph.upstream(node.id) if e.label == name)]
            rows.append(f"<tr><td>{_e(name)}</td><td>{_e(up.title)} ({_e(up.kind)}, "
                        f"{_status(up.status)})</td></tr>")
        else:
            rows.append(f"<tr><td>{_e(name)}</td><td><code>{_e(short(value, 80))}</code>"
                        "</td></tr>")
    parts = [f"<b>{_e(task.taskname)}</b> <code>{_e(node.digest or '(not run yet)')}</code> "
             f"{_e(node.kind)}, {_status(node.status)}",
             "<table><tr><th>input</th><th>value</th></tr>" + "".join(rows) + "</table>"]
    try:
        files = getattr(task, "result_files", None)
    except ProjectNotFoundError:  # a recorded task outside any project
        files = None
    if files:
        parts.append("result: " + ", ".join(f"<code>{_e(p)}</code>" for p in files))
    elif node.kind in ("recorded", "iterative"):
        parts.append("result: not on disk yet")
    if len(graph.tasks) > 1:
        parts.append(f"<details><summary>upstream tasks ({len(graph.tasks) - 1})</summary>"
                     f"{graph._repr_html_()}</details>")
    return f'{STYLE}<div class="smttask">' + "<br>".join(parts) + "</div>"


def record_html(rec: RecordView) -> str:
    """Label, status, duration, code version, inputs, outputs with their paths, the
    failure, and stdout/stderr in a fold-out."""
    from .view import flatten_inputs, summarize

    head = [("label", rec.label), ("task", f"{rec.taskname} {rec.digest[:12]}"),
            ("status", None), ("started", rec.timestamp.strftime("%Y-%m-%d %H:%M:%S")),
            ("duration", f"{rec.duration:.3g} s" if rec.duration is not None else ""),
            ("code", f"{rec.main_file or ''} @ {(rec.version or '')[:10]}"),
            ("reason", rec.reason or ""), ("tags", ", ".join(sorted(
                t for t in rec.tags if not t.startswith("_"))))]
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{_status(rec.status) if v is None else _e(v)}"
                   "</td></tr>" for k, v in head)
    inputs = table(["input", "value"], ((k, summarize(v)) for k, v in
                                        flatten_inputs(rec.inputs).items()))
    outputs = "".join(f"<li><code>{_e(p)}</code>{'' if p.exists() else ' (deleted)'}</li>"
                      for p in rec.output_files)
    parts = [f"<table>{rows}</table>", inputs, f"outputs:<ul>{outputs or '<li>none</li>'}</ul>"]
    if rec.status in ("crashed", "killed") and rec.outcome:
        parts.append(f"<b>failure</b><pre>{_e(rec.outcome)}</pre>")
    elif rec.outcome:
        parts.append(fold("outcome", rec.outcome))
    out = rec.details().stdout_stderr
    if out:
        parts.append(fold(f"stdout/stderr ({out.count(chr(10)) + 1} lines)", out))
    return f'{STYLE}<div class="smttask">' + "".join(parts) + "</div>"


def records_html(view: RecordStoreView, max_rows: int = MAX_ROWS,
                 max_columns: int = MAX_COLUMNS) -> str:
    """The first ``max_rows`` records, with their inputs as dotted columns."""
    rows = view[:max_rows].table()
    base = ["label", "task", "status", "duration", "reason"]
    inputs = list(dict.fromkeys(k for r in rows for k in r
                                if k not in base and k not in ("timestamp", "version")))
    shown = inputs[:max_columns]
    cells = [[_e(r["label"]), _e(r["task"]), _status(r["status"]),
              _e(f"{r['duration']:.3g} s" if r["duration"] is not None else ""),
              _e((r["reason"] or "")[:40])] + [_e(r.get(k, "")) for k in shown]
             for r in rows]
    notes = []
    if len(view) > max_rows:
        notes.append(f"showing the newest {max_rows} of {len(view)} records")
    if len(inputs) > max_columns:
        notes.append(f"{len(inputs) - max_columns} more input columns: "
                     + ", ".join(inputs[max_columns:]))
    foot = "".join(f"<p>{_e(n)}</p>" for n in notes)
    return (f'{STYLE}<div class="smttask">{table(base + shown, cells, raw=True)}{foot}</div>')
