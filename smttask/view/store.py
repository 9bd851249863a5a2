"""A view of many records: chained filters pushed down to the store, tables."""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from .. import config, provenance
from ..errors import UsageError
from ..provenance import Query
from .record import RecordView, summary_of
from .values import flatten_inputs, lookup, parse_condition, parse_when, summarize

if TYPE_CHECKING:
    from ..reproduce import Reproduction


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
                    if not op(lookup(record.inputs, name), value):
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
        from ..reproduce import reproduce

        return reproduce(self, rtol=rtol, atol=atol, tag=tag)

    def summaries(self) -> list[dict[str, Any]]:
        """:meth:`RecordView.summary` of every record: label, timestamp, task, status,
        duration, reason, version."""
        return [summary_of(row, self.project) for row in self._records]

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
        from ..display import records_html

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


