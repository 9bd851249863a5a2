"""Imported by the worker pool's fork server, so that every worker starts with Sumatra and
Django loaded and set up, and the installed packages looked up (a few hundred
milliseconds per worker otherwise)."""

import importlib

from .records import find_providers
from .store import configure_django

configure_django()
for _module in ("sumatra.parameters", "sumatra.records"):
    importlib.import_module(_module)
find_providers()
