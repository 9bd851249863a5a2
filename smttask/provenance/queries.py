"""Reading records: one query model, run by two engines that must agree.

A :class:`Query` (time range, tags, labels, task names, statuses, limit) is answered with
record *rows* (dicts of :data:`ROW_FIELDS`, and ``taskname`` if asked), newest first,
without building Sumatra Record objects. An existing SQLite store that follows
smttask.toml is read directly (read-only, no Django: a listing costs milliseconds), and so
is a ready PostgreSQL store when psycopg2 is installed; any other store goes through
Django's ORM. The test suite runs the same queries through each and compares the rows.

The other reads (labels, counts, a record's data keys, the record of an output file) are
plain SQL, run on the same direct connections or on Django's (see
``connection.reading_sql``); tests compare them with what Sumatra's ORM says.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, NamedTuple

from ..config import Project
from ..errors import RecordStoreError
from ..outputs import Datastore
from .binding import bootstrap, record_manager
from .connection import postgres_reader, reading_sql, sqlite_store
from .records import RECORD_FORMAT, is_record_form, status_tag
from .store import read_only, translated
from .writer import Sql

__all__ = ["ROW_FIELDS", "OutputKey", "Query", "count", "labels", "output_keys",
           "output_paths", "record_of_output", "rows"]

#: The columns of a record row, as returned by :func:`rows`.
ROW_FIELDS = ("label", "timestamp", "tags", "reason", "duration", "outcome", "main_file",
              "version", "script_arguments", "user", "parameters__content")

STATUSES = ("running", "finished", "crashed", "killed")


@dataclass(frozen=True)
class Query:
    """Which records: every condition given must hold (``tasks`` and ``statuses``: any
    of them). Tags match exactly; a record's task name is one of its tags."""

    since: datetime | None = None
    until: datetime | None = None
    tags: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    label_prefix: str | None = None
    tasks: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    limit: int | None = None
    #: Read each row's task name (``taskname``) with it, in the database where it can
    #: (for listings: parsing every record's parameters in Python costs seconds).
    tasknames: bool = False
    #: Read each row's parameters (``parameters__content``); listings that show no
    #: inputs leave them in the database (a RecordView reads them when asked).
    parameters: bool = True

    @property
    def pushed_tags(self) -> tuple[str, ...]:
        """Tags every row must carry, narrowing the database query (exact match later)."""
        tags = list(self.tags)
        if len(self.tasks) == 1:
            tags.append(self.tasks[0])
        if len(self.statuses) == 1:
            tags.append(status_tag(self.statuses[0]))
        return tuple(tags)

    @property
    def all_pushed(self) -> bool:
        """True if :attr:`pushed_tags` say all that :meth:`keeps` checks (one task and one
        status at most): a reader matching them exactly needs no check in Python."""
        return len(self.tasks) <= 1 and len(self.statuses) <= 1

    def keeps(self, tags: set[str]) -> bool:
        """The exact test on a row's tags (the database only narrowed by substrings)."""
        if not all(t in tags for t in self.tags):
            return False
        if self.tasks and not any(t in tags for t in self.tasks):
            return False
        return not self.statuses or any(status_tag(s) in tags for s in self.statuses)


def rows(project: Project, query: Query | None = None, *,
         engine: Literal["auto", "sqlite", "postgres", "django"] = "auto"
         ) -> list[dict[str, Any]]:
    """Record rows matching ``query`` (``tags`` as a set), newest first.

    ``engine`` picks the reader: a direct one (SQLite, or PostgreSQL through psycopg2)
    when the store allows it (auto), or one explicitly (the tests check that each direct
    reader returns the rows Django's ORM does).
    """
    query = query or Query()
    path = sqlite_store(project) if engine in ("auto", "sqlite") else None
    conn = postgres_reader(project) if engine in ("auto", "postgres") and not path else None
    if engine in ("sqlite", "postgres") and path is None and conn is None:
        raise RecordStoreError(f"the record store cannot be read directly as {engine} (not "
                               "an existing store in step with smttask.toml, or no psycopg2)")
    if path is not None:
        found = _sqlite_rows(path, project.name, query)
    elif conn is not None:
        found = _postgres_rows(conn, project.name, query)
    else:
        found = _django_rows(project, query)
    result: list[dict[str, Any]] = []
    if query.limit == 0:
        return result
    check = bool(query.tags or query.tasks or query.statuses)
    if (path is not None or conn is not None) and query.all_pushed:  # tags matched exactly
        check = False
    for row in found:
        row["tags"] = {t for t in (row["tags"] or "").split(",") if t}
        # No task name from the ORM, or from text SQLite's JSON cannot read (NaN); without
        # the parameters in the row, a RecordView reads them when asked.
        if query.tasknames and row.get("taskname") is None and "parameters__content" in row:
            row["taskname"] = _taskname(row["parameters__content"])
        if not check or query.keeps(row["tags"]):
            result.append(row)
            if query.limit is not None and len(result) >= query.limit:
                break
    return result


