"""The output datastore: where results are written, linked and found again.

- A result is written once at ``<output>/<TaskName>/<digest>_<name>.<ext>`` and never
  overwritten: a taken name gets ``_2``, ``_3``, … Each file is written under a temporary
  name, flushed to disk, then given its final name with a hard link, which fails instead
  of replacing, so two writers can never clobber each other and a crash never leaves a
  partial file under a result's name.
- ``<input>/<TaskName>/<digest>_<name>.<ext>`` is a relative symlink to the newest file.
  Lookup goes through these links only: deleting one invalidates a cached result.
- Array outputs go to binary ``.npy`` files; everything else to JSON.
"""

from __future__ import annotations

import functools
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ConfigDict, PydanticUserError, TypeAdapter, ValidationError

from .typing import is_array_type

__all__ = ["OutputSpec", "link_paths", "load", "relink", "type_adapter", "write"]

logger = logging.getLogger(__name__)


def type_adapter(annotation: Any) -> TypeAdapter:
    """A TypeAdapter that also accepts arbitrary classes (checked by isinstance)."""
    try:
        return TypeAdapter(annotation, config=ConfigDict(arbitrary_types_allowed=True))
    except PydanticUserError:  # models and dataclasses carry their own config
        return TypeAdapter(annotation)


@dataclass
class OutputSpec:
    """One named output of a task: its declared type and its file format."""

    name: str
    annotation: Any

    @functools.cached_property
    def adapter(self) -> TypeAdapter:
        return type_adapter(self.annotation)

    @functools.cached_property
    def ext(self) -> str:
        return "npy" if is_array_type(self.annotation) else "json"

    @functools.cached_property
    def suffix(self) -> str:
        return f"_{self.name}.{self.ext}"

    def filename(self, digest: str) -> str:
        return digest + self.suffix

    def dump(self, value: Any) -> bytes | np.ndarray:
        if self.ext == "npy":
            return np.asarray(value)
        return self.adapter.dump_json(value)

    def read(self, path: str) -> Any:
        if self.ext == "npy":
            return self.adapter.validate_python(np.load(path, allow_pickle=False))
        with open(path, "rb") as f:
            return self.adapter.validate_json(f.read())


def link_paths(input_dir: Path, taskname: str, digest: str, specs: list[OutputSpec]) -> list[Path]:
    folder = input_dir / taskname
    return [folder / spec.filename(digest) for spec in specs]


def load(
    input_dir: Path, taskname: str, digest: str, specs: list[OutputSpec]
) -> dict[str, Any] | None:
    """The saved outputs, or None if any is missing or unreadable."""
    values = {}
    folder = f"{input_dir}{os.sep}{taskname}{os.sep}{digest}"  # plain strings: a hot path
    for spec in specs:
        path = folder + spec.suffix
        try:
            values[spec.name] = spec.read(path)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, ValidationError) as exc:
            logger.warning("ignoring unreadable result %s: %s", path, exc)
            return None
    return values


def _write_tmp(folder: Path, data: bytes | np.ndarray) -> Path:
    tmp = folder / f".tmp-{os.getpid()}-{secrets.token_hex(6)}"
    with open(tmp, "xb") as f:
        if isinstance(data, np.ndarray):
            np.save(f, data, allow_pickle=False)
        else:
            f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return tmp


def _claim(tmp: Path, folder: Path, stem: str, ext: str) -> Path:
    """Give ``tmp`` the first free name ``stem.ext``, ``stem_2.ext``, … without overwriting."""
    n = 1
    while True:
        target = folder / (f"{stem}.{ext}" if n == 1 else f"{stem}_{n}.{ext}")
        try:
            os.link(tmp, target)
        except FileExistsError:
            n += 1
            continue
        os.unlink(tmp)
        return target


def relink(link: Path, target: Path) -> None:
    """Point ``link`` at ``target`` (relative), atomically; a real file in the way is kept aside."""
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.exists() and not link.is_symlink():
        n = 2
        while (aside := link.with_name(f"{link.name}.kept_{n}")).exists():
            n += 1
        logger.warning("moving the file in the way of a result link to %s", aside)
        os.rename(link, aside)
    rel = os.path.relpath(target, link.parent)
    tmp = link.with_name(f".tmp-link-{os.getpid()}-{secrets.token_hex(6)}")
    os.symlink(rel, tmp)
    os.replace(tmp, link)


def write(
    output_dir: Path,
    input_dir: Path,
    taskname: str,
    digest: str,
    specs: list[OutputSpec],
    values: dict[str, Any],
) -> list[Path]:
    """Write every output, then point the input-datastore links at them; the real paths."""
    folder = output_dir / taskname
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    tmps: list[Path] = []
    try:
        for spec in specs:
            tmps.append(_write_tmp(folder, spec.dump(values[spec.name])))
        for spec, tmp in zip(specs, tmps, strict=True):
            written.append(_claim(tmp, folder, f"{digest}_{spec.name}", spec.ext))
    finally:
        for tmp in tmps:
            tmp.unlink(missing_ok=True)
    for link, target in zip(link_paths(input_dir, taskname, digest, specs), written, strict=True):
        relink(link, target)
    return written
