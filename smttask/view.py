"""Browse records from Python: filters, tables, rebuilding tasks, and "why did this run?".

``RecordStoreView()`` (alias ``RSView``) is every record of the current project, newest
first. Filters chain and return new views::

    rs = RecordStoreView()
    rs.filter.task("analyze").filter.after("2026-11-01").filter.params(ge={"nbins": 10})
    rs.latest.task.run()        # rebuild the task of the newest record

Rows come straight from the record store (one query, no Sumatra objects), so views of
many thousand records stay fast.
"""

from __future__ import annotations

import html
import json
import operator
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import config, provenance
from .errors import SmttaskError

if TYPE_CHECKING:  # imported where used: listing records needs neither numpy nor pydantic
    from .task import Task

__all__ = [
    "DeletionPlan",
    "Difference",
    "RSView",
    "RebuildReport",
    "RecordStoreView",
    "RecordView",
    "TaskStatus",
    "create_surrogates",
    "delete",
    "explain",
    "parse_when",
    "plan_deletion",
    "rebuild_links",
    "status",
]

STATUSES = ("running", "finished", "crashed", "killed")


def parse_when(value: str | date | datetime) -> datetime:
    """A UTC datetime from a datetime, a date, an ISO string, 'today', 'yesterday', or an
    age such as '90m', '12h', '3d', '2w' (that long ago)."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, date):
        return datetime.combine(value, time(), tzinfo=timezone.utc)
    text = value.strip().lower()
    now = datetime.now(timezone.utc)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if text == "today":
        return midnight
    if text == "yesterday":
        return midnight - timedelta(days=1)
    age = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smhdw])", text)
    if age:
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
        return now - timedelta(**{unit[age[2]]: float(age[1])})
    try:
        return parse_when(datetime.fromisoformat(value.strip()))
    except ValueError:
        msg = (f"cannot read {value!r} as a date: use 2026-11-25, '2026-11-25 14:00', today, "
               "yesterday, or an age like 3d or 12h")
        raise SmttaskError(msg) from None


def _summary(value: Any) -> Any:
    """Inputs for display: arrays and nested tasks shortened."""
    if isinstance(value, dict) and "npy" in value:
        return f"<array {value.get('dtype')} {tuple(value.get('shape', ()))}>"
    if isinstance(value, dict) and value.get("smttask"):
        return f"{value.get('taskname')}({value.get('digest', '')[:8]})"
    return value


def _lookup(inputs: dict[str, Any], dotted: str) -> Any:
    """``inputs["a"]["b"]``, stepping into nested task descriptions' inputs."""
    value: Any = inputs
    for part in dotted.split("."):
        if isinstance(value, dict) and value.get("smttask") and "inputs" in value:
            value = value["inputs"]
        if not isinstance(value, dict) or part not in value:
            raise KeyError(dotted)
        value = value[part]
    return value


def _column(name: str, doc: str) -> Any:
    return property(lambda self: self._row[name], doc=doc)


class RecordView:
    """One record: its fields, its task, its outputs; tags and comments can be edited."""

    def __init__(self, row: dict[str, Any], project: config.Project) -> None:
        self._row = row
        self.project = project

    label = _column("label", "The record's unique label.")
    timestamp = _column("timestamp", "When the run started (UTC).")
    reason = _column("reason", "Why the task was run.")
    duration = _column("duration", "Seconds spent in the task (None while running).")
    outcome = _column("outcome", "The failure, notes and comments.")
    main_file = _column("main_file", "The module defining the task, repo-relative.")
    version = _column("version", "The git commit.")
    script_arguments = _column("script_arguments", "The script or task file that ran.")
    user = _column("user", "Who ran it.")

    @property
    def tags(self) -> set[str]:
        return set(self._row["tags"])

    @cached_property
    def params(self) -> dict[str, Any]:
        """The task description stored as the record's parameters."""
        try:
            return json.loads(self._row["parameters__content"])
        except (TypeError, ValueError):
            return {}

    @property
    def taskname(self) -> str:
        return self.params.get("taskname", "")

    @property
    def digest(self) -> str:
        return self.params.get("digest", "")

    @property
    def inputs(self) -> dict[str, Any]:
        """The task's inputs as stored (arrays as their JSON form, nested tasks as dicts)."""
        return self.params.get("inputs", {})

    @property
    def status(self) -> str:
        for tag in self.tags:
            if tag.startswith("_") and tag.endswith("_"):
                return tag.strip("_")
        return ""

    @cached_property
    def task(self) -> Task:
        """The task that made this record (imports only the project's modules)."""
        from . import taskfile

        return taskfile.load(self.params)

    @cached_property
    def output_files(self) -> list[Path]:
        """The files this run wrote (in the output datastore; they may have been deleted)."""
        paths = provenance.output_paths(self.project, [self.label])[self.label]
        return [self.project.output_dir / p for p in paths]

    @property
    def outputs(self) -> list[Path]:
        return self.output_files

    def get_output(self, name: str = "result") -> Any:
        """Load one output of this run from its own file (not from the current link)."""
        spec = next((s for s in self.task.output_specs if s.name == name), None)
        if spec is None:
            raise KeyError(f"{self.taskname} has no output {name!r}")
        pattern = re.compile(rf".*_{re.escape(name)}(_\d+)?\.{spec.ext}$")
        for path in self.output_files:
            if pattern.match(path.name):
                return spec.read(str(path))
        raise FileNotFoundError(f"record {self.label} wrote no output {name!r}")

    def add_tag(self, *tags: str) -> None:
        self._edit(add_tags=tags)

    def remove_tag(self, *tags: str) -> None:
        self._edit(remove_tags=tags)

    def add_comment(self, text: str) -> None:
        self._edit(comment=text)

    def _edit(self, **kw: Any) -> None:
        record = provenance.edit_record(self.project, self.label, **kw)
        self._row["tags"] = set(record.tags)
        self._row["outcome"] = record.outcome

    def summary(self) -> dict[str, Any]:
        """One flat row for tables: label, task, status, duration, reason, version."""
        return {"label": self.label, "timestamp": self.timestamp, "task": self.taskname,
                "status": self.status, "duration": self.duration, "reason": self.reason,
                "version": (self.version or "")[:10]}

    def __repr__(self) -> str:
        return f"<RecordView {self.label} {self.taskname} {self.status}>"


