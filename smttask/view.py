"""Browse records from Python: filters, tables, and the tasks that made them.

``RecordStoreView()`` (alias ``RSView``) is every record of the current project, newest
first. Filters chain and return new views::

    rs = RecordStoreView()
    rs.filter.task("analyze").filter.after("2026-11-01").filter.params(ge={"nbins": 10})
    rs.latest.task.run()        # rebuild the task of the newest record

Rows come straight from the record store (one query, no Sumatra objects), so views of
many thousand records stay fast.
"""

from __future__ import annotations

import json
import operator
import os
import re
import socket
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from datetime import date, datetime, time, timedelta, timezone
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import config, provenance
from .errors import UsageError
from .outputs import Datastore, output_of
from .provenance import Query, RecordDetails
from .provenance.records import is_record_form

if TYPE_CHECKING:  # imported where used: listing records needs neither numpy nor pydantic
    from .reproduce import Reproduction
    from .task import Task

__all__ = [
    "RSView",
    "RecordStoreView",
    "RecordView",
    "dtype_name",
    "find",
    "flatten_inputs",
    "input_columns",
    "is_array",
    "lost_because",
    "nested_task",
    "parse_condition",
    "parse_when",
    "summarize",
]


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
    try:
        if age:
            unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
            return now - timedelta(**{unit[age[2]]: float(age[1])})
        return parse_when(datetime.fromisoformat(value.strip()))
    except (ValueError, OverflowError):  # not a date; an age beyond year 1
        msg = (f"cannot read {value!r} as a date: use 2026-11-25, '2026-11-25 14:00', today, "
               "yesterday, or an age like 3d or 12h")
        raise UsageError(msg) from None


def is_array(value: Any) -> bool:
    """True for an array input as a record or task file stores it."""
    return isinstance(value, dict) and "dtype" in value and "shape" in value and (
        "npy" in value or "file" in value or "values" in value)


def nested_task(value: Any) -> tuple[str, str, dict[str, Any]] | None:
    """(name, digest, inputs) if ``value`` is a nested task as stored, else None."""
    if isinstance(value, dict):
        meta = value.get("_smttask")
        if isinstance(meta, dict):  # record form
            return (str(meta.get("task", "")), str(meta.get("digest", "")),
                    {k: v for k, v in value.items() if k != "_smttask"})
        if value.get("smttask") and isinstance(value.get("inputs"), dict):  # task-file form
            return (str(value.get("taskname", "")), str(value.get("digest", "")),
                    value["inputs"])
    return None


_OPS = {"=": "eq", "==": "eq", "!=": "ne", "<": "lt", "<=": "le", ">": "gt", ">=": "ge"}


def parse_condition(text: str) -> tuple[str, str, Any]:
    """``'dt>=0.3'`` → ``("ge", "dt", 0.3)``: a comparison for :meth:`_Filter.params`.

    The value is read as JSON (numbers, true, false, null, "quoted text"), otherwise
    taken as text: ``name=abc`` compares with the string ``"abc"``.
    """
    m = re.fullmatch(r"\s*([\w.]+)\s*(==|=|!=|<=|>=|<|>)\s*([^<>=!\s].*?)?\s*", text)
    if m is None or not m[3]:
        raise UsageError(f"cannot read the condition {text!r}: write NAME OP VALUE with OP "
                         "one of = != < <= > >=, e.g. 'dt>=0.3' or 'nbins=2'")
    try:
        value = json.loads(m[3])
    except ValueError:
        value = m[3]
    return _OPS[m[2]], m[1], value


def dtype_name(stored: Any) -> str:
    """``'<f8'`` → ``'float64'`` (numpy's name for little-endian and byte-order-free
    dtypes, without importing numpy); anything else as stored."""
    kinds = {"f": "float", "i": "int", "u": "uint", "c": "complex"}
    m = re.fullmatch(r"([<|])([fiucb])(\d+)", stored) if isinstance(stored, str) else None
    if m is None:
        return str(stored)
    return "bool" if m[2] == "b" else f"{kinds[m[2]]}{int(m[3]) * 8}"


def summarize(value: Any) -> Any:
    """An input value as stored, for display: arrays and nested tasks shortened."""
    if is_array(value):
        return f"<array {dtype_name(value.get('dtype'))} {tuple(value.get('shape', ()))}>"
    task = nested_task(value)
    if task is not None:
        return f"{task[0]}({task[1][:8]})"
    return value


def _lookup(inputs: dict[str, Any], dotted: str) -> Any:
    """``inputs["a"]["b"]``, stepping into nested tasks' inputs."""
    value: Any = inputs
    for part in dotted.split("."):
        task = nested_task(value)
        if task is not None:
            value = task[2]
        if not isinstance(value, dict) or part not in value:
            raise KeyError(dotted)
        value = value[part]
    return value


