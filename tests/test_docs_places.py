"""The docs' commands work in a project made by `smttask project init`, with both
templates, from the project's folder, from a subfolder and (given paths) from outside.

A representative set of the commands docs/ shows: running, inspecting task files,
browsing records. Commands that take no path (`store list`, `store show`, `smt list`)
find the project from the working directory, so they run from the project and its
subfolder only.
"""

from __future__ import annotations

import sys

import pytest
from conftest import cli
from test_generated_project import (  # noqa: F401
    clean_imports,
    package_project,
    src_layout_project,
)

from smttask import config
from smttask.view import RecordStoreView

#: (command, needs a path: runs from outside too). {tasks}, {file}, {other} and {label}
#: are filled in for the place the command runs from.
COMMANDS = [
    ("run -n 2 {tasks}", True),
    ("status {tasks}", True),
    ("why {file}", True),
    ("diff {file} {other}", True),
    ("graph {tasks}", True),
    ("store find-output {file}", True),
    ("run --dry-run {tasks}", True),
    ("store list", False),
    ("store list --params", False),
    ("store show {label}", False),
    ("store compare {label} {label2}", False),
    ("smt list", False),
]


def forget(folder):
    """Drop the project's imported modules, its import path and the active project."""
    for name, module in list(sys.modules.items()):
        if str(getattr(module, "__file__", None) or "").startswith(str(folder)):
            del sys.modules[name]
    sys.path[:] = [p for p in sys.path if not p.startswith(str(folder))]
    config.activate(None)


def minimal_project(tmp_path):
    """An existing repository with its code in src/, then `init --template minimal`."""
    return src_layout_project(tmp_path)[0]


@pytest.mark.parametrize("template", ["package", "minimal"])
def test_docs_commands_from_the_project_a_subfolder_and_outside(template, tmp_path,
                                                                clean_imports):  # noqa: F811
    if template == "package":
        root, _ = package_project(tmp_path)
    else:
        root = minimal_project(tmp_path)
    sub = root / "notes" / "deep"
    sub.mkdir(parents=True)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    files = sorted((root / "tasks").glob("*.taskdesc.json"))
    assert len(files) >= 2
    first = cli("run", "-n", "1", "tasks", cwd=root)
    assert first.returncode == 0, first.stderr
    labels = [r.label for r in RecordStoreView(config.load_project(root))][:2]
    places = {"project": (root, "tasks"), "subfolder": (sub, "../../tasks"),
              "outside": (outside, str(root / "tasks"))}
    failed = []
    for place, (cwd, tasks) in places.items():
        for command, with_path in COMMANDS:
            if place == "outside" and not with_path:
                continue
            args = command.format(tasks=tasks, file=f"{tasks}/{files[0].name}",
                                  other=f"{tasks}/{files[1].name}", label=labels[0],
                                  label2=labels[1]).split()
            forget(tmp_path)  # each command finds and imports the project's code itself
            proc = cli(*args, cwd=cwd)
            expected = (0, 1) if args[0] == "diff" else (0,)  # diff: 1 when they differ
            if proc.returncode not in expected or "Traceback" in proc.stderr:
                failed.append(f"{place}: smttask {' '.join(args)} -> exit {proc.returncode}"
                              f"\n{proc.stderr}")
    assert not failed, "\n".join(failed)