class _Filter:
    """``view.filter``: call it with a predicate, or use one of its named filters."""

    def __init__(self, view: RecordStoreView) -> None:
        self._view = view

    def __call__(self, predicate: Callable[[RecordView], bool]) -> RecordStoreView:
        return self._view._where(predicate)

    def task(self, *names: str) -> RecordStoreView:
        """Records of these tasks (by task name)."""
        wanted = set(names)
        return self._view._where(lambda r: r.taskname in wanted)

    def after(self, when: str | date | datetime) -> RecordStoreView:
        """Records made at or after ``when`` (see :func:`parse_when`)."""
        t = parse_when(when)
        return self._view._where(lambda r: r.timestamp >= t)

    def before(self, when: str | date | datetime) -> RecordStoreView:
        """Records made before ``when``."""
        t = parse_when(when)
        return self._view._where(lambda r: r.timestamp < t)

    def tags(self, *tags: str) -> RecordStoreView:
        """Records carrying every one of these tags."""
        return self._view._where(lambda r: set(tags) <= r.tags)

    def status(self, *statuses: str) -> RecordStoreView:
        """Records whose status is one of these (finished, crashed, killed, running)."""
        wanted = {s.strip("_") for s in statuses}
        return self._view._where(lambda r: r.status in wanted)

    def params(self, **conditions: dict[str, Any]) -> RecordStoreView:
        """Compare inputs, by dotted name: ``params(eq={"dt": 0.1}, ge={"arr.n": 10})``.

        Operators: eq, ne, lt, le, gt, ge. Dotted names step into nested tasks' inputs.
        """
        ops = {"eq": operator.eq, "ne": operator.ne, "lt": operator.lt, "le": operator.le,
               "gt": operator.gt, "ge": operator.ge}
        unknown = set(conditions) - set(ops)
        if unknown:
            raise TypeError(f"unknown comparison {sorted(unknown)}; use {sorted(ops)}")
        checks = [(ops[op], name, value) for op, spec in conditions.items()
                  for name, value in spec.items()]

        def keep(record: RecordView) -> bool:
            for op, name, value in checks:
                try:
                    if not op(_lookup(record.inputs, name), value):
                        return False
                except (KeyError, TypeError):
                    return False
            return True

        return self._view._where(keep)


