"""Writing records straight into Sumatra's schema: a few SQL statements per save.

Sumatra's own ``save()`` makes about 40 ORM round trips per record. Here, the rows every
record of a process shares (project, executable, repository, launch mode, datastores,
dependencies, platform, tags) are found or made once per process, matched on the fields
Sumatra 0.8.1's get-or-create matches on (so they are exactly the rows Sumatra would use;
all of them text), and each record then costs one short transaction of plain SQL. No
Django or Sumatra import is needed. The result is indistinguishable from Sumatra's:
``smt list``, ``smt view``, smtweb and Sumatra's ORM read and edit these records as their
own.

Two additions to the database, both invisible to Sumatra: indexes on record labels and
data-key paths, and a table mapping a hash of each parameter set's text to its row, so
that a parameter set is stored once (as Sumatra's get-or-create expects) without
comparing texts.
"""

from __future__ import annotations

import functools
import json
import mimetypes
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import xxhash

__all__ = ["SCHEMA", "DataKeyRow", "Sql", "SqlWriter", "StoredRecord", "ensure_schema",
           "schema_version", "stored_schema"]

T = TypeVar("T")

#: The version of smttask's additions to Sumatra's database (see ensure_schema).
SCHEMA = 1

_RECORD_COLUMNS = ("label", "reason", "duration", "main_file", "version", "outcome",
                   "timestamp", "tags", "diff", "user", "script_arguments", "stdout_stderr",
                   "repeats", "datastore_id", "executable_id", "input_datastore_id",
                   "launch_mode_id", "parameters_id", "project_id", "repository_id")


def _q(name: str) -> str:
    """A quoted column name (the same on SQLite and PostgreSQL)."""
    return f'"{name}"'


_RECORD_INSERT = (f"INSERT INTO django_store_record ({', '.join(map(_q, _RECORD_COLUMNS))}) "
                  f"VALUES ({', '.join(['%s'] * len(_RECORD_COLUMNS))}) RETURNING db_id")


def schema_version() -> int:
    """The version of smttask's additions in the bound database (0: none yet)."""
    from django.db import connections

    conn = connections["default"]
    if "smttask_meta" not in conn.introspection.table_names():
        return 0
    with conn.cursor() as cur:
        return stored_schema(cur)


def stored_schema(cursor: Any) -> int:
    """The version of smttask's additions a store records, read through a DB-API cursor
    (0: none recorded); a database without smttask's table raises the driver's error."""
    cursor.execute("SELECT value FROM smttask_meta WHERE name = 'schema'")
    row = cursor.fetchone()
    return int(row[0]) if row else 0


def ensure_schema() -> None:
    """Create smttask's indexes and its parameter-set hash table (idempotent)."""
    from django.db import connections

    with connections["default"].cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS smttask_paramset "
                    "(hash CHAR(32) PRIMARY KEY, parameterset_id INTEGER NOT NULL)")
        cur.execute("CREATE TABLE IF NOT EXISTS smttask_meta "
                    "(name VARCHAR(50) PRIMARY KEY, value BIGINT NOT NULL)")
        cur.execute("CREATE INDEX IF NOT EXISTS smttask_record_label "
                    "ON django_store_record (project_id, label)")
        cur.execute("CREATE INDEX IF NOT EXISTS smttask_datakey_path "
                    "ON django_store_datakey (path)")
        cur.execute("CREATE INDEX IF NOT EXISTS smttask_record_time "
                    "ON django_store_record (project_id, timestamp, label)")
        cur.execute("DELETE FROM smttask_meta WHERE name = 'schema'")
        cur.execute("INSERT INTO smttask_meta (name, value) VALUES ('schema', %s)", [SCHEMA])


@dataclass
class StoredRecord:
    """The database identity of a record being written."""

    db_id: int
    label: str
    tags: set[str]


@functools.lru_cache(maxsize=256)
def _qmark(text: str) -> str:
    return text.replace("%s", "?")


