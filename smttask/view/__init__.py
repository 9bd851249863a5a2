"""Browse records from Python: filters, tables, and the tasks that made them.

``RecordStoreView()`` (alias ``RSView``) is every record of the current project, newest
first. Filters chain and return new views::

    rs = RecordStoreView()
    rs.filter.task("analyze").filter.after("2026-11-01").filter.params(ge={"nbins": 10})
    rs.latest.task.run()        # rebuild the task of the newest record

Rows come straight from the record store (one query, no Sumatra objects), so views of
many thousand records stay fast.

Modules: :mod:`.store` (RecordStoreView), :mod:`.record` (RecordView), :mod:`.values`
(input values as stored), :mod:`.lost` (lost runs).
"""

from __future__ import annotations

from .lost import lost_because
from .record import RecordView
from .store import RecordStoreView, RSView, find
from .values import (
    dtype_name,
    flatten_inputs,
    input_columns,
    is_array,
    nested_task,
    parse_condition,
    parse_when,
    summarize,
)

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