class RecordStoreView:
    """The records of a project, newest first; ``view.filter`` narrows it down."""

    def __init__(self, project: config.Project | None = None, *,
                 _rows: list[dict[str, Any]] | None = None) -> None:
        self.project = project or config.find_project()
        self._rows = _rows

    @property
    def _records(self) -> list[dict[str, Any]]:
        if self._rows is None:
            self._rows = provenance.rows(self.project)
        return self._rows

    def _where(self, predicate: Callable[[RecordView], bool]) -> RecordStoreView:
        kept = [row for row in self._records if predicate(RecordView(row, self.project))]
        return RecordStoreView(self.project, _rows=kept)

    @property
    def filter(self) -> _Filter:
        return _Filter(self)

    def __iter__(self) -> Iterator[RecordView]:
        return (RecordView(row, self.project) for row in self._records)

    def __len__(self) -> int:
        return len(self._records)

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return RecordStoreView(self.project, _rows=self._records[index])
        return RecordView(self._records[index], self.project)

    @property
    def latest(self) -> RecordView:
        """The newest record."""
        if not self._records:
            raise SmttaskError("no records in this view")
        return self[0]

    def get(self, label: str) -> RecordView:
        """The record with this label, or the only one starting with it."""
        matches = [row for row in self._records if row["label"].startswith(label)]
        exact = [row for row in matches if row["label"] == label]
        if exact or len(matches) == 1:
            return RecordView((exact or matches)[0], self.project)
        if not matches:
            raise SmttaskError(f"no record with a label starting with {label!r}")
        shown = ", ".join(row["label"] for row in matches[:5])
        raise SmttaskError(f"{label!r} matches {len(matches)} records ({shown}…); "
                           "give more of the label")

    def add_tag(self, *tags: str) -> None:
        for record in self:
            record.add_tag(*tags)

    def remove_tag(self, *tags: str) -> None:
        for record in self:
            record.remove_tag(*tags)

    def add_comment(self, text: str) -> None:
        for record in self:
            record.add_comment(text)

    def table(self) -> list[dict[str, Any]]:
        """One summary dict per record, with the inputs as dotted columns."""
        result = []
        for record in self:
            row = record.summary()
            for name, value in _flatten(record.inputs).items():
                row[name] = _summary(value)
            result.append(row)
        return result

    def dataframe(self) -> Any:
        """A pandas DataFrame of :meth:`table` (needs the ``view`` extra: pandas)."""
        try:
            import pandas as pd
        except ImportError:
            raise SmttaskError("dataframe() needs pandas: pip install 'smttask[view]'") \
                from None
        return pd.DataFrame(self.table())

    def _repr_html_(self) -> str:
        head = ("label", "task", "status", "duration", "reason")
        cells = "".join(
            "<tr>" + "".join(f"<td>{html.escape(str(_fmt(r.summary()[k])))}</td>"
                             for k in head) + "</tr>"
            for r in self[:50])
        more = f"<p>… and {len(self) - 50} more</p>" if len(self) > 50 else ""
        th = "".join(f"<th>{k}</th>" for k in head)
        return f"<table><tr>{th}</tr>{cells}</table>{more}"

    def __repr__(self) -> str:
        return f"<RecordStoreView of {self.project.name}: {len(self)} records>"


RSView = RecordStoreView


def _fmt(value: Any) -> Any:
    return f"{value:.3g}s" if isinstance(value, float) else (value or "")