def _taskname(content: str | None) -> str:
    """The task name in a record's parameters (either record format; '' if none)."""
    try:
        params = json.loads(content or "")
    except ValueError:
        return ""
    if is_record_form(params):
        return str(params["_smttask"].get("task", ""))
    return str(params.get("taskname", "")) if isinstance(params, dict) else ""


#: :func:`_taskname` in SQL (parameter: RECORD_FORMAT), so that listings need not parse
#: every record's parameters in Python; NULL for text SQLite's JSON cannot read (NaN).
_TASKNAME_SQL = (
    "CASE WHEN json_valid(p.content) THEN CASE WHEN json_type(p.content) = 'object' THEN "
    "CASE WHEN json_type(p.content, '$._smttask') = 'object' AND "
    "json_extract(p.content, '$._smttask.format') = %s "
    "THEN ifnull(json_extract(p.content, '$._smttask.task'), '') "
    "ELSE ifnull(json_extract(p.content, '$.taskname'), '') END ELSE '' END END")


def _django_rows(project: Project, query: Query) -> Iterable[dict[str, Any]]:
    store = bootstrap(project)
    with translated("cannot read the record store"):
        qs = record_manager(store).filter(project__id=project.name)
        if query.since is not None:
            qs = qs.filter(timestamp__gte=query.since)
        if query.until is not None:
            qs = qs.filter(timestamp__lt=query.until)
        if query.labels:
            qs = qs.filter(label__in=query.labels)
        if query.label_prefix:
            qs = qs.filter(label__startswith=query.label_prefix)
        for tag in query.pushed_tags:
            qs = qs.filter(tags__contains=tag)  # substring: refined by Query.keeps
        qs = qs.order_by("-timestamp", "-label").values(*ROW_FIELDS)
        yield from qs.iterator(chunk_size=2000)


def _select(project_name: str, query: Query, sqlite: bool
            ) -> tuple[str, list[Any], tuple[str, ...]]:
    """The rows' SELECT on Sumatra's schema (``%s`` placeholders), its arguments and the
    names of its columns. SQLite compares times as Django stores them (naive UTC text)
    and reads each task name with its JSON functions."""

    def time(t: datetime) -> Any:
        return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f") if sqlite else t

    where = ["r.project_id = %s"]
    args: list[Any] = [project_name]
    if query.since is not None:
        where.append("r.timestamp >= %s")
        args.append(time(query.since))
    if query.until is not None:
        where.append("r.timestamp < %s")
        args.append(time(query.until))
    if query.labels:
        where.append(f"r.label IN ({','.join(['%s'] * len(query.labels))})")
        args.extend(query.labels)
    if query.label_prefix:
        where.append("substr(r.label, 1, %s) = %s")
        args.extend([len(query.label_prefix), query.label_prefix])
    for tag in query.pushed_tags:  # exact: the tags column is "a,b,c"
        where.append("strpos(',' || r.tags || ',', %s) > 0" if not sqlite
                     else "instr(',' || r.tags || ',', %s) > 0")
        args.append(f",{tag},")
    fields: tuple[str, ...] = tuple(
        f for f in ROW_FIELDS if query.parameters or f != "parameters__content")
    columns = ", ".join(f"r.{c}" if c != "parameters__content" else "p.content"
                        for c in fields)
    if query.tasknames and sqlite:
        columns += f", {_TASKNAME_SQL}"
        args.insert(0, RECORD_FORMAT)
        fields += ("taskname",)
    return (f"SELECT {columns} FROM django_store_record r JOIN django_store_parameterset p "
            f"ON p.id = r.parameters_id WHERE {' AND '.join(where)} "
            "ORDER BY r.timestamp DESC, r.label DESC"), args, fields


def _sqlite_rows(path: Path, project_name: str, query: Query) -> Iterable[dict[str, Any]]:
    """Rows read straight from Sumatra's Django/SQLite schema (read-only)."""
    with translated("cannot read the record store"), contextlib.closing(read_only(path)) as db:
        yield from _direct_rows(Sql(db.cursor(), qmark=True, one_trip=False), project_name,
                                query)