_RUNNING = re.compile(r"Running on host (?P<host>\S+), pid (?P<pid>\d+)"
                      r"(?:, SLURM job (?P<job>[\w.]+))?")


def lost_because(outcome: str, started: datetime, lost_after_hours: float) -> str:
    """Why a record still marked running has no process any more ('' if it may run).

    On the host that ran it, the process is looked up (its pid, started before the
    record); a SLURM job is looked up in the queue; otherwise a run older than
    ``lost_after_hours`` counts as lost.
    """
    m = _RUNNING.match(outcome)
    age = (datetime.now(timezone.utc) - started).total_seconds() / 3600
    if m is None:
        return f"no process is named and it started {age:.0f} h ago" \
            if age > lost_after_hours else ""
    if m["host"] == socket.gethostname():
        pid = int(m["pid"])
        return "" if _alive(pid, started) else f"its process {pid} on {m['host']} is gone"
    if m["job"]:
        queued = _slurm_job_queued(m["job"])
        if queued is not None:
            return "" if queued else f"its SLURM job {m['job']} is no longer queued or running"
    if age > lost_after_hours:
        return f"it started on {m['host']} {age:.0f} h ago, more than the {lost_after_hours:g} h " \
            "after which a run from another host counts as lost"
    return ""


def _alive(pid: int, since: datetime) -> bool:
    """True if process ``pid`` exists and started before ``since`` (not a reused pid)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        with open(f"/proc/{pid}/stat") as f:
            ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/stat") as f:
            boot = next(int(line.split()[1]) for line in f if line.startswith("btime"))
    except (OSError, ValueError, IndexError, StopIteration):
        return True  # no /proc: trust the pid
    started = boot + ticks / os.sysconf("SC_CLK_TCK")
    return started <= since.timestamp() + 2


def _slurm_job_queued(job: str) -> bool | None:
    """Whether SLURM still knows the job as queued or running; None if it cannot say."""
    import subprocess

    try:
        proc = subprocess.run(["squeue", "-h", "-o", "%i", "-j", job], capture_output=True,
                              text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return False if "Invalid job id" in proc.stderr else None
    return bool(proc.stdout.strip())


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
    def record_form(self) -> bool:
        """True for records written by smttask-record/1 (inputs at the top level of the
        parameters); False for older ones (the task file as parameters)."""
        return is_record_form(self.params)

    @property
    def _meta(self) -> dict[str, Any]:
        if self.record_form:
            return {"taskname": self.params["_smttask"].get("task", ""),
                    "digest": self.params["_smttask"].get("digest", "")}
        return self.params

    @property
    def taskname(self) -> str:
        return str(self._meta.get("taskname", ""))

    @property
    def digest(self) -> str:
        return str(self._meta.get("digest", ""))

    @property
    def inputs(self) -> dict[str, Any]:
        """The task's inputs as stored: scalars as they are, arrays summarised (dtype,
        shape, statistics, hash, stored file), nested tasks as dicts of their inputs."""
        if self.record_form:
            return {k: v for k, v in self.params.items() if k != "_smttask"}
        from .taskfile import record_inputs  # a record made before smttask-record/1

        return record_inputs(self.params)

    @property
    def status(self) -> str:
        """finished, crashed, killed, running; or lost: running, but its process is gone."""
        for tag in self.tags:
            if tag.startswith("_") and tag.endswith("_"):
                status = tag.strip("_")
                if status == "running" and self.lost_because():
                    return "lost"
                return status
        return ""

    def lost_because(self) -> str:
        """Why a running record is lost ('' if it is not, or not running)."""
        if "_running_" not in self.tags:
            return ""
        limit = config.hours(self.project.config.record_store.lost_after)
        return lost_because(self.outcome or "", self.timestamp, limit)

    @property
    def description(self) -> dict[str, Any]:
        """The task description that rebuilds this record's task (a task file's content,
        nested upstream tasks and array data included)."""
        if self.record_form:
            from . import taskfile

            return taskfile.describe(self.task)
        return self.params

    @cached_property
    def task(self) -> Task:
        """The task that made this record (imports only the project's modules, which it
        makes importable)."""
        from . import taskfile

        if self.record_form:
            return taskfile.load_record_form(self.params, Datastore.of(self.project),
                                             where=f"record {self.label}",
                                             project=self.project)
        return taskfile.load(self.params, project=self.project)

    @cached_property
    def output_files(self) -> list[Path]:
        """The files this run wrote (in the output datastore; they may have been deleted)."""
        store = Datastore.of(self.project)
        keys = provenance.output_paths(self.project, [self.label])[self.label]
        if self.record_form:
            return [store.file_of(k) for k in keys]
        return [store.output_file(k) for k in keys]

    @property
    def outputs(self) -> list[Path]:
        return self.output_files

    def get_output(self, name: str = "result") -> Any:
        """Load one output of this run from its own files (not from the current links);
        a separate output comes back as the tuple of its items."""
        task = self.task
        if name not in {s.name for s in task.output_specs}:
            raise KeyError(f"{self.taskname} has no output {name!r}")
        specs = [s for s in task.result_ref(Datastore.of(self.project)).file_specs  # type: ignore[attr-defined]
                 if (s.group or s.name) == name]
        values = []
        for spec in specs:
            path = next((p for p in self.output_files
                         if output_of(p, self.digest, [spec]) is spec), None)
            if path is None:
                raise FileNotFoundError(f"record {self.label} wrote no output {spec.name!r}")
            values.append(spec.read(path))
        separate = next(s for s in task.output_specs if s.name == name).separate
        return tuple(values) if separate else values[0]

    def details(self) -> RecordDetails:
        """Packages, platform, diff and captured output (read from the record store)."""
        return provenance.details(self.project, self.label)

    def reproduce(self, *, rtol: float = 0.0, atol: float = 0.0, tag: bool = True
                  ) -> Reproduction:
        """Rerun this record at its commit and compare its outputs with the recorded ones
        (see :mod:`smttask.reproduce`); ``tag`` stores the outcome on the record."""
        from .reproduce import reproduce

        return reproduce([self], rtol=rtol, atol=atol, tag=tag)[0]

    def add_tag(self, *tags: str) -> None:
        self._edit(add_tags=tags)

    def remove_tag(self, *tags: str) -> None:
        self._edit(remove_tags=tags)

    def add_comment(self, text: str) -> None:
        self._edit(comment=text)

    def _edit(self, **kw: Any) -> None:
        self._row["tags"], self._row["outcome"] = provenance.edit_record(
            self.project, self.label, **kw)

    def summary(self) -> dict[str, Any]:
        """One flat row for tables: label, task, status, duration, reason, version."""
        return {"label": self.label, "timestamp": self.timestamp, "task": self.taskname,
                "status": self.status, "duration": self.duration, "reason": self.reason,
                "version": (self.version or "")[:10]}

    def _repr_html_(self) -> str:
        from .display import record_html

        return record_html(self)

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
        view = self._view
        if view._rows is None and not view._query.tasks:
            return view._narrow(tasks=tuple(sorted(wanted)))
        return view._where(lambda r: r.taskname in wanted)

    def after(self, when: str | date | datetime) -> RecordStoreView:
        """Records made at or after ``when`` (see :func:`parse_when`)."""
        t = parse_when(when)
        view = self._view
        if view._rows is None:
            since = view._query.since
            return view._narrow(since=t if since is None else max(since, t))
        return view._where(lambda r: r.timestamp >= t)

    def before(self, when: str | date | datetime) -> RecordStoreView:
        """Records made before ``when``."""
        t = parse_when(when)
        view = self._view
        if view._rows is None:
            until = view._query.until
            return view._narrow(until=t if until is None else min(until, t))
        return view._where(lambda r: r.timestamp < t)

    def tags(self, *tags: str) -> RecordStoreView:
        """Records carrying every one of these tags."""
        view = self._view
        if view._rows is None:
            return view._narrow(tags=tuple(dict.fromkeys((*view._query.tags, *tags))))
        return view._where(lambda r: set(tags) <= r.tags)

    def status(self, *statuses: str) -> RecordStoreView:
        """Records whose status is one of these (finished, crashed, killed, running, lost)."""
        wanted = {s.strip("_") for s in statuses}
        view = self._view
        if view._rows is None and not view._query.statuses:
            return view._narrow(statuses=tuple(sorted(wanted)))
        return view._where(lambda r: r.status in wanted)

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

    def where(self, *conditions: str) -> RecordStoreView:
        """Conditions as text, all of which must hold: ``where("dt>=0.3", "nbins=2")``
        (see :func:`parse_condition`; the same comparisons as :meth:`params`)."""
        spec: dict[str, dict[str, Any]] = {}
        view = self._view
        for op, name, value in map(parse_condition, conditions):
            if name in spec.setdefault(op, {}):  # e.g. two bounds of one kind
                view = view.filter.params(**{op: {name: value}})
            else:
                spec[op][name] = value
        return view.filter.params(**spec) if spec else view


class RecordStoreView:
    """The records of a project, newest first; ``view.filter`` narrows it down.

    A view reads the store when it is first used. Until then, the task, tag, status and
    date filters narrow the query itself (only matching rows are read); the others, and
    filters on a view already read, check each record.
    """

    def __init__(self, project: config.Project | None = None, *, query: Query | None = None,
                 _rows: list[dict[str, Any]] | None = None) -> None:
        self.project = project or config.find_project()
        self._query = query or Query()
        self._rows = _rows

    @classmethod
    def select(cls, query: Query, project: config.Project | None = None) -> RecordStoreView:
        """The records matching ``query``, filtered in the record store itself."""
        return cls(project, query=query)

    def _narrow(self, **changes: Any) -> RecordStoreView:
        return RecordStoreView(self.project, query=replace(self._query, **changes))

    @property
    def _records(self) -> list[dict[str, Any]]:
        if self._rows is None:
            self._rows = _read(self.project, self._query)
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
            raise UsageError("no records in this view")
        return self[0]

    def get(self, label: str) -> RecordView:
        """The record with this label, or the only one starting with it."""
        if self._rows is None and not self._query.label_prefix:
            rows = _read(self.project, replace(self._query, label_prefix=label))
        else:
            rows = self._records
        matches = [row for row in rows if row["label"].startswith(label)]
        exact = [row for row in matches if row["label"] == label]
        if exact or len(matches) == 1:
            return RecordView((exact or matches)[0], self.project)
        if not matches:
            raise UsageError(f"no record with a label starting with {label!r}")
        shown = ", ".join(row["label"] for row in matches[:5])
        raise UsageError(f"{label!r} matches {len(matches)} records ({shown}…); "
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

    def reproduce(self, *, rtol: float = 0.0, atol: float = 0.0, tag: bool = True
                  ) -> list[Reproduction]:
        """Reproduce every record of this view (see :meth:`RecordView.reproduce`)."""
        from .reproduce import reproduce

        return reproduce(self, rtol=rtol, atol=atol, tag=tag)

    def table(self, params: list[str] | None = None) -> list[dict[str, Any]]:
        """One summary dict per record, with the inputs as dotted columns (``params``:
        only these inputs)."""
        result = []
        for record in self:
            row = record.summary()
            flat = flatten_inputs(record.inputs)
            for name in flat if params is None else params:
                row[name] = summarize(flat.get(name, ""))
            result.append(row)
        return result

    def dataframe(self) -> Any:
        """A pandas DataFrame of :meth:`table` (needs the ``view`` extra: pandas)."""
        try:
            import pandas as pd
        except ImportError:
            raise UsageError("dataframe() needs pandas: pip install 'smttask[view]'") \
                from None
        return pd.DataFrame(self.table())

    def _repr_html_(self) -> str:
        from .display import records_html

        return records_html(self)

    def __repr__(self) -> str:
        return f"<RecordStoreView of {self.project.name}: {len(self)} records>"


RSView = RecordStoreView


def _read(project: config.Project, query: Query) -> list[dict[str, Any]]:
    """The rows of ``query``; lost runs are running records whose process is gone, so for
    "running" and "lost" the store is asked for running ones, and each is looked at."""
    wanted = set(query.statuses)
    if not wanted & {"lost", "running"}:
        return provenance.rows(project, query)
    statuses = tuple(sorted((wanted - {"lost"}) | {"running"}))
    rows = provenance.rows(project, replace(query, statuses=statuses, limit=None))
    kept = [r for r in rows if RecordView(r, project).status in wanted]
    return kept[:query.limit] if query.limit is not None else kept


def _fmt(value: Any) -> Any:
    return f"{value:.3g}s" if isinstance(value, float) else (value or "")


def find(label: str, project: config.Project | None = None) -> RecordView:
    """The record with this label, or the only one starting with it (only the matching
    rows are read: fast on large stores)."""
    return RecordStoreView.select(Query(label_prefix=label), project).get(label)


def input_columns(records: Iterable[RecordView]) -> list[str]:
    """The dotted input names of ``records``, in order of first appearance."""
    return list(dict.fromkeys(k for r in records for k in flatten_inputs(r.inputs)))


def flatten_inputs(inputs: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Inputs by dotted name; a nested task's own inputs follow its entry."""
    flat: dict[str, Any] = {}
    for name, value in inputs.items():
        key = f"{prefix}{name}"
        task = nested_task(value)
        if task is not None:
            flat[key] = summarize(value)
            flat.update(flatten_inputs(task[2], key + "."))
        else:
            flat[key] = value
    return flat
