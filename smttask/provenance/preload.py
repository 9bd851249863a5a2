"""Imported by the worker pool's fork server, so that every worker starts with Sumatra and
Django loaded (they cost a few hundred milliseconds per process)."""

import importlib

from .store import sumatra

sumatra()
for _module in ("django.db", "sumatra.parameters", "sumatra.records",
                "sumatra.recordstore.django_store"):
    importlib.import_module(_module)
