"""Everything that touches Sumatra or Django: no other part of smttask imports them.

- :mod:`.store`: binding a record store, locks, migrations, ``.smt/project`` sync;
- :mod:`.records`: building and saving records (start, finish, edit, delete);
- :mod:`.queries`: one query model, run straight on SQLite or through Django.

Sumatra and Django themselves are imported on first use, so importing this package is cheap.
"""

from .queries import (
    ROW_FIELDS,
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
    installed_version,
    provider,
    recorder,
    script_arguments,
)
from .store import (
    bootstrap,
    ensure_store,
    locked,
    project_file_in_step,
    run_smt_command,
    safe_url,
    writing,
)

__all__ = [
    "ROW_FIELDS",
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
