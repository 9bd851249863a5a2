"""The datastore's layout: where a task's result files and links are, their ``_N``
versions and iterative steps, and the item names of separate outputs."""

from __future__ import annotations

import contextlib
import functools
import glob
import hashlib
import json
import logging
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import xxhash

from .. import _fs
from ..errors import TaskInputError
from .files import (
    BLOBS,
    SIDECAR,
    CorruptResult,
    Loaded,
    OutputSpec,
    Written,
    _legacy_warning,
    npy_bytes,
    npy_from_buffer,
    quarantine,
    read_verified,
)
from .reading import read_hashing

if TYPE_CHECKING:
    import numpy as np

    from ..config import Project

logger = logging.getLogger(__name__)


def _target(link: str) -> str:
    """The file a result link points at, to open (one readlink instead of realpath's
    lstat of every folder on the way; the path may hold ``..``)."""
    try:
        return os.path.join(os.path.dirname(link), os.readlink(link))
    except OSError:  # not a link, or no link: whatever is there
        return link


def _named_for(spec: OutputSpec, path: str, meta: dict[str, Any]) -> bool:
    """Whether a checksum file is that of the file it sits beside: a result file's name
    holds its digest, and so does its checksum file (older ones may not say)."""
    digest = meta.get("digest")
    return not isinstance(digest, str) or spec.version_of(os.path.basename(path),
                                                          digest) is not None


@dataclass(frozen=True)
class Datastore:
    """The input datastore (where results are found) and the output datastore inside it."""

    input_dir: Path
    output_dir: Path

    @classmethod
    def of(cls, project: Project) -> Datastore:
        return cls(project.input_dir, project.output_dir)

    def result(self, taskname: str, digest: str, specs: tuple[OutputSpec, ...] | list[OutputSpec],
               items: Mapping[str, tuple[str, ...]] | None = None) -> ResultRef:
        return ResultRef(self, taskname, digest, tuple(specs), tuple((items or {}).items()))

    def output_file(self, key: str) -> Path:
        """The file of an output data key of a record made before smttask-record/1
        (relative to the output datastore)."""
        return self.output_dir / key

    def data_key(self, path: Path) -> str:
        """A file's data key in records: its path relative to the input datastore (the
        same key whether a record lists the file as its output or as an input)."""
        return Path(os.path.relpath(path, self.input_dir)).as_posix()

    def file_of(self, key: str) -> Path:
        """The file of a data key (see :meth:`data_key`)."""
        return self.input_dir / key

    def store_blob(self, arr: Any) -> tuple[str, str]:
        """Store an array input once, by content; (its xxh3-128, its data key)."""
        data = npy_bytes(arr)
        digest = xxhash.xxh3_128_hexdigest(data)
        path = self.input_dir / BLOBS / f"{digest}.npy"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            _fs.create(path, data)
        return digest, self.data_key(path)

    def load_blob(self, key: str, digest: str) -> np.ndarray:
        """A stored array input, checked against its hash (FileNotFoundError if gone,
        CorruptResult if changed)."""
        if not key.startswith(f"{BLOBS}/") or "/.." in key or "\\" in key:
            raise CorruptResult(f"{key!r} is not a stored input")
        data, found = read_hashing(os.fspath(self.input_dir / key), xxhash.xxh3_128())
        if found != digest:
            raise CorruptResult(f"the stored input {key} does not match its hash")
        return npy_from_buffer(data)

    def all_links(self) -> Iterator[Path]:
        """Every result link of the input datastore."""
        skip = {BLOBS, Path(os.path.relpath(self.output_dir, self.input_dir)).parts[0]}
        for folder in sorted(self.input_dir.iterdir()) if self.input_dir.is_dir() else []:
            if folder.name in skip or not folder.is_dir() or folder.is_symlink():
                continue
            yield from sorted(p for p in folder.iterdir() if p.is_symlink())

    def temporary_files(self) -> Iterator[Path]:
        """Temporary files left in the datastore by processes that died while writing."""
        if self.input_dir.is_dir():
            yield from self.input_dir.rglob(f"{_fs.TEMP_PREFIX}*")

    def links_of(self, taskname: str, digest: str) -> list[Path]:
        """Every result link of ``digest``, whatever its outputs (for maintenance)."""
        folder = self.input_dir / taskname
        if not folder.is_dir():
            return []
        return sorted(p for p in folder.glob(f"{glob.escape(digest)}_*") if p.is_symlink())

    def versions_of(self, link: Path) -> list[Path]:
        """The files in the output datastore that ``link`` may point at (its ``_N``
        versions), whether or not it points at them now."""
        stem, _, ext = link.name.rpartition(".")
        folder = self.output_dir / link.parent.name
        pattern = re.compile(rf"{re.escape(stem)}(?:_\d+)?\.{re.escape(ext)}")
        return sorted(p for p in folder.glob(f"{glob.escape(stem)}*.{ext}")
                      if pattern.fullmatch(p.name))


_ITEM = re.compile(r"\w[\w.-]*")
_VERSIONED = re.compile(r"(.+)_(\d+)")


