"""Imported by the worker pool's fork server, so that every worker starts with the
record path loaded and the installed packages looked up (a few hundred milliseconds per
worker otherwise). Workers record without Django (see .connection)."""

from .environment import find_providers

find_providers()
