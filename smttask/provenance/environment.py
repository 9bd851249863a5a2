"""What a record says about the process's environment: the installed distribution and
version of each imported package (read from the head of its metadata, once per process),
the project's own code at its commit, and the platform, as Sumatra's objects store them."""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import inspect
import os
import platform
import sys
from pathlib import Path

__all__ = [
    "Fields",
    "dependencies",
    "find_providers",
    "installed_version",
    "platform_fields",
    "provider",
]


def _headers(dist: importlib.metadata.Distribution) -> dict[str, str]:
    """The one-line fields (Name, Version…) of a distribution's metadata, read from its
    header only: the email parser importlib uses reads the whole file, long description
    included (milliseconds per distribution, in every process that records)."""
    text = dist.read_text("METADATA") or dist.read_text("PKG-INFO") or ""
    fields: dict[str, str] = {}
    for line in text.partition("\n\n")[0].splitlines():
        key, sep, value = line.partition(": ")
        if sep and not line[0].isspace():
            fields.setdefault(key, value.strip())
    return fields


@functools.cache
def _metadata_dirs() -> tuple[Path, ...]:
    """The installed distributions' metadata folders, in import-path order."""
    found = []
    for entry in sys.path:
        with contextlib.suppress(OSError), os.scandir(entry or ".") as it:
            found += sorted(Path(e.path) for e in it
                            if e.name.endswith((".dist-info", ".egg-info")) and e.is_dir())
    return tuple(found)


def _installs(dist: importlib.metadata.Distribution, module: str) -> bool:
    """Whether ``dist`` installs the top-level ``module`` (by its top_level.txt, else by
    the first part of each path in its RECORD)."""
    names = (dist.read_text("top_level.txt") or "").split()
    if names:
        return module in names
    for line in (dist.read_text("RECORD") or "").splitlines():
        top, slash, _ = line.partition(",")[0].partition("/")
        if (top if slash else inspect.getmodulename(top)) == module:
            return True
    return False


def _owner(module: str) -> importlib.metadata.Distribution | None:
    """The installed distribution providing ``module`` when it is not named like it
    (``yaml``: PyYAML, ``git``: GitPython). Distributions whose name contains the
    module's are asked first, then the others in import-path order."""
    key = module.lower()
    dirs = sorted(_metadata_dirs(), key=lambda d: key not in d.name.lower())
    for folder in dirs:
        dist = importlib.metadata.PathDistribution(folder)
        if _installs(dist, module):
            return dist
    return None


@functools.cache
def provider(module: str) -> tuple[str, str]:
    """(distribution name, version) of the distribution providing a top-level module
    (``(module, "unknown")`` if none is found)."""
    dist: importlib.metadata.Distribution | None
    try:
        dist = importlib.metadata.distribution(module)
    except importlib.metadata.PackageNotFoundError:
        dist = _owner(module)
    if dist is None:
        return module, "unknown"
    fields = _headers(dist)
    if "Name" in fields and "Version" in fields:
        return fields["Name"], fields["Version"]
    return str(dist.metadata["Name"]), str(dist.version)


def installed_version(module: str) -> str:
    """The version installed now of the distribution providing ``module`` ('' if none):
    read afresh each call (:func:`provider` keeps what it found first)."""
    try:
        return importlib.metadata.version(provider(module)[0])
    except importlib.metadata.PackageNotFoundError:
        return ""


def _imported_packages() -> list[tuple[str, str]]:
    """(name, file) of each imported top-level module that is neither built in nor from
    the standard library, sorted."""
    found = []
    for name in sorted({m.partition(".")[0] for m in list(sys.modules)}):
        if name in sys.stdlib_module_names or name.startswith("_") or name == "__main__":
            continue
        path = getattr(sys.modules.get(name), "__file__", None)
        if path:
            found.append((name, path))
    return found


def find_providers() -> None:
    """Look up the distributions of the packages imported so far (a worker pool's fork
    server does it once for all its workers)."""
    for name, _ in _imported_packages():
        provider(name)


#: A row of a table Sumatra's records share (a dependency, the platform…): its fields.
Fields = dict[str, str | None]

_deps_cache: dict[tuple[int, str | None], list[Fields]] = {}


def dependencies(project_root: Path, commit: str | None) -> list[Fields]:
    """The imported top-level packages as Sumatra's Dependency rows (cached per process):
    the project's own code at its commit, the others at their installed versions."""
    key = (len(sys.modules), commit)
    if key in _deps_cache:
        return _deps_cache[key]
    deps = []
    root = str(project_root)
    for name, path in _imported_packages():
        if path.startswith(root) and commit:
            version, source = commit, "project"
        else:
            source, version = provider(name)
        location = os.path.dirname(path) if path.endswith("__init__.py") else path
        deps.append(_dependency(name[:50], location[-200:], version[:40], source))
    deps.append(_dependency("python", sys.executable[-200:], platform.python_version(),
                            platform.python_implementation().lower()))
    _deps_cache[key] = deps
    return deps


def _dependency(name: str, path: str, version: str, source: str) -> Fields:
    """What Sumatra's ``dependency_finder.python.Dependency(name, path, version, "",
    source)`` stores."""
    return {"name": name, "path": path, "version": version, "diff": "", "source": source,
            "module": "python"}


@functools.cache
def platform_fields() -> Fields:
    """What Sumatra's ``LaunchMode.get_platform_information()`` stores, without its
    network probe (smttask never looks the host's address up)."""
    bits, linkage = platform.architecture()
    return {"architecture_bits": bits, "architecture_linkage": linkage,
            "machine": platform.machine(), "network_name": platform.node(),
            "ip_addr": "127.0.0.1", "processor": platform.processor(),
            "release": platform.release(), "system_name": platform.system(),
            "version": platform.version()}
