"""Keeping the datastore and the record store in step: rebuild links from the records,
delete records with their files, and make surrogate records for unrecorded results."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from . import _fs, provenance, repo, taskfile
from .errors import SmttaskError
from .outputs import Datastore, output_of
from .recorded import Recorded
from .view import RecordStoreView, RecordView

__all__ = ["DeletionPlan", "RebuildReport", "create_surrogates", "delete", "plan_deletion",
           "rebuild_links"]


@dataclass
class RebuildReport:
    """What :func:`rebuild_links` did."""

    linked: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def rebuild_links(view: RecordStoreView | None = None) -> RebuildReport:
    """Recreate the input-datastore links from the records: newest wins.

    Each finished record's task is rebuilt to get its current digest (so this also
    migrates results after a digest-scheme change). Archived files are never moved or
    deleted; a real file where a link should be is moved aside.
    """
    view = view if view is not None else RecordStoreView()
    store = Datastore.of(view.project)
    report = RebuildReport()
    for record in reversed(list(view.filter.status("finished"))):  # oldest first
        try:
            task = record.task
        except SmttaskError as exc:
            report.skipped.append(f"{record.label}: {exc}")
            continue
        if not isinstance(task, Recorded):
            continue
        ref = task.result_ref(store)
        for spec in ref.file_specs:  # one per file: separate outputs give one per item
            files = [f for f in record.output_files
                     if output_of(f, record.digest, [spec]) is spec and f.exists()]
            if not files:
                report.skipped.append(f"{record.label}: output {spec.name!r} is missing")
                continue
            report.linked.append(ref.relink(spec, files[0]))
    return report


@dataclass
class DeletionPlan:
    """What deleting records does: records, their files, and the links to mend."""

    records: list[RecordView]
    files: list[Path]
    links: dict[Path, Path | None]  # link -> new target (None: removed)

    def __str__(self) -> str:
        lines = [f"record {r.label} ({r.taskname}, {r.status})" for r in self.records]
        lines += [f"file {f}" for f in self.files]
        lines += [f"link {k} -> {v}" if v else f"link {k} (removed)"
                  for k, v in self.links.items()]
        return "\n".join(lines)


def plan_deletion(records: Iterable[RecordView], *, keep_files: bool = False) -> DeletionPlan:
    """The files and links that deleting ``records`` affects (nothing is changed)."""
    records = list(records)
    files = [] if keep_files else [f for r in records for f in r.output_files if f.exists()]
    doomed = {f.resolve() for f in files}
    links: dict[Path, Path | None] = {}
    for record in records:
        if keep_files or not record.digest:
            continue
        store = Datastore.of(record.project)
        for link in store.links_of(record.taskname, record.digest):
            if link.resolve() in doomed:
                others = [p for p in store.versions_of(link) if p.resolve() not in doomed]
                links[link] = max(others, key=lambda p: p.stat().st_mtime) if others else None
    return DeletionPlan(records, files, links)


def delete(plan: DeletionPlan) -> None:
    """Carry out a :class:`DeletionPlan`: links first, then files, then records."""
    if not plan.records:
        return
    project = plan.records[0].project
    for link, target in plan.links.items():
        if target is None:
            link.unlink(missing_ok=True)
        else:
            _fs.symlink(link, target)
    for path in plan.files:
        path.unlink(missing_ok=True)
    provenance.delete_records(project, [r.label for r in plan.records])


def create_surrogates(paths: Iterable[str | os.PathLike[str]], *,
                      allow: tuple[str, ...] = ()) -> list[str]:
    """Records for results on disk that no record claims; the new labels.

    A surrogate record carries the tag ``surrogate``, the current commit (not necessarily
    the code that made the result) and says so in its outcome.
    """
    view = RecordStoreView()
    project = view.project
    store = Datastore.of(project)
    claimed = {p.resolve() for r in view for p in r.output_files}
    made = []
    recorder = provenance.recorder(project)
    root = repo.repo_root(project.root)
    commit = repo.state(project.root, project.config.repo.dirty_directories).commit or ""
    for path in taskfile.collect(paths):
        task = taskfile.load(path, allow=allow)
        if not isinstance(task, Recorded):
            continue
        ref = task.result_ref(store)
        if not ref.on_disk:
            continue
        targets = ref.files()
        if any(t in claimed for t in targets):
            continue
        module_file, _ = repo.code_location(type(task).__module__, root)
        rec = recorder.start(
            taskname=task.taskname, digest=task.digest,
            parameters_json=taskfile.describe_json(task),
            main_file=module_file.relative_to(root).as_posix(), commit=commit,
            diff="", reason=task.reason or "surrogate record", input_paths=[],
            user=repo.git_user(root))
        rec.add_tag("surrogate")
        recorder.finish(rec, status="finished", duration=0.0,
                        outcome="Surrogate record: the result existed without a record; "
                                "the commit is the one current when the surrogate was made.",
                        output_paths=targets, stdout_stderr="", commit=commit)
        made.append(rec.label)
    return made