def item_names(specs: tuple[OutputSpec, ...] | list[OutputSpec], inputs: Mapping[str, Any]
               ) -> dict[str, tuple[str, ...]]:
    """The file names of each separate output's items, from the task's inputs.

    Names are checked so that every file name reads back one way: unique, made of
    letters, digits, ``_``, ``.`` and ``-``, and never ``<other name>_<N>`` (which is how
    version N of another file is named).
    """
    found: dict[str, tuple[str, ...]] = {}
    for spec in specs:
        sep = spec.separate
        if sep is None:
            continue
        where = f"separate output {spec.name!r}"
        for param in sep.params:
            if getattr(inputs[param], "__smttask_task__", False):
                raise TaskInputError(f"{where}: {param!r} is an upstream task; separate "
                                     "outputs are named from input values", param)
        names = sep.get_names(**{p: inputs[p] for p in sep.params})
        if isinstance(names, str) or not hasattr(names, "__iter__"):
            raise TaskInputError(f"{where}: get_names must return a list of names, not "
                                 f"{type(names).__name__}")
        found[spec.name] = tuple(names)
    owner: dict[str, str | None] = {s.name: None for s in specs if s.separate is None}
    for output, names in found.items():
        where = f"separate output {output!r}"
        for name in names:
            if not isinstance(name, str) or not _ITEM.fullmatch(name):
                raise TaskInputError(f"{where}: {name!r} is not a valid name (letters, "
                                     "digits, '_', '.' and '-')")
            if name in owner:
                raise TaskInputError(f"{where}: {name!r} is used twice (the names of "
                                     "outputs and items must differ)")
            owner[name] = output
    for name, group in owner.items():
        m = _VERSIONED.fullmatch(name)
        if m and m[1] in owner:
            which = f"separate output {group!r}" if group else f"output {name!r}"
            raise TaskInputError(f"{which}: {name!r} would read as version {m[2]} of "
                                 f"{m[1]!r}; choose other names")
    return found