class Sql:
    """Statements on a DB-API cursor of the record store, inside a transaction (see
    ``store.writing_sql``): ``%s`` placeholders, rewritten to ``?`` for SQLite.

    Where the driver takes several statements in one call (psycopg2: ``one_trip``), the
    statements whose results are not needed wait and travel with the next query, or with
    the transaction's end (:meth:`flush`): :meth:`first` (the transaction's opening) and
    :meth:`batch` (rows to add). Elsewhere each runs at once."""

    def __init__(self, cursor: Any, qmark: bool, one_trip: bool) -> None:
        self.cursor = cursor
        self.qmark = qmark  # SQLite
        self.one_trip = one_trip
        self._pending: list[Statement] = []

    def time(self, value: datetime) -> Any:
        """A timezone-aware time as Django stores it: naive UTC text on SQLite."""
        if self.qmark:
            return str(value.astimezone(UTC).replace(tzinfo=None))
        return value

    def first(self, text: str, params: Sequence[Any] = ()) -> None:
        """Run a statement whose result is not needed before any other."""
        self.batch([(text, list(params))])

    def batch(self, statements: list[Statement]) -> None:
        """Run statements whose results are not needed, in order."""
        self._pending += statements
        if not self.one_trip:
            self.flush()

    def flush(self) -> None:
        """Send the statements still waiting (in one call where the driver allows it)."""
        pending, self._pending = self._pending, []
        if self.one_trip and pending:
            pending = [(";\n".join(t for t, _ in pending), [p for _, ps in pending for p in ps])]
        for text, params in pending:
            self.cursor.execute(_qmark(text) if self.qmark else text, params)

    def execute(self, text: str, params: Sequence[Any] = ()) -> None:
        if self._pending:  # one_trip: they go first, in the same call
            pending, self._pending = self._pending, []
            text = ";\n".join([*(t for t, _ in pending), text])
            params = [p for _, ps in pending for p in ps] + list(params)
        self.cursor.execute(_qmark(text) if self.qmark else text, params)

    def one(self, text: str, params: Sequence[Any] = ()) -> Any:
        """The first row of a query (None if it has none)."""
        self.execute(text, params)
        return self.cursor.fetchone()

    def all(self, text: str, params: Sequence[Any] = ()) -> list[Any]:
        self.execute(text, params)
        return list(self.cursor.fetchall())


#: A statement and its parameters.
Statement = tuple[str, list[Any]]

#: Rows per multi-row INSERT (SQLite allows 32,766 parameters per statement).
_CHUNK = 500


def _inserts(table: str, columns: str, rows: Iterable[tuple[Any, ...]]) -> list[Statement]:
    """Multi-row INSERTs of ``rows`` (no duplicates, order kept) into ``table``."""
    unique = list(dict.fromkeys(rows))
    if not unique:
        return []
    mark = "(" + ", ".join(["%s"] * len(unique[0])) + ")"
    return [(f"INSERT INTO {table} ({columns}) VALUES "
             + ", ".join([mark] * len(unique[i:i + _CHUNK])),
             [v for row in unique[i:i + _CHUNK] for v in row])
            for i in range(0, len(unique), _CHUNK)]


def _mark_indexed(upto: int) -> Statement:
    return ("INSERT INTO smttask_meta (name, value) VALUES ('paramsets_indexed', %s) "
            "ON CONFLICT (name) DO UPDATE SET value = excluded.value", [upto])