def _flatten(inputs: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for name, value in inputs.items():
        key = f"{prefix}{name}"
        if isinstance(value, dict) and value.get("smttask") and "inputs" in value:
            flat[key] = _summary(value)
            flat.update(_flatten(value["inputs"], key + "."))
        else:
            flat[key] = value
    return flat


# --- status and "why" -------------------------------------------------------------------

@dataclass
class Difference:
    """One input that differs between a task and a record (dotted name)."""

    name: str
    record: Any
    task: Any

    def __str__(self) -> str:
        return f"{self.name}: {_summary(self.record)!r} → {_summary(self.task)!r}"


@dataclass
class TaskStatus:
    """Whether a task's result is on disk, and if not, why not."""

    task: Task
    on_disk: bool
    explanation: str
    closest: RecordView | None = None
    differences: list[Difference] = field(default_factory=list)


def _diff(a: Any, b: Any, prefix: str = "") -> list[Difference]:
    if isinstance(a, dict) and isinstance(b, dict):
        if a.get("smttask") and b.get("smttask"):
            if a.get("taskname") != b.get("taskname") or a.get("module") != b.get("module"):
                return [Difference(prefix or "task", _summary(a), _summary(b))]
            a, b = a.get("inputs", {}), b.get("inputs", {})
        elif "npy" in a or "npy" in b:
            return [] if a == b else [Difference(prefix, a, b)]
        out = []
        for key in sorted(set(a) | set(b)):
            name = f"{prefix}.{key}" if prefix else key
            if key not in a or key not in b:
                out.append(Difference(name, a.get(key, "(absent)"), b.get(key, "(absent)")))
            else:
                out.extend(_diff(a[key], b[key], name))
        return out
    return [] if a == b else [Difference(prefix, a, b)]


def explain(task: Task, view: RecordStoreView | None = None) -> TaskStatus:
    """Is ``task``'s result on disk? If not, the closest record and what differs."""
    from . import outputs, taskfile

    view = view if view is not None else RecordStoreView()
    project = view.project
    links = outputs.link_paths(project.input_dir, task.taskname, task.digest,
                               list(task.output_specs))
    missing = [p for p in links if not p.exists()]
    if not missing:
        return TaskStatus(task, True, "result on disk: it will be loaded, not run")
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
    mine = taskfile.describe(task)["inputs"]
    ranked = sorted(same, key=lambda r: (len(_diff(r.inputs, mine)), -r.timestamp.timestamp()))
    closest = ranked[0]
    diffs = _diff(closest.inputs, mine)
    if not diffs:
        why = (f"record {closest.label} has the same inputs but another digest: the task's "
               "version or the digest scheme changed")
    else:
        shown = "; ".join(str(d) for d in diffs[:6]) + (" …" if len(diffs) > 6 else "")
        why = f"closest record {closest.label} differs in {len(diffs)} input(s): {shown}"
    return TaskStatus(task, False, why + ": it will run", closest, diffs)


def status(paths: Iterable[str | Path], *, allow: tuple[str, ...] = ()) -> list[TaskStatus]:
    """:func:`explain` for every task file found in ``paths``."""
    from . import taskfile
    from .runner import collect

    view = RecordStoreView()
    return [explain(taskfile.load(p, allow=allow), view) for p in collect(paths)]


# --- maintenance: links, deletion, surrogate records -----------------------------------

def _output_pattern(task: Task, recorded_digest: str) -> list[tuple[Any, Any]]:
    return [(spec, re.compile(rf"^{re.escape(recorded_digest)}_{re.escape(spec.name)}"
                              rf"(_\d+)?\.{spec.ext}$")) for spec in task.output_specs]


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
    from . import outputs

    view = view if view is not None else RecordStoreView()
    project = view.project
    report = RebuildReport()
    for record in reversed(list(view.filter.status("finished"))):  # oldest first
        try:
            task = record.task
        except SmttaskError as exc:
            report.skipped.append(f"{record.label}: {exc}")
            continue
        for spec, pattern in _output_pattern(task, record.digest):
            files = [f for f in record.output_files if pattern.match(f.name) and f.exists()]
            if not files:
                report.skipped.append(f"{record.label}: output {spec.name!r} is missing")
                continue
            link = project.input_dir / task.taskname / spec.filename(task.digest)
            outputs.relink(link, files[0])
            report.linked.append(link)
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
        folder = record.project.input_dir / record.taskname
        if not folder.is_dir():
            continue
        for link in folder.glob(f"{record.digest}_*"):
            if link.is_symlink() and link.resolve() in doomed:
                stem, ext = link.name.rsplit(".", 1)
                out = record.project.output_dir / record.taskname
                others = [p for p in out.glob(f"{stem}*.{ext}")
                          if p.resolve() not in doomed
                          and re.fullmatch(rf"{re.escape(stem)}(_\d+)?\.{ext}", p.name)]
                links[link] = max(others, key=lambda p: p.stat().st_mtime) if others else None
    return DeletionPlan(records, files, links)


def delete(plan: DeletionPlan) -> None:
    """Carry out a :class:`DeletionPlan`: links first, then files, then records."""
    from . import outputs

    if not plan.records:
        return
    project = plan.records[0].project
    for link, target in plan.links.items():
        if target is None:
            link.unlink(missing_ok=True)
        else:
            outputs.relink(link, target)
    for path in plan.files:
        path.unlink(missing_ok=True)
    provenance.delete_records(project, [r.label for r in plan.records])


def create_surrogates(paths: Iterable[str | Path], *, allow: tuple[str, ...] = ()) -> list[str]:
    """Records for results on disk that no record claims; the new labels.

    A surrogate record carries the tag ``surrogate``, the current commit (not necessarily
    the code that made the result) and says so in its outcome.
    """
    from . import outputs, repo, taskfile
    from .runner import collect
    from .task import Recorded

    view = RecordStoreView()
    project = view.project
    claimed = {p.resolve() for r in view for p in r.output_files}
    made = []
    recorder = provenance.recorder(project)
    root = repo.repo_root(project.root)
    commit = repo.state(project.root, project.config.repo.dirty_directories).commit
    for path in collect(paths):
        task = taskfile.load(path, allow=allow)
        if not isinstance(task, Recorded):
            continue
        links = outputs.link_paths(project.input_dir, task.taskname, task.digest,
                                   list(task.output_specs))
        if not all(p.exists() for p in links):
            continue
        targets = [p.resolve() for p in links]
        if any(t in claimed for t in targets):
            continue
        module_file, _ = repo.code_location(type(task).__module__, root)
        rec = recorder.start(
            taskname=task.taskname, digest=task.digest,
            parameters_json=taskfile.describe_json(task),
            main_file=module_file.relative_to(root).as_posix(), commit=commit or "",
            diff="", reason=task.reason or "surrogate record", input_paths=[],
            user=repo.git_user(root))
        rec.add_tag("surrogate")
        recorder.finish(rec, status="finished", duration=0.0,
                        outcome="Surrogate record: the result existed without a record; "
                                "the commit is the one current when the surrogate was made.",
                        output_paths=targets, stdout_stderr="", commit=commit or "")
        made.append(rec.label)
    return made