@dataclass(frozen=True)
class ResultRef:
    """One task's result in a datastore: found through its links, written once.

    ``items`` names the item files of each separate output (see :func:`item_names`).
    """

    store: Datastore
    taskname: str
    digest: str
    specs: tuple[OutputSpec, ...]
    items: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @functools.cached_property
    def file_specs(self) -> tuple[OutputSpec, ...]:
        """One spec per file: a separate output gives one per item."""
        items = dict(self.items)
        out: list[OutputSpec] = []
        for spec in self.specs:
            if spec.separate is None:
                out.append(spec)
            elif spec.name in items:
                out += [spec.item(name) for name in items[spec.name]]
            else:
                raise ValueError(f"{spec.name}: the names of its items are not given")
        return tuple(out)

    @property
    def link_folder(self) -> Path:
        return self.store.input_dir / self.taskname

    @property
    def file_folder(self) -> Path:
        return self.store.output_dir / self.taskname

    def link(self, spec: OutputSpec) -> Path:
        """Where the link to the newest file of ``spec`` lives."""
        return self.link_folder / spec.filename(self.digest)

    @property
    def links(self) -> list[Path]:
        return [self.link(spec) for spec in self.file_specs]

    @property
    def on_disk(self) -> bool:
        """True if every output's link leads to an existing file."""
        return all(p.exists() for p in self.links)

    def files(self) -> list[Path]:
        """The real files the links point at (only those that exist)."""
        return [p.resolve() for p in self.links if p.exists()]

    def versions(self, spec: OutputSpec) -> list[Path]:
        """Every file written for ``spec`` of this digest, oldest version first."""
        try:
            names = os.listdir(self.file_folder)
        except FileNotFoundError:
            return []
        found = [(n, name) for name in names
                 if (n := spec.version_of(name, self.digest)) is not None]
        return [self.file_folder / name for _, name in sorted(found)]

    def load(self) -> Loaded | None:
        """The saved outputs, verified; None if any is missing or bad (a bad file is set
        aside, so that the task runs again)."""
        values = {}
        metas = []
        # Plain strings, not Paths: this is the cache-hit path.
        folder = f"{self.store.input_dir}{os.sep}{self.taskname}{os.sep}{self.digest}"
        for spec in self.file_specs:
            link = folder + spec.suffix
            real = _target(link)
            try:
                values[spec.name], meta = read_verified(real, spec.decode)
                if meta is None:
                    _legacy_warning(os.path.realpath(real))
                elif not _named_for(spec, real, meta):
                    raise CorruptResult(f"it and its checksum file are those of result "
                                        f"{meta['digest']}, not of this one")
            except FileNotFoundError:
                return None
            except (CorruptResult, OSError) as exc:
                self._set_aside(Path(os.path.realpath(real)), str(exc))
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(link)
                return None
            metas.append(meta)
        if self.items:  # reassemble each separate output, in order
            items = dict(self.items)
            values = {s.name: tuple(values[n] for n in items[s.name]) if s.name in items
                      else values[s.name] for s in self.specs}
        return Loaded(values, metas)

    def _set_aside(self, path: Path, why: str) -> None:
        """Quarantine a bad result file if it is in the output datastore; of a link to
        anywhere else only the link goes (nothing outside the datastore is renamed)."""
        if path.is_relative_to(self.store.output_dir.resolve()):
            quarantine(path, why)
        else:
            logger.warning("a result link pointed at %s, outside the output datastore "
                           "(%s): the link is removed and the task will run again", path, why)

    def write(self, values: Mapping[str, Any], meta: dict[str, Any] | None = None
              ) -> list[Written]:
        """Write every output under a fresh name, with its checksum sidecar (``meta`` is
        added to it); not linked yet (:meth:`publish`). Nothing is left behind on failure.

        A separate output must have one value per item name (a ValueError otherwise,
        before anything is written).
        """
        flat = dict(values)
        for output, names in self.items:
            seq = list(flat.pop(output))
            if len(seq) != len(names):
                raise ValueError(f"{output}: {len(seq)} values for the {len(names)} names "
                                 f"{list(names)}")
            flat.update(zip(names, seq, strict=True))
        specs = self.file_specs
        encoded = [spec.encode(flat[spec.name]) for spec in specs]
        folder = self.file_folder
        folder.mkdir(parents=True, exist_ok=True)
        written: list[Written] = []
        try:
            # No fsync (as for a SQLite store in WAL mode, whose commits are not synced
            # either): a crashed process loses nothing, and after a power cut a result
            # that did not reach the disk fails its checksum on load, is set aside and
            # computed again.
            with contextlib.ExitStack() as stack:  # every file complete before any is named
                tmps = [stack.enter_context(_fs.temporary(folder, data, durable=False))
                        for data in encoded]
                for spec, tmp, data in zip(specs, tmps, encoded, strict=True):
                    path = _fs.link_first_free(tmp, self._names(spec))
                    item = Written(path, len(data), xxhash.xxh3_128_hexdigest(data),
                                   hashlib.sha1(data).hexdigest(),
                                   datetime.fromtimestamp(os.stat(path).st_ctime, UTC))
                    written.append(item)
                    side = {"size": item.size, "xxh3": item.xxh3, "sha1": item.sha1,
                            "task": self.taskname, "digest": self.digest, "output": spec.name,
                            **(meta or {})}
                    # After a power cut the checksum file may be empty (the result is
                    # then set aside) or missing (as for older results). Written under
                    # its name at once: nobody reads it before the result is linked.
                    _fs.write_unread(Path(f"{path}{SIDECAR}"),
                                     json.dumps(side, sort_keys=True))
        except BaseException:
            self.discard(written)  # never linked nor recorded: nobody refers to them
            raise
        return written

    @staticmethod
    def discard(written: list[Written]) -> None:
        """Remove freshly written files that will never be published."""
        for item in written:
            for path in (item.path, Path(f"{item.path}{SIDECAR}")):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)

    def publish(self, written: list[Written]) -> None:
        """Point the result's links at freshly written files: from now on it loads."""
        for spec, item in zip(self.file_specs, written, strict=True):
            self.relink(spec, item.path)

    def _names(self, spec: OutputSpec) -> Iterator[Path]:
        n = 1
        while True:
            yield self.file_folder / spec.filename(self.digest, n)
            n += 1

    def relink(self, spec: OutputSpec, target: Path) -> Path:
        """Point the link of ``spec`` at ``target``; a real file in its way is kept aside."""
        link = self.link(spec)
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.exists() and not link.is_symlink():
            n = 2
            while (aside := link.with_name(f"{link.name}.kept_{n}")).exists():
                n += 1
            logger.warning("moving the file in the way of a result link to %s", aside)
            os.rename(link, aside)
        _fs.symlink(link, target)
        return link

    def unlink(self, spec: OutputSpec) -> None:
        self.link(spec).unlink(missing_ok=True)

    # --- iterative tasks: digests ``<hash>__<param>_<step>`` --------------------------------

    def step(self, param: str, step: int) -> ResultRef:
        """The result of the same iterative task at another step."""
        base = self.digest.split("__", 1)[0]
        return ResultRef(self.store, self.taskname, f"{base}__{param}_{step}", self.specs,
                         self.items)

    def saved_steps(self, param: str) -> list[int]:
        """Steps with a link on disk (complete or not), largest first."""
        prefix = self.digest.split("__", 1)[0] + f"__{param}_"
        try:
            names = os.listdir(self.link_folder)
        except FileNotFoundError:
            return []
        steps = {int(m[1]) for name in names if name.startswith(prefix)
                 and (m := re.match(r"(\d+)_", name[len(prefix):]))}
        return sorted(steps, reverse=True)


def output_of(path: Path, digest: str, specs: tuple[OutputSpec, ...] | list[OutputSpec]
              ) -> OutputSpec | None:
    """The output spec that file ``path`` (in the output datastore) holds, for ``digest``."""
    for spec in specs:
        if spec.version_of(path.name, digest) is not None:
            return spec
    return None