class SqlWriter:
    """Writes the records of one project through Django's default connection."""

    def __init__(self, project_name: str) -> None:
        self.project = project_name
        self._ids: dict[Hashable, Any] = {}

    # --- shared rows, resolved once per process ---------------------------------------------

    def forget(self) -> None:
        """Drop the remembered rows (after a failed transaction they may not exist)."""
        self._ids.clear()

    def remember(self, key: Hashable, compute: Callable[[], T]) -> T:
        """``compute()``, made once until :meth:`forget` (rows every record shares)."""
        if key not in self._ids:
            self._ids[key] = compute()
        return self._ids[key]

    def shared_id(self, sql: Sql, table: str, fields: dict[str, str | None]) -> int:
        """The row of ``django_store_<table>`` (executable, dependency…) with these field
        values, found or made as Sumatra's get_or_create_from_sumatra_object would."""
        key = (table, *fields.items())
        return self.remember(key, lambda: int(_row_id(sql, table, fields)))

    def _project_id(self, sql: Sql) -> str:
        self.remember(("project", self.project), lambda: _row_id(
            sql, "project", {"id": self.project}, {"name": "", "description": ""}))
        return self.project

    def _tag_id(self, sql: Sql, name: str) -> int:
        return self.shared_id(sql, "tag", {"name": name})

    def _record_type(self, sql: Sql) -> int:
        """The content type of Sumatra's Record (what its tag rows point at)."""
        return self.remember("content type", lambda: int(sql.one(
            "SELECT id FROM django_content_type WHERE app_label = 'django_store' AND "
            "model = 'record'")[0]))

    # --- one record ---------------------------------------------------------------------------

    def insert(self, sql: Sql, fields: dict[str, Any], tags: set[str], parameters: str,
               inputs: Iterable[DataKeyRow]) -> StoredRecord:
        """Insert a new record (its label made unique); its database identity."""
        project = self._project_id(sql)
        digest = xxhash.xxh3_128_hexdigest(parameters.encode("utf-8", "surrogatepass"))
        base = fields["label"]
        # One query: is the label free, which parameter sets are hashed, is this one.
        taken, indexed, newest, paramset = sql.one(
            "SELECT (SELECT 1 FROM django_store_record WHERE project_id = %s AND label = %s), "
            "(SELECT value FROM smttask_meta WHERE name = 'paramsets_indexed'), "
            "(SELECT max(id) FROM django_store_parameterset), "
            "(SELECT parameterset_id FROM smttask_paramset WHERE hash = %s)",
            [project, base, digest])
        label = self._free_label(sql, base) if taken else base
        if newest is not None and newest > (indexed or 0):  # added by Sumatra's own commands
            self._index_parametersets(sql, int(indexed or 0))
            row = sql.one("SELECT parameterset_id FROM smttask_paramset WHERE hash = %s",
                          [digest])
            paramset = row[0] if row else None
        later: list[Statement] = []
        if paramset is None:
            paramset = sql.one("INSERT INTO django_store_parameterset (type, content) "
                               "VALUES (%s, %s) RETURNING id", ["JSONParameterSet", parameters])[0]
            later += [("INSERT INTO smttask_paramset (hash, parameterset_id) VALUES (%s, %s)",
                       [digest, paramset]), _mark_indexed(paramset)]
        if fields.get("script_arguments") is None:  # a run from Python: rerun by its label
            fields = {**fields, "script_arguments": label}
        values = {**fields, "label": label, "tags": ",".join(sorted(tags)),
                  "timestamp": sql.time(fields["timestamp"]),
                  "parameters_id": paramset, "project_id": project}
        db_id = sql.one(_RECORD_INSERT, [values[c] for c in _RECORD_COLUMNS])[0]
        later += self._tag_rows(sql, db_id, tags)
        keys = [self._datakey(sql, key) for key in inputs]
        later += _inserts("django_store_record_input_data", "record_id, datakey_id",
                          [(db_id, k) for k in keys])
        sql.batch(later)
        return StoredRecord(db_id, label, set(tags))

    def _free_label(self, sql: Sql, base: str) -> str:
        n = 2
        while sql.one("SELECT 1 FROM django_store_record WHERE project_id = %s AND label = %s",
                      [self.project, f"{base}_{n}"]) is not None:
            n += 1
        return f"{base}_{n}"

    def update(self, sql: Sql, record: StoredRecord, fields: dict[str, Any], tags: set[str],
               outputs: Iterable[DataKeyRow], dependencies: list[int], platforms: list[int]
               ) -> None:
        """Complete a record: new fields and tags, its outputs, dependencies and platform."""
        sets = ", ".join(f"{_q(c)} = %s" for c in fields)
        statements: list[Statement] = [
            (f"UPDATE django_store_record SET {sets}, tags = %s WHERE db_id = %s",
             [*fields.values(), ",".join(sorted(tags)), record.db_id])]
        gone = sorted(record.tags - tags)
        if gone:
            statements.append((
                "DELETE FROM django_store_taggeditem WHERE object_id = %s AND content_type_id "
                f"= %s AND tag_id IN ({', '.join(['%s'] * len(gone))})",
                [record.db_id, self._record_type(sql), *(self._tag_id(sql, t) for t in gone)]))
        statements += self._tag_rows(sql, record.db_id, tags - record.tags)
        statements += _inserts("django_store_datakey",
                               "path, digest, creation, metadata, output_from_record_id",
                               [(*key.values(sql), record.db_id) for key in outputs])
        statements += _inserts("django_store_record_dependencies", "record_id, dependency_id",
                               [(record.db_id, d) for d in dependencies])
        statements += _inserts("django_store_record_platforms",
                               "record_id, platforminformation_id",
                               [(record.db_id, p) for p in platforms])
        sql.batch(statements)
        record.tags = set(tags)

    def stored(self, sql: Sql, db_id: int, label: str) -> StoredRecord:
        """The identity of an existing record, with the tags its tag rows give it."""
        rows = sql.all("SELECT t.name FROM django_store_taggeditem i JOIN django_store_tag t "
                       "ON t.id = i.tag_id WHERE i.object_id = %s AND i.content_type_id = %s",
                       [db_id, self._record_type(sql)])
        return StoredRecord(db_id, label, {name for (name,) in rows})

    def _tag_rows(self, sql: Sql, db_id: int, tags: Iterable[str]) -> list[Statement]:
        return _inserts("django_store_taggeditem", "object_id, content_type_id, tag_id",
                        [(db_id, self._record_type(sql), self._tag_id(sql, t))
                         for t in sorted(tags)])

    @staticmethod
    def _index_parametersets(sql: Sql, done: int) -> None:
        """Hash the parameter sets that others (Sumatra's own commands) added since."""
        rows = sql.all("SELECT id, content FROM django_store_parameterset WHERE id > %s "
                       "ORDER BY id", [done])
        hashes = [(xxhash.xxh3_128_hexdigest(content.encode("utf-8", "surrogatepass")), pk)
                  for pk, content in rows]
        statements = [(text + " ON CONFLICT (hash) DO NOTHING", params) for text, params
                      in _inserts("smttask_paramset", "hash, parameterset_id", hashes)]
        sql.batch([*statements, _mark_indexed(int(rows[-1][0]))] if rows else statements)

    @staticmethod
    def _datakey(sql: Sql, key: DataKeyRow) -> int:
        """The row of a data key: the existing one (a result recorded as another run's
        output, or a stored input used before) or a new one."""
        values = key.values(sql)
        row = sql.one("SELECT id FROM django_store_datakey WHERE path = %s AND digest = %s AND "
                      "creation = %s AND metadata = %s ORDER BY id LIMIT 1", values)
        if row is not None:
            return int(row[0])
        return int(sql.one("INSERT INTO django_store_datakey (path, digest, creation, metadata) "
                           "VALUES (%s, %s, %s, %s) RETURNING id", values)[0])


