"""The seams of the package, read from its source: who may import what, who runs git,
who builds datastore paths. A change that crosses a seam fails here, with the line."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "smttask"

# Layers, bottom up: a module may import its own layer's modules (without cycles) and
# any lower layer, never a higher one. Only the package's entry points import cli.
LAYERS = [
    {"errors", "_fs", "_svg", "typing", "closeness", "safeload", "store_url"},
    {"config", "digest"},
    {"outputs", "repo"},
    {"provenance"},
    {"task"},
    {"taskfile", "memoized", "recorded", "decorators", "workflows", "replay"},
    {"view", "jobs", "display", "graph", "reproduce"},
    {"compare", "explain", "maintenance", "templates", "executors", "export", "scaffold",
     "crate"},
    {"batch"},
    {"cli"},
    {"__init__", "__main__"},  # the package's face: lazy names, python -m smttask
]
RANK = {name: i for i, layer in enumerate(LAYERS) for name in layer}

# Upward imports that are deliberate, each inside a function: Task's convenience methods
# (desc, save, from_desc) hand over to the task-file module, its displays (graph(),
# _repr_html_) to the graph and display modules.
ALLOWED_UP = {("task", "taskfile"), ("task", "graph"), ("task", "display")}


@functools.cache  # parsed once for all the tests here (read-only)
def modules() -> dict[str, ast.Module]:
    found = {}
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG).with_suffix("")
        found[".".join(rel.parts)] = ast.parse(path.read_text(), str(path))
    return found


def owner(module: str) -> str:
    """The layer name of a module: its first component (``provenance.store`` → provenance)."""
    return module.split(".")[0]


def _resolve(name: str, node: ast.ImportFrom) -> list[str]:
    """The smttask modules a ``from … import …`` in module ``name`` refers to."""
    if node.level == 0:
        module = node.module or ""
        return [module.removeprefix("smttask.")] if module.startswith("smttask.") else []
    package = name.split(".")[:-1]  # provenance.store -> provenance; task -> (top)
    package = package[: len(package) - (node.level - 1)]
    if node.module:
        return [".".join([*package, node.module])]
    return [".".join([*package, alias.name]) for alias in node.names]


def internal_imports(name: str, tree: ast.Module) -> list[tuple[str, int, bool]]:
    """(imported smttask module, line, at module level) for every import in ``tree``,
    leaving out ``if TYPE_CHECKING:`` blocks."""
    top_level = {id(n) for n in tree.body}
    type_only = {id(n) for node in tree.body if isinstance(node, ast.If)
                 and "TYPE_CHECKING" in ast.unparse(node.test) for n in ast.walk(node)}
    found = []
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.ImportFrom):
            targets = _resolve(name, node)
        elif isinstance(node, ast.Import):
            targets = [a.name.removeprefix("smttask.") for a in node.names
                       if a.name.startswith("smttask.")]
        else:
            continue
        found += [(t, node.lineno, id(node) in top_level) for t in targets if t]
    return found


def test_every_module_has_a_layer():
    unknown = sorted({owner(m) for m in modules()} - set(RANK))
    assert not unknown, f"modules without a layer in test_layering.LAYERS: {unknown}"


def test_imports_point_down():
    wrong = []
    for name, tree in modules().items():
        src = owner(name)
        for target, line, _ in internal_imports(name, tree):
            dst = owner(target)
            if dst == src or (src, dst) in ALLOWED_UP:
                continue
            if RANK.get(dst, -1) > RANK[src]:
                wrong.append(f"smttask/{name.replace('.', '/')}.py:{line} imports {target}")
    assert not wrong, "imports against the layering:\n" + "\n".join(wrong)


def test_no_import_cycles_at_module_level():
    graph: dict[str, set[str]] = {}
    for name, tree in modules().items():
        graph[owner(name)] = graph.get(owner(name), set()) | {
            owner(t) for t, _, top in internal_imports(name, tree) if top} - {owner(name)}
    seen: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        seen[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if seen.get(nxt) == 1:
                pytest.fail("import cycle: " + " → ".join(stack[stack.index(nxt):] + [nxt]))
            if nxt not in seen:
                visit(nxt)
        stack.pop()
        seen[node] = 2

    for node in sorted(graph):
        if node not in seen:
            visit(node)


def _imports_of(tree: ast.Module) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_only_provenance_touches_sumatra_and_django():
    wrong = [name for name, tree in modules().items() if owner(name) != "provenance"
             and any(m.split(".")[0] in ("sumatra", "django") for m in _imports_of(tree))]
    assert not wrong, f"Sumatra or Django imported outside smttask.provenance: {wrong}"


def test_only_repo_runs_git():
    wrong = []
    for name, tree in modules().items():
        if owner(name) == "repo":
            continue
        if any(m.split(".")[0] == "git" for m in _imports_of(tree)):
            wrong.append(f"{name}: imports GitPython")
        for node in ast.walk(tree):
            if isinstance(node, ast.List) and node.elts and isinstance(node.elts[0], ast.Constant) \
                    and node.elts[0].value == "git":
                wrong.append(f"{name}:{node.lineno}: runs git")
    assert not wrong, "git outside smttask/repo/:\n" + "\n".join(wrong)


def test_only_outputs_knows_the_datastore_layout():
    """Datastore roots are read only where paths are built (outputs) or handed to Sumatra
    (provenance), and the ``<digest>_<name>(_N).<ext>`` grammar is parsed only in outputs."""
    wrong = []
    for name, tree in modules().items():
        if owner(name) in ("outputs", "config", "provenance"):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in ("input_dir", "output_dir"):
                wrong.append(f"{name}:{node.lineno}: .{node.attr}")
            if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                    and r"_\d+" in node.value:
                wrong.append(f"{name}:{node.lineno}: parses result file names")
    assert not wrong, "datastore layout outside smttask/outputs.py:\n" + "\n".join(wrong)


def test_cli_imports_nothing_private():
    wrong = []
    for name, tree in modules().items():
        if owner(name) != "cli":
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level >= 2:
                wrong += [f"{name}:{node.lineno}: {a.name}" for a in node.names
                          if a.name.startswith("_")]
    assert not wrong, "the CLI imports private names:\n" + "\n".join(wrong)


def test_library_never_imports_click():
    wrong = [name for name, tree in modules().items() if owner(name) != "cli"
             and "click" in {m.split(".")[0] for m in _imports_of(tree)}]
    assert not wrong, f"click imported by the library: {wrong}"


def test_no_module_outgrows_one_concept():
    """A module past about 400 lines holds more than one concept: split it."""
    long = {path.relative_to(PKG).as_posix(): n for path in PKG.rglob("*.py")
            if (n := len(path.read_text().splitlines())) > 420}
    assert not long, f"split these modules: {long}"
