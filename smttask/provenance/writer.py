"""Writing records straight into Sumatra's schema: a few SQL statements per save.

Sumatra's own ``save()`` makes about 40 ORM round trips per record. Here, the rows every
record of a process shares (project, executable, repository, launch mode, datastores,
dependencies, platform, tags) are resolved once with Sumatra's own get-or-create (so they
are exactly the rows Sumatra would use), and each record then costs one short
transaction of plain SQL. The result is indistinguishable from Sumatra's: ``smt list``,
``smt view``, smtweb and Sumatra's ORM read and edit these records as their own.

Two additions to the database, both invisible to Sumatra: indexes on record labels and
data-key paths, and a table mapping a hash of each parameter set's text to its row, so
that a parameter set is stored once (as Sumatra's get-or-create expects) without
comparing texts.
"""

from __future__ import annotations

import json
import mimetypes
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import xxhash

__all__ = ["SCHEMA", "SqlWriter", "ensure_schema", "schema_version"]

#: The version of smttask's additions to Sumatra's database (see ensure_schema).
SCHEMA = 1

_RECORD_COLUMNS = ("label", "reason", "duration", "main_file", "version", "outcome",
                   "timestamp", "tags", "diff", "user", "script_arguments", "stdout_stderr",
                   "repeats", "datastore_id", "executable_id", "input_datastore_id",
                   "launch_mode_id", "parameters_id", "project_id", "repository_id")


def _q(name: str) -> str:
    from django.db import connections

    return str(connections["default"].ops.quote_name(name))


def schema_version() -> int:
    """The version of smttask's additions in the bound database (0: none yet)."""
    from django.db import connections

    conn = connections["default"]
    if "smttask_meta" not in conn.introspection.table_names():
        return 0
    with conn.cursor() as cur:
        cur.execute("SELECT value FROM smttask_meta WHERE name = 'schema'")
        row = cur.fetchone()
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


