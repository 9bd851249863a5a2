"""Keeping the datastore and the record store in step: verify that they agree, rebuild
links from the records, delete records with their files, and make surrogate records for
unrecorded results."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from . import _fs, config, provenance, repo, taskfile
from .errors import SmttaskError
from .outputs import (
    CorruptResult,
    Datastore,
    Written,
    add_sidecar,
    check_file,
    checksums,
    output_of,
    quarantine,
)
from .recorded import Recorded
from .view import RecordStoreView, RecordView

__all__ = ["Breach", "DeletionPlan", "RebuildReport", "SurrogateReport", "VerifyReport",
           "create_surrogates", "delete", "plan_deletion", "rebuild_links", "verify"]


@dataclass
class RebuildReport:
    """What :func:`rebuild_links` did; ``ok`` unless a record was skipped."""

    linked: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.skipped


def rebuild_links(view: RecordStoreView | None = None) -> RebuildReport:
    """Recreate the input-datastore links from the records: newest wins.

    Each finished record's task is rebuilt to get its current digest (so this also
    migrates results after a digest-scheme change). Archived files are never moved or
    deleted; a real file where a link should be is moved aside. A record whose task
    cannot be rebuilt or whose output files are gone is skipped, with the reason
    (records tagged ``outputs-gone`` by ``store verify --fix`` are history, not skipped).
    """
    view = view if view is not None else RecordStoreView()
    store = Datastore.of(view.project)
    report = RebuildReport()
    for record in reversed(list(view.filter.status("finished"))):  # oldest first
        if OUTPUTS_GONE in record.tags:
            continue
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


@dataclass
class SurrogateReport:
    """What :func:`create_surrogates` did; ``ok`` unless a task file was skipped."""

    made: list[str] = field(default_factory=list)  # labels of the new records
    recorded: list[Path] = field(default_factory=list)  # task files whose result has one
    skipped: list[str] = field(default_factory=list)  # "<task file>: <why>"

    @property
    def ok(self) -> bool:
        return not self.skipped


def create_surrogates(paths: Iterable[str | os.PathLike[str]], *,
                      allow: tuple[str, ...] = ()) -> SurrogateReport:
    """Records for the results of these task files that are on disk but that no record
    claims (in the project holding the files, else the working directory's).

    A surrogate record carries the tag ``surrogate``, the current commit (not necessarily
    the code that made the result) and says so in its outcome. A task file that cannot
    be loaded, is not a recorded task or whose result is not on disk is skipped, with
    the reason.
    """
    paths = list(paths)
    view = RecordStoreView(config.project_of(paths))
    project = view.project
    store = Datastore.of(project)
    claimed = {p.resolve() for r in view for p in r.output_files}
    report = SurrogateReport()
    recorder = provenance.recorder(project)
    root = repo.repo_root(project.root)
    commit = repo.state(project.root, project.config.repo.dirty_directories).commit or ""
    for path in taskfile.collect(paths):
        try:
            task = taskfile.load(path, allow=allow, project=project)
        except SmttaskError as exc:
            report.skipped.append(str(exc))
            continue
        if not isinstance(task, Recorded):
            report.skipped.append(f"{path}: {task.taskname} is not a recorded task")
            continue
        ref = task.result_ref(store)
        if not ref.on_disk:
            report.skipped.append(f"{path}: its result is not on disk")
            continue
        targets = ref.files()
        if any(t in claimed for t in targets):
            report.recorded.append(path)
            continue
        module_file, _ = repo.code_location(type(task).__module__, root)
        parameters, stored = taskfile.record_form(task, store)
        run = recorder.start(provenance.RunStart(
            taskname=task.taskname, digest=task.digest, parameters=parameters,
            main_file=module_file.relative_to(root).as_posix(), commit=commit, diff="",
            reason=task.reason or "surrogate record", inputs=stored,
            user=repo.git_user(root), tags=("surrogate",)))
        recorder.finish(run, status="finished", duration=0.0,
                        outcome="Surrogate record: the result existed without a record; "
                                "the commit is the one current when the surrogate was made.",
                        outputs=[Written.of(t) for t in targets], stdout_stderr="")
        report.made.append(run.label)
    return report


# --- verify: the datastore and the record store agree --------------------------------------

@dataclass
class Breach:
    """One way the datastore and the record store disagree."""

    kind: str  # corrupt, missing, unrecorded, dangling, lost, no-checksum, temporary
    where: str  # a file, a link or a record label
    detail: str
    fixed: str = ""  # what --fix did ('' if nothing)

    def __str__(self) -> str:
        done = f" [fixed: {self.fixed}]" if self.fixed else ""
        return f"{self.kind}: {self.where}: {self.detail}{done}"


@dataclass
class VerifyReport:
    """What :func:`verify` checked and found."""

    records: int = 0
    files: int = 0
    links: int = 0
    breaches: list[Breach] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True if nothing is wrong (any longer)."""
        return all(b.fixed for b in self.breaches)


#: A finished record whose output files were deleted or set aside carries this tag (set
#: by ``verify --fix``): it stays as history, and verify no longer reports it.
OUTPUTS_GONE = "outputs-gone"


def verify(project: config.Project | None = None, *, fix: bool = False,
           orphan_age: float = 3600.0) -> VerifyReport:
    """Check that every linked result verifies and has a finished record, that every
    finished record's outputs exist and verify, that no run is lost, and that no
    temporary file was left behind. ``fix`` sets bad files aside, mends links, marks lost
    runs killed, adds missing checksum files and removes old temporary files.
    """
    view = RecordStoreView(project)
    project = view.project
    store = Datastore.of(project)
    report = VerifyReport()
    keys = provenance.output_keys(project)
    recorded: dict[Path, list[provenance.OutputKey]] = {}  # each file and what records say it holds
    to_check: list[tuple[Path, provenance.OutputKey, RecordView]] = []
    for record in view:
        report.records += 1
        status = record.status
        if status == "lost":
            _lost(record, report, fix)
        if status != "finished":
            continue
        missing = []
        for key in keys.get(record.label, []):
            path = store.file_of(key.path) if record.record_form else store.output_file(key.path)
            if not path.exists():
                missing.append(path)
                continue
            recorded.setdefault(path.resolve(), []).append(key)
            to_check.append((path, key, record))
        if missing and OUTPUTS_GONE not in record.tags:
            breach = Breach("missing", record.label, "output files gone: "
                            + ", ".join(p.name for p in missing)
                            + " (the record stays as history)")
            if fix:
                record.add_tag(OUTPUTS_GONE)
                breach.fixed = f"tagged the record {OUTPUTS_GONE}"
            report.breaches.append(breach)
    bad: set[Path] = set()
    for path, key, record in to_check:
        report.files += 1
        if not _file_ok(path, key, recorded[path.resolve()], record, report, fix):
            bad.add(path.resolve())
    for link in store.all_links():
        report.links += 1
        target = link.resolve()
        if target in bad:
            problem = ("dangling", "its result file was set aside") if fix else None
        elif not target.exists():
            problem = ("dangling", f"points at a missing file {target.name}")
        elif target not in recorded:
            problem = ("unrecorded", "no finished record wrote its file (`smttask store "
                                     "create-surrogates` records it instead)")
        else:
            continue
        if problem is None:
            continue
        breach = Breach(problem[0], str(link), problem[1])
        if fix:
            link.unlink(missing_ok=True)
            breach.fixed = "link removed: the task will run again"
        report.breaches.append(breach)
    now = time.time()
    for tmp in store.temporary_files():
        try:
            age = now - tmp.stat().st_mtime
        except FileNotFoundError:
            continue
        if age < orphan_age:
            continue
        breach = Breach("temporary", str(tmp), f"left by a process that died {age / 3600:.1f} h "
                                               "ago")
        if fix:
            tmp.unlink(missing_ok=True)
            breach.fixed = "removed"
        report.breaches.append(breach)
    return report


def _file_ok(path: Path, key: provenance.OutputKey, keys: list[provenance.OutputKey],
             record: RecordView, report: VerifyReport, fix: bool) -> bool:
    """Check one output file of a finished record (``keys``: what every record that wrote
    this path says it holds, as a later run may write it again); False if it is bad."""
    try:
        meta = check_file(path)
        if meta is not None:
            # The checksum file vouches for the bytes; a record must vouch for the pair.
            if not any(meta["xxh3"] == k.xxh3 if k.xxh3 else meta.get("sha1") == k.sha1
                       for k in keys):
                raise CorruptResult("it and its checksum file agree, but no record wrote "
                                    "these bytes (the pair was replaced)")
            return True
        if checksums(path)[2] != key.sha1:
            raise CorruptResult("its SHA-1 differs from the one recorded")
    except CorruptResult as exc:
        breach = Breach("corrupt", str(path), f"{exc} (record {record.label})")
        if fix:
            aside = quarantine(path, str(exc))
            record.add_tag(OUTPUTS_GONE)
            breach.fixed = f"set aside as {aside.name}; record tagged {OUTPUTS_GONE}"
        report.breaches.append(breach)
        return False
    breach = Breach("no-checksum", str(path), f"written before smttask kept checksums "
                                              f"(record {record.label}); its SHA-1 matches")
    if fix:
        add_sidecar(path, {"task": record.taskname, "digest": record.digest,
                           "commit": record.version or "", "record": record.label})
        breach.fixed = "checksum file added"
    report.breaches.append(breach)
    return True


def _lost(record: RecordView, report: VerifyReport, fix: bool) -> None:
    why = record.lost_because()
    breach = Breach("lost", record.label, f"still marked running, but {why}")
    if fix:
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        provenance.edit_record(record.project, record.label, add_tags=("_killed_",),
                               remove_tags=("_running_",),
                               comment=f"Lost: {why}; marked killed by `smttask store "
                                       f"verify --fix` on {stamp}.")
        breach.fixed = "marked killed"
    report.breaches.append(breach)
