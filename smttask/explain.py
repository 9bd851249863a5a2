"""What would run, and why: ``smttask status``, ``smttask why`` and ``project info``.

:func:`explain` says whether a task's result is on disk and, if not, why it will run:
no record yet, its last run failed, its link or files are gone, or which inputs differ
from the closest record (by dotted name, as :mod:`smttask.compare` reports them).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from . import config, provenance, repo, taskfile
from .compare import Difference, differences
from .errors import GitError, SmttaskError, UsageError
from .outputs import CorruptResult, Datastore, ResultRef, read_sidecar
from .view import RecordStoreView, RecordView

if TYPE_CHECKING:
    from .task import Task

__all__ = ["TaskStatus", "explain", "find_output", "project_info", "status", "why"]


@dataclass
class TaskStatus:
    """Whether a task's result is on disk, and if not, why not."""

    task: Task
    on_disk: bool
    explanation: str
    closest: RecordView | None = None
    differences: list[Difference] = field(default_factory=list)


def explain(task: Task, view: RecordStoreView | None = None) -> TaskStatus:
    """Is ``task``'s result on disk? If not, the closest record and what differs."""
    view = view if view is not None else RecordStoreView()
    project = view.project
    ref = task.result_ref(Datastore.of(project))  # type: ignore[attr-defined]
    missing = [p for p in ref.links if not p.exists()]
    if not missing:
        return TaskStatus(task, True, _on_disk(task, ref, project))
    same = [r for r in view if r.taskname == task.taskname]
    if not same:
        return TaskStatus(task, False, f"no record of {task.taskname} yet: it will run")
    exact = [r for r in same if r.digest == task.digest]
    if exact:
        r = exact[0]
        if r.status != "finished":
            why = f"its last run (record {r.label}) {r.status or 'did not finish'}"
        elif any(f.exists() for f in r.output_files):
            why = (f"it ran (record {r.label}) but the link "
                   f"{missing[0].relative_to(project.root)} is gone; `smttask store "
                   "rebuild` restores it")
        else:
            why = f"it ran (record {r.label}) but its output files were deleted"
        return TaskStatus(task, False, why + ": it will run", r)
    mine = {k: v for k, v in taskfile.record_form(task)[0].items() if k != "_smttask"}
    store = Datastore.of(project)
    ranked = sorted(same, key=lambda r: (len(differences(r.inputs, mine)),
                                         -r.timestamp.timestamp()))
    closest = ranked[0]
    diffs = differences(closest.inputs, mine, store=store)
    if not diffs:
        why = (f"record {closest.label} has the same inputs but another digest: the task's "
               "version or the digest scheme changed")
    else:
        shown = "; ".join(str(d) for d in diffs[:6]) + (" …" if len(diffs) > 6 else "")
        why = f"closest record {closest.label} differs in {len(diffs)} input(s): {shown}"
    return TaskStatus(task, False, why + ": it will run", closest, diffs)


def _on_disk(task: Task, ref: ResultRef, project: config.Project) -> str:
    """What loading an existing result means, stale code included."""
    from .recorded import code_fingerprint

    try:
        meta = read_sidecar(ref.files()[0]) or {}
    except CorruptResult:
        return "result on disk, but its checksum file is damaged: it will run again"
    current = code_fingerprint(type(task))
    if not meta.get("code") or not current or meta["code"] == current:
        return "result on disk: it will be loaded, not run"
    then = str(meta.get("commit") or "")[:7] or "?"
    try:
        now = (repo.state(project.root).commit or "")[:7] or "?"
    except GitError:
        now = "?"
    policy = config.on_code_change or project.config.cache.on_code_change
    action = {"recompute": "it will run again", "ignore": "it will be loaded",
              "warn": "it will be loaded, with a warning (--recompute-stale runs it)"}[policy]
    return (f"on disk, but {task.taskname} changed since it was computed (commit {then} → "
            f"{now}): {action}")


def status(paths: Iterable[str | os.PathLike[str]], *, allow: tuple[str, ...] = ()
           ) -> list[tuple[Path, TaskStatus]]:
    """:func:`explain` for every task file found in ``paths``, with its path (in the
    project holding the files, else the working directory's)."""
    paths = list(paths)
    view = RecordStoreView(config.project_of(paths))
    return [(p, explain(taskfile.load(p, allow=allow, project=view.project), view))
            for p in taskfile.collect(paths)]


def why(path: str | os.PathLike[str], *, allow: tuple[str, ...] = ()) -> TaskStatus:
    """:func:`explain` for one task file (in the project holding it, else the working
    directory's)."""
    view = RecordStoreView(config.project_of([path]))
    return explain(taskfile.load(path, allow=allow, project=view.project), view)


def find_output(path: str | os.PathLike[str], *, allow: tuple[str, ...] = ()
                ) -> tuple[list[Path], list[Path]]:
    """The result files of a task file's task, and the links of the results that are not
    on disk (in the project holding the file, else the working directory's)."""
    from .recorded import Recorded

    project = config.project_of([path])
    task = taskfile.load(path, allow=allow, project=project)
    if not isinstance(task, Recorded):
        raise UsageError(f"{path}: {task.taskname} is not a recorded task; its results are "
                         "kept in memory only")
    links = task.result_ref(Datastore.of(project)).links
    return [p.resolve() for p in links if p.exists()], [p for p in links if not p.exists()]


def project_info(project: config.Project) -> list[tuple[str, str]]:
    """The configuration, the record store and whether a run may be recorded now, as
    (what, value) rows."""
    cfg = project.config
    rows = [
        ("project", f"{project.name} ({project.root})"),
        ("input datastore", cfg.paths.input),
        ("output datastore", cfg.paths.output),
        ("task files", cfg.paths.tasks),
        ("dirty directories", ", ".join(cfg.repo.dirty_directories) or "(none)"),
        ("on uncommitted code", cfg.repo.on_changed),
    ]
    url = provenance.safe_url(project.record_store_url)
    try:
        n = provenance.count(project)
        rows.append(("record store", f"{url} ({n} record{'s' if n != 1 else ''})"))
    except SmttaskError as exc:
        rows.append(("record store", f"unusable: {exc}"))
    try:
        st = repo.state(project.root, cfg.repo.dirty_directories)
        head = st.commit[:10] if st.commit else "no commit yet"
        rows.append(("repository", f"{st.root} at {head}"))
        rows.append(("recorded run now", st.verdict(cfg.repo.on_changed)))
    except SmttaskError as exc:
        rows.append(("repository", str(exc)))
    return rows
