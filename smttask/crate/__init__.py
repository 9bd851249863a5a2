"""Share recorded results as RO-Crates, and check a crate again from a fresh clone.

- :mod:`.export`: :func:`export_rocrate` writes a Provenance Run Crate of records;
- :mod:`.load`: :func:`reproduce_crate` reruns a crate's runs and compares.

Both need the ``rocrate`` package (``pip install 'smttask[rocrate]'``), imported on use.
"""

from __future__ import annotations

from typing import Any

from ..errors import UsageError
from .export import PROFILES, WFRUN_CONTEXT, export_rocrate
from .load import reproduce_crate

__all__ = ["PROFILES", "WFRUN_CONTEXT", "export_rocrate", "reproduce_crate", "rocrate"]


def rocrate() -> Any:
    """The ``rocrate`` package, or a UsageError saying how to install it."""
    try:
        import rocrate.rocrate
    except ImportError:
        raise UsageError("RO-Crates need the rocrate package: pip install 'smttask[rocrate]'") \
            from None
    return rocrate
