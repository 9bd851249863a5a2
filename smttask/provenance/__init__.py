"""Everything that touches Sumatra or Django: no other part of smttask imports them.

- :mod:`.store`: the store's boundary: the write lock, errors in one line, the SQLite file;
- :mod:`.projectfile`: ``.smt/project`` kept in step with smttask.toml;
- :mod:`.template`: new SQLite stores as copies of a cached empty one;
- :mod:`.binding`: Sumatra's Django store, bound once per process; migrations; ``smt``;
- :mod:`.connection`: smttask's own connection to a ready store (no Django);
- :mod:`.environment`: imported packages' versions and the platform, once per process;
- :mod:`.records`: building and saving records (start, finish, edit, delete);
- :mod:`.queries`: one query model, run straight on SQLite or through Django.

Sumatra and Django themselves are imported on first use, so importing this package is cheap.
"""

from .binding import bootstrap, run_smt_command, writing
from .connection import ensure_store
from .environment import installed_version, provider
from .projectfile import project_file_in_step
from .queries import (
    ROW_FIELDS,
    OutputKey,
    Query,
    count,
    labels,
    output_keys,
    output_paths,
    record_of_output,
    rows,
)
from .records import (
    RecordDetails,
    Recorder,
    Run,
    RunStart,
    delete_records,
    details,
    edit_record,
    get_record,
    recorder,
    script_arguments,
)
from .store import locked, safe_url

__all__ = [
    "ROW_FIELDS",
    "OutputKey",
    "Query",
    "RecordDetails",
    "Recorder",
    "Run",
    "RunStart",
    "bootstrap",
    "count",
    "delete_records",
    "details",
    "edit_record",
    "ensure_store",
    "get_record",
    "installed_version",
    "labels",
    "locked",
    "output_keys",
    "output_paths",
    "project_file_in_step",
    "provider",
    "record_of_output",
    "recorder",
    "rows",
    "run_smt_command",
    "safe_url",
    "script_arguments",
    "writing",
]
