"""The output datastore: the only package that knows where results live on disk.

- A result is written once at ``<output>/<TaskName>/<digest>_<name>.<ext>`` and never
  overwritten: a taken name gets ``_2``, ``_3``, … (see :mod:`smttask._fs`).
- ``<input>/<TaskName>/<digest>_<name>.<ext>`` is a relative symlink to the newest file.
  Lookup goes through these links only: deleting one invalidates a cached result.
- Array outputs go to binary ``.npy`` files; everything else to JSON.
- Each result file has a sidecar ``<file>.meta.json`` with its size, xxh3-128 and SHA-1
  checksums and the code that made it. A load verifies the checksum and the declared type;
  a file that fails is set aside (renamed ``…quarantined-<time>``, never deleted) and the
  task runs again.
- An iterative task's digest ends in ``__<param>_<step>``; its steps share the folder.
- Array *inputs* of records are stored once, by content, in ``<input>/.inputs/``.
- A separate output (:func:`smttask.typing.separate_outputs`) is one file per item,
  ``<digest>_<item name>.<ext>``, with item names computed from the task's inputs.

:class:`Datastore` holds the two roots; :class:`ResultRef` is one task's result in it
(its links, files, versions and steps; load, write, link).

Modules: :mod:`.reading` (a file read and checksummed in one pass), :mod:`.files` (one
result file: encoding, sidecar, verification) and :mod:`.datastore` (the layout:
:class:`Datastore`, :class:`ResultRef`).
"""

from __future__ import annotations

from .datastore import Datastore, ResultRef, item_names, output_of
from .files import (
    BLOBS,
    SIDECAR,
    CorruptResult,
    Loaded,
    OutputSpec,
    Written,
    add_sidecar,
    check_file,
    checksums,
    npy_bytes,
    npy_from_buffer,
    quarantine,
    read_sidecar,
    read_verified,
    type_adapter,
)

__all__ = [
    "BLOBS",
    "SIDECAR",
    "CorruptResult",
    "Datastore",
    "Loaded",
    "OutputSpec",
    "ResultRef",
    "Written",
    "add_sidecar",
    "check_file",
    "checksums",
    "item_names",
    "npy_bytes",
    "npy_from_buffer",
    "output_of",
    "quarantine",
    "read_sidecar",
    "read_verified",
    "type_adapter",
]
