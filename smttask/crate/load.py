"""Check a crate made by :func:`smttask.crate.export_rocrate` again.

The repository the crate names (or another one given) is cloned afresh; each run of the
crate, upstream first, is rerun at its commit (its recorded diff applied) in a separate
process, and its outputs are compared with the crate's (see :mod:`smttask.reproduce`).
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from collections.abc import Callable
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
        except (ValueError, KeyError, AttributeError, OSError) as exc:
            raise UsageError(f"{path}: not a crate made by smttask export rocrate: {exc}") \
                from None
        url = repository or index.get("repository")
        if not url:
            raise UsageError(f"{path} names no repository (its project had no git remote); "
                             "pass --repository URL|PATH")
        runs = sorted((e for e in crate.contextual_entities if e.type == "CreateAction"
                       and e.id.startswith("#run-")),
                      key=lambda e: index["tasks"].index(_ids(e["instrument"])[0]))
        reports = []
        with repo.clone(url) as clone:
            for run in runs:
                reports.append(_reproduce_run(crate, folder, run, clone, index, rtol, atol))
                if progress is not None:
                    progress(reports[-1])
        return reports


def _reproduce_run(crate: Any, folder: Path, run: Any, clone: Path, index: dict[str, Any],
                   rtol: float, atol: float) -> Reproduction:
    tool = crate.get(_ids(run["instrument"])[0])
    label, commit = run["identifier"], tool["version"]
    desc = json.loads((folder / tool.id).read_text(encoding="utf-8"))
    diff_file = next((e for e in crate.data_entities
                      if e.id.endswith(".diff") and _ids(e.get("about")) == [run.id]), None)
    diff = (folder / diff_file.id).read_text(encoding="utf-8") if diff_file else ""
    rep = Reproduction(label, desc.get("taskname", ""), commit, FAILED)
    job = {"key": label, "description": desc,
           "files": [str(folder / i) for i in _ids(run.get("result"))]}
    try:
        with repo.checkout(clone, commit, diff) as tree:
            answer = replay(tree / index.get("project", "."), [job], datastore=None,
                            rtol=rtol, atol=atol, outside=clone)[0]
    except GitError as exc:
        rep.reason = str(exc)
        return rep
    judge(answer, rep)
    packages = [(e["name"], e["softwareVersion"])
                for e in (crate.get(i) for i in _ids(tool.get("softwareRequirements")))]
    rep.packages = package_changes(packages)
    return rep