def _postgres_rows(conn: Any, project_name: str, query: Query) -> Iterable[dict[str, Any]]:
    """Rows read straight from Sumatra's Django/PostgreSQL schema (psycopg2, no Django)."""
    with translated("cannot read the record store"), contextlib.closing(conn.cursor()) as cur:
        yield from _direct_rows(Sql(cur, qmark=False, one_trip=False), project_name, query)


def _direct_rows(sql: Sql, project_name: str, query: Query) -> Iterable[dict[str, Any]]:
    """The rows of :func:`_select`, with times in UTC as Django gives them."""
    text, args, fields = _select(project_name, query, sqlite=sql.qmark)
    sql.execute(text, args)
    while batch := sql.cursor.fetchmany(2000):
        for values in batch:
            row = dict(zip(fields, values, strict=True))
            if sql.qmark:  # SQLite: naive UTC text, task names read by its JSON functions
                if row.get("taskname") is not None:
                    row["taskname"] = str(row["taskname"])
                row["timestamp"] = datetime.fromisoformat(f"{row['timestamp']}+00:00")
            else:
                row["timestamp"] = row["timestamp"].astimezone(UTC)
            yield row


def labels(project: Project) -> list[str]:
    """Every record label of the project, oldest first."""
    with translated("cannot read the record store"), reading_sql(project) as sql:
        return [label for (label,) in sql.all(
            "SELECT label FROM django_store_record WHERE project_id = %s "
            "ORDER BY timestamp, db_id", [project.name])]


def count(project: Project) -> int:
    """The number of records of the project."""
    with translated("cannot read the record store"), reading_sql(project) as sql:
        return int(sql.one("SELECT count(*) FROM django_store_record WHERE project_id = %s",
                           [project.name])[0])


#: A record's output data keys (``k``) and its row (``r``).
_OUTPUTS = ("FROM django_store_datakey k JOIN django_store_record r "
            "ON r.db_id = k.output_from_record_id WHERE r.project_id = %s")
#: A record's input data keys (``k``) and its row (``r``).
_INPUTS = ("FROM django_store_record r JOIN django_store_record_input_data i "
           "ON i.record_id = r.db_id JOIN django_store_datakey k ON k.id = i.datakey_id "
           "WHERE r.project_id = %s")


def output_paths(project: Project, labels: list[str], *, output: bool = True
                 ) -> dict[str, list[str]]:
    """The data-key paths (relative to the datastore) of each record's outputs or inputs."""
    result: dict[str, list[str]] = {label: [] for label in labels}
    with translated("cannot read the record store"), reading_sql(project) as sql:
        for i in range(0, len(labels), 500):
            chunk = labels[i:i + 500]
            marks = ", ".join(["%s"] * len(chunk))
            for label, path in sql.all(
                    f"SELECT r.label, k.path {_OUTPUTS if output else _INPUTS} "
                    f"AND r.label IN ({marks}) ORDER BY k.id", [project.name, *chunk]):
                if path:
                    result[label].append(path)
    return result


class OutputKey(NamedTuple):
    """A record's output file as the record has it: where, and its checksums."""

    path: str
    sha1: str
    xxh3: str | None  # None in records written before smttask recorded it


def output_keys(project: Project) -> dict[str, list[OutputKey]]:
    """Every record's output data keys with their checksums, in one query: label → keys."""
    result: dict[str, list[OutputKey]] = {}
    with translated("cannot read the record store"), reading_sql(project) as sql:
        sql.execute(f"SELECT r.label, k.path, k.digest, k.metadata {_OUTPUTS} ORDER BY k.id",
                    [project.name])
        while batch := sql.cursor.fetchmany(5000):
            for label, path, digest, metadata in batch:
                result.setdefault(label, []).append(
                    OutputKey(path, digest, _recorded_xxh3(metadata)))
    return result


def _recorded_xxh3(metadata: str | None) -> str | None:
    if not metadata or '"xxh3"' not in metadata:  # older keys: no parsing
        return None
    try:
        value = json.loads(metadata).get("xxh3")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def record_of_output(project: Project, path: Path) -> str | None:
    """The label of the record that wrote ``path`` (a file in the output datastore)."""
    keys = [Datastore.of(project).data_key(path),  # records of smttask-record/1 on
            os.path.relpath(path, project.output_dir)]  # older records
    with translated("cannot read the record store"), reading_sql(project) as sql:
        row = sql.one(f"SELECT r.label {_OUTPUTS} AND k.path IN (%s, %s) ORDER BY k.id "
                      "LIMIT 1", [project.name, *keys])
    return None if row is None else str(row[0])