class SqlWriter:
    """Writes the records of one project through Django's default connection."""

    def __init__(self, project_name: str) -> None:
        self.project = project_name
        self._ids: dict[tuple[str, Any], int] = {}
        self._content_type: int | None = None

    # --- shared rows, resolved once per process ---------------------------------------------

    def forget(self) -> None:
        """Drop the remembered rows (after a failed transaction they may not exist)."""
        self._ids.clear()
        self._content_type = None

    def shared_id(self, model: str, obj: Any) -> int:
        """The row of a Sumatra object (executable, dependency…), made like Sumatra makes it."""
        from sumatra.recordstore.django_store import models

        cls = getattr(models, model)
        key = (model, _identity(cls, obj))
        if key not in self._ids:
            row, _ = cls.objects.get_or_create_from_sumatra_object(obj, using="default")
            self._ids[key] = row.pk
        return self._ids[key]

    def _project_id(self) -> str:
        from sumatra.recordstore.django_store import models

        if ("Project", self.project) not in self._ids:
            models.Project.objects.using("default").get_or_create(id=self.project)
            self._ids[("Project", self.project)] = 0
        return self.project

    def _tag_id(self, name: str) -> int:
        from sumatra.recordstore.django_store.tagging import Tag

        key = ("Tag", name)
        if key not in self._ids:
            self._ids[key] = Tag.objects.using("default").get_or_create(name=name)[0].pk
        return self._ids[key]

    def _record_type(self) -> int:
        if self._content_type is None:
            from django.contrib.contenttypes.models import ContentType
            from sumatra.recordstore.django_store import models

            self._content_type = ContentType.objects.get_for_model(models.Record).pk
        return self._content_type

    # --- one record ---------------------------------------------------------------------------

    def insert(self, cur: Any, fields: dict[str, Any], tags: set[str], parameters: str,
               inputs: Iterable[DataKeyRow]) -> StoredRecord:
        """Insert a new record (its label made unique); its database identity."""
        from django.db import connections

        ops = connections["default"].ops
        base = label = fields["label"]
        n = 1
        while True:
            cur.execute("SELECT 1 FROM django_store_record WHERE project_id = %s AND label = %s",
                        [self._project_id(), label])
            if cur.fetchone() is None:
                break
            n += 1
            label = f"{base}_{n}"
        if fields.get("script_arguments") is None:  # a run from Python: rerun by its label
            fields = {**fields, "script_arguments": label}
        values = {**fields, "label": label, "tags": ",".join(sorted(tags)),
                  "timestamp": ops.adapt_datetimefield_value(fields["timestamp"]),
                  "parameters_id": self._parameterset(cur, parameters),
                  "project_id": self._project_id()}
        columns = ", ".join(_q(c) for c in _RECORD_COLUMNS)
        marks = ", ".join(["%s"] * len(_RECORD_COLUMNS))
        cur.execute(f"INSERT INTO django_store_record ({columns}) VALUES ({marks}) "
                    "RETURNING db_id", [values[c] for c in _RECORD_COLUMNS])
        db_id = cur.fetchone()[0]
        self._add_tags(cur, db_id, tags)
        keys = [self._datakey(cur, key) for key in inputs]
        cur.executemany("INSERT INTO django_store_record_input_data (record_id, datakey_id) "
                        "VALUES (%s, %s)", [(db_id, k) for k in dict.fromkeys(keys)])
        return StoredRecord(db_id, label, set(tags))

    def update(self, cur: Any, record: StoredRecord, fields: dict[str, Any], tags: set[str],
               outputs: Iterable[DataKeyRow], dependencies: list[int], platforms: list[int]
               ) -> None:
        """Complete a record: new fields and tags, its outputs, dependencies and platform."""
        sets = ", ".join(f"{_q(c)} = %s" for c in fields)
        cur.execute(f"UPDATE django_store_record SET {sets}, tags = %s WHERE db_id = %s",
                    [*fields.values(), ",".join(sorted(tags)), record.db_id])
        gone = record.tags - tags
        if gone:
            cur.executemany("DELETE FROM django_store_taggeditem WHERE object_id = %s AND "
                            "content_type_id = %s AND tag_id = %s",
                            [(record.db_id, self._record_type(), self._tag_id(t)) for t in gone])
        self._add_tags(cur, record.db_id, tags - record.tags)
        record.tags = set(tags)
        for key in outputs:
            cur.execute("INSERT INTO django_store_datakey (path, digest, creation, metadata, "
                        "output_from_record_id) VALUES (%s, %s, %s, %s, %s)",
                        [*key.values(), record.db_id])
        cur.executemany("INSERT INTO django_store_record_dependencies (record_id, dependency_id) "
                        "VALUES (%s, %s)", [(record.db_id, d) for d in dict.fromkeys(dependencies)])
        cur.executemany("INSERT INTO django_store_record_platforms "
                        "(record_id, platforminformation_id) VALUES (%s, %s)",
                        [(record.db_id, p) for p in dict.fromkeys(platforms)])

    def _add_tags(self, cur: Any, db_id: int, tags: Iterable[str]) -> None:
        cur.executemany("INSERT INTO django_store_taggeditem (object_id, content_type_id, tag_id) "
                        "VALUES (%s, %s, %s)",
                        [(db_id, self._record_type(), self._tag_id(t)) for t in sorted(tags)])

    def _parameterset(self, cur: Any, content: str) -> int:
        """The row of this parameter text: an existing one (Sumatra expects one row per
        text) or a new one."""
        self._index_new_parametersets(cur)
        digest = xxhash.xxh3_128_hexdigest(content.encode("utf-8", "surrogatepass"))
        cur.execute("SELECT parameterset_id FROM smttask_paramset WHERE hash = %s", [digest])
        row = cur.fetchone()
        if row is not None:
            return int(row[0])
        cur.execute("INSERT INTO django_store_parameterset (type, content) VALUES (%s, %s) "
                    "RETURNING id", ["JSONParameterSet", content])
        new = int(cur.fetchone()[0])
        cur.execute("INSERT INTO smttask_paramset (hash, parameterset_id) VALUES (%s, %s)",
                    [digest, new])
        self._set_indexed(cur, new)
        return new

    def _index_new_parametersets(self, cur: Any) -> None:
        """Hash the parameter sets that others (Sumatra's own commands) added since."""
        cur.execute("SELECT value FROM smttask_meta WHERE name = 'paramsets_indexed'")
        row = cur.fetchone()
        done = int(row[0]) if row else 0
        cur.execute("SELECT id, content FROM django_store_parameterset WHERE id > %s "
                    "ORDER BY id", [done])
        rows = cur.fetchall()
        for pk, content in rows:
            digest = xxhash.xxh3_128_hexdigest(content.encode("utf-8", "surrogatepass"))
            cur.execute("SELECT 1 FROM smttask_paramset WHERE hash = %s", [digest])
            if cur.fetchone() is None:
                cur.execute("INSERT INTO smttask_paramset (hash, parameterset_id) "
                            "VALUES (%s, %s)", [digest, pk])
        if rows:
            self._set_indexed(cur, int(rows[-1][0]))

    @staticmethod
    def _set_indexed(cur: Any, upto: int) -> None:
        cur.execute("DELETE FROM smttask_meta WHERE name = 'paramsets_indexed'")
        cur.execute("INSERT INTO smttask_meta (name, value) VALUES ('paramsets_indexed', %s)",
                    [upto])

    def _datakey(self, cur: Any, key: DataKeyRow) -> int:
        """The row of a data key: the existing one (a result recorded as another run's
        output, or a stored input used before) or a new one."""
        cur.execute("SELECT id FROM django_store_datakey WHERE path = %s AND digest = %s AND "
                    "creation = %s AND metadata = %s ORDER BY id LIMIT 1", key.values())
        row = cur.fetchone()
        if row is not None:
            return int(row[0])
        cur.execute("INSERT INTO django_store_datakey (path, digest, creation, metadata) "
                    "VALUES (%s, %s, %s, %s) RETURNING id", key.values())
        return int(cur.fetchone()[0])


@dataclass(frozen=True)
class DataKeyRow:
    """A file as Sumatra's DataKey describes it: path, SHA-1, creation time, metadata."""

    path: str
    sha1: str
    created: datetime
    size: int

    def values(self) -> list[Any]:
        from django.db import connections

        mimetype, encoding = mimetypes.guess_type(self.path)
        metadata = json.dumps({"encoding": encoding, "mimetype": mimetype, "size": self.size},
                              sort_keys=True)
        created = connections["default"].ops.adapt_datetimefield_value(
            self.created.replace(microsecond=0))
        return [self.path, self.sha1, created, metadata]


def _identity(cls: Any, obj: Any) -> Any:
    """What Sumatra's get-or-create compares for ``obj`` (a hashable key for the cache)."""
    state = obj.__getstate__() if hasattr(obj, "__getstate__") else None
    return (type(obj).__name__, repr(state), repr(getattr(obj, "__dict__", None)))
