"""Task graphs: what a task needs, drawn as a terminal tree, DOT text or SVG.

``task.graph()`` (or :func:`build` for many tasks) gives a :class:`TaskGraph`. Its nodes
are tasks with their name, short digest, kind (recorded, iterative, memoized, unpure) and
status (in memory, on disk, would run); plain inputs are folded into their task unless
``values=True`` makes them nodes of their own. Edges go from an upstream task to the task
that takes it, labelled by the input name. A task shared by several others is one node.

Large graphs (a sweep of hundreds of tasks) are collapsed by task name: one node per task
name with its count, its statuses and the values its plain inputs take.

SVG comes from Graphviz's ``dot`` when it is installed, otherwise from a simple built-in
layered layout (``engine="builtin"``); ``engine="dot"`` insists on Graphviz.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from . import _fs, config, taskfile
from .display import short
from .errors import ProjectNotFoundError, TaskFileError, UsageError
from .memoized import UnpureMemoized
from .outputs import Datastore
from .recorded import Recorded, RecordedIterative
from .task import Task

__all__ = ["COLLAPSE_ABOVE", "Edge", "Node", "TaskGraph", "build", "from_files", "status_of"]

#: Graphs with more task nodes than this are collapsed by task name unless told otherwise.
COLLAPSE_ABOVE = 30

Engine = Literal["auto", "dot", "builtin"]
COLOURS = {"on disk": "#c8e6c9", "in memory": "#bbdefb", "would run": "#ffe0b2", "": "#ffffff"}


@dataclass
class Node:
    """A task (or a plain value, kind ``value``); ``count`` > 1 once collapsed."""

    id: str
    name: str
    digest: str
    kind: str
    status: str
    inputs: dict[str, str] = field(default_factory=dict)
    count: int = 1
    statuses: dict[str, int] = field(default_factory=dict)

    @property
    def short_digest(self) -> str:
        return self.digest[:8]

    @property
    def title(self) -> str:
        """``name digest`` for one task, ``name ×N`` for a collapsed group."""
        if self.kind == "value":
            return self.name
        return f"{self.name} ×{self.count}" if self.count > 1 else \
            f"{self.name} {self.short_digest}".rstrip()

    @property
    def state(self) -> str:
        """``recorded, on disk``; for a group ``recorded: 150 on disk, 50 would run``."""
        if self.kind == "value":
            return ""
        if self.count > 1:
            return f"{self.kind}: " + ", ".join(f"{n} {s}" for s, n in self.statuses.items())
        return f"{self.kind}, {self.status}"


@dataclass(frozen=True)
class Edge:
    """``source`` (upstream) is given to ``target`` as its input ``label``."""

    source: str
    target: str
    label: str


def status_of(task: Task, store: Datastore | None) -> str:
    """``in memory``, ``on disk`` or ``would run`` (never runs anything)."""
    if isinstance(task, UnpureMemoized):
        return "in memory" if task._digest is not None else "would run"
    if task.digest in type(task)._memo:
        return "in memory"
    if isinstance(task, Recorded) and store is not None and task.result_ref(store).on_disk:
        return "on disk"
    return "would run"


def _kind(task: Task) -> str:
    if isinstance(task, RecordedIterative):
        return "iterative"
    if isinstance(task, Recorded):
        return "recorded"
    return "unpure" if isinstance(task, UnpureMemoized) else "memoized"


def _store(project: config.Project | None) -> Datastore | None:
    if project is None:
        try:
            project = config.find_project()
        except ProjectNotFoundError:
            return None
    return Datastore.of(project)


def build(tasks: Iterable[Task], *, values: bool = False,
          project: config.Project | None = None) -> TaskGraph:
    """The graph of ``tasks`` and everything upstream of them (each task once)."""
    store = _store(project)
    graph = TaskGraph()

    def visit(task: Task) -> str:
        digest = task._digest if isinstance(task, UnpureMemoized) else task.digest
        nid = f"{task.taskname}@{digest or id(task)}"
        if nid in graph.nodes:
            return nid
        node = Node(nid, task.taskname, digest or "", _kind(task), status_of(task, store))
        graph.nodes[nid] = node
        for name, value in task.inputs.__dict__.items():
            if isinstance(value, Task):
                graph.edges.append(Edge(visit(value), nid, name))
            elif values:
                vid = f"{nid}.{name}"
                graph.nodes[vid] = Node(vid, short(value), "", "value", "")
                graph.edges.append(Edge(vid, nid, name))
            else:
                node.inputs[name] = short(value)
        return nid

    for task in tasks:
        nid = visit(task)
        if nid not in graph.roots:
            graph.roots.append(nid)
    return graph


def from_files(paths: Iterable[str | os.PathLike[str]], *, values: bool = False,
               allow: Iterable[str] = ()) -> TaskGraph:
    """The graph of the task files found in ``paths`` (folders are searched)."""
    project = None
    try:
        project = config.find_project()
    except ProjectNotFoundError:
        pass
    if project is not None and str(project.root) not in sys.path:
        sys.path.insert(0, str(project.root))
    files = taskfile.collect(paths)
    if not files:
        raise TaskFileError("no task files found (task files end in .taskdesc.json)")
    allowed = tuple(allow)
    return build([taskfile.load(f, allow=allowed) for f in files], values=values,
                 project=project)


def _spread(texts: list[str]) -> str:
    """What the values of one input are across a group."""
    distinct = list(dict.fromkeys(texts))
    if len(distinct) == 1:
        return distinct[0]
    if len(distinct) <= 4:
        return "{" + ", ".join(distinct) + "}"
    try:
        numbers = sorted(float(t) for t in distinct)
    except ValueError:
        return f"{len(distinct)} values"
    return f"{len(distinct)} values from {numbers[0]:g} to {numbers[-1]:g}"


class TaskGraph:
    """Tasks and the inputs that link them; see the module docstring."""

    def __init__(self) -> None:
        self.nodes: dict[str, Node] = {}
        self.edges: list[Edge] = []
        self.roots: list[str] = []

    @property
    def tasks(self) -> list[Node]:
        return [n for n in self.nodes.values() if n.kind != "value"]

    def upstream(self, nid: str) -> list[Edge]:
        """The edges into ``nid``, in input order."""
        return [e for e in self.edges if e.target == nid]

    # --- collapsing -------------------------------------------------------------------------

    def collapsed(self) -> TaskGraph:
        """One node per task name (values: per task name and input), with counts."""
        group: dict[str, str] = {n.id: f"{n.name}:{n.kind}" for n in self.tasks}
        for node in self.nodes.values():
            if node.kind == "value":  # a value node feeds exactly one task
                target = next(e for e in self.edges if e.source == node.id)
                group[node.id] = f"{group[target.target]}.{target.label}"
        members: dict[str, list[Node]] = {}
        for node in self.nodes.values():
            members.setdefault(group[node.id], []).append(node)
        out = TaskGraph()
        for gid, nodes in members.items():
            first = nodes[0]
            statuses = Counter(n.status for n in nodes)
            merged = Node(gid, first.name if len(nodes) == 1 or first.kind != "value"
                          else _spread([n.name for n in nodes]),
                          first.digest if len(nodes) == 1 else "", first.kind,
                          first.status if len(statuses) == 1 else "",
                          count=len(nodes) if first.kind != "value" else 1,
                          statuses=dict(statuses.most_common()))
            for name in first.inputs:
                merged.inputs[name] = _spread([n.inputs.get(name, "") for n in nodes])
            out.nodes[gid] = merged
        seen = set()
        for e in self.edges:
            edge = Edge(group[e.source], group[e.target], e.label)
            if edge not in seen:
                seen.add(edge)
                out.edges.append(edge)
        out.roots = list(dict.fromkeys(group[r] for r in self.roots))
        return out

    def _readable(self, collapse: bool | None) -> TaskGraph:
        if collapse is None:
            collapse = len(self.tasks) > COLLAPSE_ABOVE
        return self.collapsed() if collapse else self

    # --- the terminal tree ------------------------------------------------------------------

    def tree(self, collapse: bool | None = None) -> str:
        """The graph as a tree of text, final tasks first; a shared task is drawn once."""
        graph = self._readable(collapse)
        lines: list[str] = []
        drawn: set[str] = set()
        ups: dict[str, list[Edge]] = {}
        for e in graph.edges:
            if e.source != e.target:
                ups.setdefault(e.target, []).append(e)

        def line(node: Node) -> str:
            text = node.title
            if node.kind != "value":
                text += f"  [{node.state}]"
            if node.inputs:
                text += "  " + ", ".join(f"{k}={v}" for k, v in node.inputs.items())
            return text

        def walk(nid: str, prefix: str, head: str) -> None:
            node = graph.nodes[nid]
            if nid in drawn:
                lines.append(f"{head}{node.title}  (shown above)")
                return
            drawn.add(nid)
            lines.append(head + line(node))
            edges = ups.get(nid, [])
            for i, e in enumerate(edges):
                last = i == len(edges) - 1
                walk(e.source, prefix + ("    " if last else "│   "),
                     prefix + ("└── " if last else "├── ") + f"{e.label}: ")

        for root in graph.roots:
            walk(root, "", "")
        return "\n".join(lines)

    # --- DOT and SVG ------------------------------------------------------------------------

    def dot(self, collapse: bool | None = None) -> str:
        """The graph as Graphviz DOT text (data flows left to right)."""
        graph = self._readable(collapse)
        ids = {nid: f"n{i}" for i, nid in enumerate(graph.nodes)}
        out = ["digraph tasks {", "  rankdir=LR;",
               '  node [shape=box, style="rounded,filled", fontname="Helvetica", '
               "fontsize=10];", '  edge [fontname="Helvetica", fontsize=9];']
        for nid, node in graph.nodes.items():
            text = "\\n".join(_dot_escape(t) for t in _label_lines(node))
            shape = ', shape=plaintext, style=""' if node.kind == "value" else ""
            out.append(f'  {ids[nid]} [label="{text}", '
                       f'fillcolor="{COLOURS.get(node.status, "#eeeeee")}"{shape}];')
        for e in graph.edges:
            out.append(f'  {ids[e.source]} -> {ids[e.target]} [label="{_dot_escape(e.label)}"];')
        out.append("}")
        return "\n".join(out) + "\n"

    def svg(self, engine: Engine = "auto", collapse: bool | None = None) -> str:
        """SVG text: by Graphviz's ``dot`` if installed (``auto``), else the built-in
        layout; ``engine="dot"`` fails with a UsageError when Graphviz is missing."""
        exe = shutil.which("dot") if engine != "builtin" else None
        if engine == "dot" and exe is None:
            raise UsageError("Graphviz's `dot` is not installed (apt install graphviz, conda "
                             "install graphviz, brew install graphviz); without it, use the "
                             "built-in layout (engine 'builtin' or 'auto')")
        if exe is not None:
            return subprocess.run([exe, "-Tsvg"], input=self.dot(collapse), text=True,
                                  capture_output=True, check=True).stdout
        from ._svg import layered

        graph = self._readable(collapse)
        return layered([(nid, _label_lines(n), COLOURS.get(n.status, "#eeeeee"))
                        for nid, n in graph.nodes.items()],
                       [(e.source, e.target, e.label) for e in graph.edges], graph.roots)

    def save(self, path: str | os.PathLike[str], format: Literal["dot", "svg"] | None = None,
             *, engine: Engine = "auto", collapse: bool | None = None) -> Path:
        """Write DOT text or SVG to ``path`` (``format`` by default from the suffix:
        ``.svg`` is SVG, anything else DOT); the path."""
        target = Path(path)
        if format is None:
            format = "svg" if target.suffix.lower() == ".svg" else "dot"
        text = self.svg(engine, collapse) if format == "svg" else self.dot(collapse)
        target.parent.mkdir(parents=True, exist_ok=True)
        _fs.replace(target, text)
        return target

    def _repr_svg_(self) -> str:
        return self.svg()

    def _repr_html_(self) -> str:
        svg = self.svg()
        return f'<div class="smttask-graph">{svg[svg.find("<svg"):]}</div>'

    def __str__(self) -> str:
        return self.tree()

    def __repr__(self) -> str:
        return (f"<TaskGraph: {len(self.tasks)} task(s), {len(self.edges)} edge(s), "
                f"roots {', '.join(self.nodes[r].title for r in self.roots[:3])}"
                f"{' …' if len(self.roots) > 3 else ''}>")


def _label_lines(node: Node) -> list[str]:
    if node.kind == "value":
        return [node.name]
    lines = [node.title, node.state]
    lines += [f"{k}={v}" for k, v in list(node.inputs.items())[:4]]
    if len(node.inputs) > 4:
        lines.append(f"… {len(node.inputs) - 4} more inputs")
    return lines


def _dot_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")