@dataclass(frozen=True)
class DataKeyRow:
    """A file as Sumatra's DataKey describes it: path, SHA-1, creation time, metadata
    (size, type and, when known, the xxh3-128 that loads check)."""

    path: str
    sha1: str
    created: datetime
    size: int
    xxh3: str | None = None

    def values(self, sql: Sql) -> list[Any]:
        mimetype, encoding = mimetypes.guess_type(self.path)
        fields = {"encoding": encoding, "mimetype": mimetype, "size": self.size}
        if self.xxh3 is not None:
            fields["xxh3"] = self.xxh3
        metadata = json.dumps(fields, sort_keys=True)
        return [self.path, self.sha1, sql.time(self.created.replace(microsecond=0)), metadata]


def _row_id(sql: Sql, table: str, match: dict[str, Any],
            defaults: dict[str, Any] | None = None) -> Any:
    """The id of the first row of ``django_store_<table>`` whose fields equal ``match``; a
    new row (with ``defaults`` too) if there is none. Django's get_or_create in two plain
    statements (the caller holds the store's lock)."""
    where = " AND ".join(f"{_q(c)} IS NULL" if v is None else f"{_q(c)} = %s"
                         for c, v in match.items())
    row = sql.one(f"SELECT id FROM django_store_{table} WHERE {where} ORDER BY id LIMIT 1",
                  [v for v in match.values() if v is not None])
    if row is None:
        values = {**match, **(defaults or {})}
        row = sql.one(f"INSERT INTO django_store_{table} ({', '.join(map(_q, values))}) "
                      f"VALUES ({', '.join(['%s'] * len(values))}) RETURNING id",
                      list(values.values()))
    return row[0]
