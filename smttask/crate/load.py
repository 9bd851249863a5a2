"""Check a crate made by :func:`smttask.crate.export_rocrate` again.

The repository the crate names (or another one given) is cloned afresh; the runs of the
crate, upstream first, are rerun at their commit (their recorded diff applied) in a
separate process, one per commit, and their outputs are compared with the crate's (see
:mod:`smttask.reproduce`). A later run reuses the results recomputed for earlier ones.
"""

from __future__ import annotations

import itertools
import json
import os
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import repo
from ..errors import GitError, UsageError
from ..reproduce import FAILED, Reproduction, judge, package_changes, replay

__all__ = ["reproduce_crate"]


def _ids(value: Any) -> list[str]:
    items = value if isinstance(value, list) else [value] if value else []
    return [item.id if hasattr(item, "id") else item["@id"] for item in items]


def reproduce_crate(path: str | os.PathLike[str], *, repository: str | None = None,
                    rtol: float = 0.0, atol: float = 0.0,
                    progress: Callable[[Reproduction], None] | None = None
                    ) -> list[Reproduction]:
    """Clone the repository the crate names (or ``repository``), rerun each of its runs at
    its commit, upstream first, and compare with the crate's outputs."""
    from . import rocrate

    rc = rocrate()
    path = Path(path)
    with tempfile.TemporaryDirectory(prefix="smttask-crate-") as tmp:
        folder = path
        if path.is_file():
            if not zipfile.is_zipfile(path):
                raise UsageError(f"{path} is neither an RO-Crate folder nor a zip file")
            with zipfile.ZipFile(path) as zf:
                zf.extractall(tmp)
            folder = Path(tmp)
        try:
            crate = rc.rocrate.ROCrate(folder)
            index = json.loads((folder / crate.mainEntity.id).read_text(encoding="utf-8"))
            runs = sorted((_Run.of(crate, folder, e) for e in crate.contextual_entities
                           if e.type == "CreateAction" and e.id.startswith("#run-")),
                          key=lambda run: index["tasks"].index(run.tool.id))
        except (ValueError, KeyError, TypeError, AttributeError, OSError) as exc:
            raise UsageError(f"{path}: not a crate made by smttask export rocrate: {exc}") \
                from None
        url = repository or index.get("repository")
        if not url:
            raise UsageError(f"{path} names no repository (its project had no git remote); "
                             "pass --repository URL|PATH")
        reports = []
        with repo.clone(url) as clone:
            for (commit, diff), grouped in itertools.groupby(runs, key=_Run.code):
                group = list(grouped)
                for rep in _reproduce(group, clone, commit, diff, index, rtol, atol):
                    reports.append(rep)
                    if progress is not None:
                        progress(rep)
        return reports


@dataclass
class _Run:
    """One run of the crate: its task file, description, diff and output files."""

    label: str
    tool: Any
    description: dict[str, Any]
    diff: str
    files: list[str]

    @classmethod
    def of(cls, crate: Any, folder: Path, action: Any) -> _Run:
        tool = crate.get(_ids(action["instrument"])[0])
        diff_file = next((e for e in crate.data_entities if e.id.endswith(".diff")
                          and _ids(e.get("about")) == [action.id]), None)
        return cls(action["identifier"], tool,
                   json.loads((folder / tool.id).read_text(encoding="utf-8")),
                   (folder / diff_file.id).read_text(encoding="utf-8") if diff_file else "",
                   [str(folder / i) for i in _ids(action.get("result"))])

    def code(self) -> tuple[str, str]:
        return self.tool["version"], self.diff


def _reproduce(group: list[_Run], clone: Path, commit: str, diff: str,
               index: dict[str, Any], rtol: float, atol: float) -> list[Reproduction]:
    """Rerun the runs of one commit in one process, upstream first (later runs reuse the
    results of earlier ones, recomputed at this commit)."""
    answers, why = {}, ""
    jobs = [{"key": r.label, "description": r.description, "files": r.files} for r in group]
    try:
        with repo.checkout(clone, commit, diff) as tree:
            answers = {a["key"]: a for a in replay(
                tree / index.get("project", "."), jobs, datastore=None, rtol=rtol,
                atol=atol, outside=clone, chain=True)}
    except GitError as exc:
        why = str(exc)
    reports = []
    for run in group:
        rep = Reproduction(run.label, run.description.get("taskname", ""), commit, FAILED, why)
        if run.label in answers:
            judge(answers[run.label], rep)
        requirements = (run.tool.crate.get(i) for i in _ids(run.tool.get("softwareRequirements")))
        rep.packages = package_changes((e["name"], e["softwareVersion"]) for e in requirements)
        reports.append(rep)
    return reports
