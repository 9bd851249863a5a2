"""One record: its fields, its task and outputs, its tags and comments."""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import config, provenance
from ..outputs import Datastore, output_of
from ..provenance import RecordDetails
from ..provenance.records import is_record_form
from .lost import lost_because

if TYPE_CHECKING:  # imported where used: listing records needs neither numpy nor pydantic
    from ..reproduce import Reproduction
    from ..task import Task


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
        if "parameters__content" not in self._row:  # a listing's row: read them now
            [row] = provenance.rows(self.project, provenance.Query(labels=(self.label,)))
            self._row["parameters__content"] = row["parameters__content"]
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
        name = self._row.get("taskname")  # read with the row (see provenance.rows)
        return str(name) if name is not None else str(self._meta.get("taskname", ""))

    @property
    def digest(self) -> str:
        return str(self._meta.get("digest", ""))

    @property
    def inputs(self) -> dict[str, Any]:
        """The task's inputs as stored: scalars as they are, arrays summarised (dtype,
        shape, statistics, hash, stored file), nested tasks as dicts of their inputs."""
        if self.record_form:
            return {k: v for k, v in self.params.items() if k != "_smttask"}
        from ..taskfile import record_inputs  # a record made before smttask-record/1

        return record_inputs(self.params)

    @property
    def status(self) -> str:
        """finished, crashed, killed, running; or lost: running, but its process is gone."""
        status = _status_tag(self._row["tags"])
        return "lost" if status == "running" and self.lost_because() else status

    def lost_because(self) -> str:
        """Why a running record is lost ('' if it is not, or not running)."""
        if "_running_" not in self.tags:
            return ""
        limit = config.hours(self.project.config.record_store.lost_after)
        return lost_because(self.outcome or "", self.timestamp, limit)

    @property
    def description(self) -> dict[str, Any]:
        """The task description that rebuilds this record's task (a task file's content,
        nested upstream tasks and array data included), with this record's reason; nested
        tasks carry none (each upstream run's reason is its own record's). A task object's
        reason is whatever its last run in this process set: not read here."""
        if self.record_form:
            from .. import taskfile

            return {**_without_reasons(taskfile.describe(self.task)),
                    "reason": self.reason or None}
        return self.params

    @cached_property
    def task(self) -> Task:
        """The task that made this record (imports only the project's modules, which it
        makes importable)."""
        from .. import taskfile

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
        from ..reproduce import reproduce

        return reproduce([self], rtol=rtol, atol=atol, tag=tag)[0]

    def add_tag(self, *tags: str) -> None:
        self.edit(add_tags=tags)

    def remove_tag(self, *tags: str) -> None:
        self.edit(remove_tags=tags)

    def add_comment(self, text: str) -> None:
        self.edit(comment=text)

    def edit(self, *, add_tags: Iterable[str] = (), remove_tags: Iterable[str] = (),
             comment: str | None = None) -> None:
        """Add and remove tags and append a comment to the outcome, in one write."""
        self._row["tags"], self._row["outcome"] = provenance.edit_record(
            self.project, self.label, add_tags=tuple(add_tags),
            remove_tags=tuple(remove_tags), comment=comment)

    def summary(self) -> dict[str, Any]:
        """One flat row for tables: label, task, status, duration, reason, version."""
        return summary_of(self._row, self.project)

    def _repr_html_(self) -> str:
        from ..display import record_html

        return record_html(self)

    def __repr__(self) -> str:
        return f"<RecordView {self.label} {self.taskname} {self.status}>"


def _status_tag(tags: Iterable[str]) -> str:
    """The status a record's tags give (``_finished_`` → finished), '' if none."""
    for tag in tags:
        if tag[:1] == "_" and tag[-1:] == "_" and len(tag) > 2:
            return tag[1:-1]
    return ""


def summary_of(row: dict[str, Any], project: config.Project) -> dict[str, Any]:
    """:meth:`RecordView.summary` of a row, without a RecordView unless the row needs one
    (a running record, which may be lost; a task name not read with the row): listings
    make one per record."""
    status, task = _status_tag(row["tags"]), row.get("taskname")
    if status == "running" or task is None:
        record = RecordView(row, project)
        status, task = record.status, record.taskname
    return {"label": row["label"], "timestamp": row["timestamp"], "task": str(task),
            "status": status, "duration": row["duration"], "reason": row["reason"],
            "version": (row["version"] or "")[:10]}


def _without_reasons(desc: dict[str, Any]) -> dict[str, Any]:
    """A task description whose nested tasks have no reason."""
    from ..taskfile import is_description

    inputs = {name: {**_without_reasons(value), "reason": None} if is_description(value)
              else value for name, value in desc["inputs"].items()}
    return {**desc, "inputs": inputs}
