"""JSON task files: a self-contained description of one task, and how to load it.

Format (``"smttask": "taskdesc/1"``)::

    {"smttask": "taskdesc/1", "taskname": "analyze", "module": "proj.tasks",
     "inputs": {"arr": {"dtype": "<f8", "shape": [3], "npy": "k05VTVBZ..."}, "dt": 0.1,
                "nbins": 2},
     "reason": "first sweep", "digest": "3f0c..."}

Nested tasks appear inline as descriptions of the same shape; arrays as base64 ``.npy``.
Loading validates everything and names the file and the field on failure, in one line,
whatever the file holds (limits: :data:`MAX_BYTES`, :data:`MAX_DEPTH`). A task file can
only import a module of the project's own packages (made importable first, whether the
project is installed or not; never a top-level script such as ``run.py``, never a
``__main__``) or of a package allowed explicitly (``--import``). The project is the one
given, else the one holding the task file, else the active or working directory's one.

Modules: :mod:`.files` (task files) and :mod:`.in_records` (a task as a record's
parameters).
"""

from __future__ import annotations

from ..provenance.records import RECORD_FORMAT, is_record_form
from .files import (
    FORMAT,
    MAX_BYTES,
    MAX_DEPTH,
    SUFFIX,
    check_imports,
    collect,
    describe,
    describe_json,
    is_description,
    load,
    save,
)
from .in_records import INLINE_VALUES, load_record_form, record_form, record_inputs

__all__ = [
    "FORMAT",
    "INLINE_VALUES",
    "MAX_BYTES",
    "MAX_DEPTH",
    "RECORD_FORMAT",
    "SUFFIX",
    "check_imports",
    "collect",
    "describe",
    "describe_json",
    "is_description",
    "is_record_form",
    "load",
    "load_record_form",
    "record_form",
    "record_inputs",
    "save",
]
