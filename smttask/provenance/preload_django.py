"""Imported by the worker pool's fork server when the record store is reached through
Django (PostgreSQL): every worker starts with Sumatra and Django set up."""

import importlib

from .store import configure_django

configure_django()
for _module in ("sumatra.parameters", "sumatra.records"):
    importlib.import_module(_module)
