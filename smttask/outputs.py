"""The output datastore: the only module that knows where results live on disk.

- A result is written once at ``<output>/<TaskName>/<digest>_<name>.<ext>`` and never
  overwritten: a taken name gets ``_2``, ``_3``, … (see :mod:`smttask._fs`).
- ``<input>/<TaskName>/<digest>_<name>.<ext>`` is a relative symlink to the newest file.
  Lookup goes through these links only: deleting one invalidates a cached result.
- Array outputs go to binary ``.npy`` files; everything else to JSON.
- An iterative task's digest ends in ``__<param>_<step>``; its steps share the folder.
- A separate output (:func:`smttask.typing.separate_outputs`) is one file per item,
  ``<digest>_<item name>.<ext>``, with item names computed from the task's inputs.

:class:`Datastore` holds the two roots; :class:`ResultRef` is one task's result in it
(its links, files, versions and steps; load and write).
"""

from __future__ import annotations

import contextlib
import functools
import glob
import logging
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import _fs
from .errors import TaskInputError
from .typing import SeparateOutputs

if TYPE_CHECKING:
    from pydantic import TypeAdapter

    from .config import Project

__all__ = ["Datastore", "OutputSpec", "ResultRef", "item_names", "output_of", "type_adapter"]

logger = logging.getLogger(__name__)


def type_adapter(annotation: Any) -> TypeAdapter[Any]:
    """A TypeAdapter that also accepts arbitrary classes (checked by isinstance)."""
    from pydantic import ConfigDict, PydanticUserError, TypeAdapter

    try:
        return TypeAdapter(annotation, config=ConfigDict(arbitrary_types_allowed=True))
    except PydanticUserError:  # models and dataclasses carry their own config
        return TypeAdapter(annotation)


@dataclass
class OutputSpec:
    """One named output of a task (or one item of a separate output): its declared type
    and its file format."""

    name: str
    annotation: Any
    group: str | None = None  # for an item: the separate output it belongs to

    @functools.cached_property
    def separate(self) -> SeparateOutputs | None:
        """What makes this a separate output (one file per item), or None."""
        return next((m for m in getattr(self.annotation, "__metadata__", ())
                     if isinstance(m, SeparateOutputs)), None)

    def item(self, name: str) -> OutputSpec:
        """The spec of one item's file of this separate output."""
        assert self.separate is not None
        return OutputSpec(name, self.separate.item_type, group=self.name)

    @functools.cached_property
    def adapter(self) -> TypeAdapter[Any]:
        return type_adapter(self.annotation)

    @functools.cached_property
    def ext(self) -> str:
        from .typing import is_array_type

        return "npy" if is_array_type(self.annotation) else "json"

    @functools.cached_property
    def suffix(self) -> str:
        return f"_{self.name}.{self.ext}"

    def filename(self, digest: str, version: int = 1) -> str:
        """``<digest>_<name>.<ext>``, or ``<digest>_<name>_<version>.<ext>``."""
        if version == 1:
            return digest + self.suffix
        return f"{digest}_{self.name}_{version}.{self.ext}"

    def version_of(self, filename: str, digest: str) -> int | None:
        """The version number if ``filename`` is a file of this output of ``digest``."""
        m = self._pattern.fullmatch(filename)
        if m is None or m["digest"] != digest:
            return None
        return int(m["n"]) if m["n"] else 1

    @functools.cached_property
    def _pattern(self) -> re.Pattern[str]:
        return re.compile(rf"(?P<digest>.+)_{re.escape(self.name)}(?:_(?P<n>\d+))?"
                          rf"\.{self.ext}")

    def dump(self, value: Any) -> _fs.Writer:
        """What to write for ``value``: a writer of ``.npy`` bytes, or JSON bytes."""
        if self.ext == "npy":
            import numpy as np

            arr = np.asarray(value)
            return lambda f: np.save(f, arr, allow_pickle=False)
        return self.adapter.dump_json(value)

    def read(self, path: str | os.PathLike[str]) -> Any:
        """Load and validate one saved value."""
        if self.ext == "npy":
            import numpy as np

            return self.adapter.validate_python(np.load(path, allow_pickle=False))
        with open(path, "rb") as f:
            return self.adapter.validate_json(f.read())


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
        """The file of a record's output data key (relative to the output datastore)."""
        return self.output_dir / key

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

    def load(self) -> dict[str, Any] | None:
        """The saved outputs, or None if any is missing or unreadable."""
        from pydantic import ValidationError

        values = {}
        folder = f"{self.link_folder}{os.sep}{self.digest}"  # plain strings: a hot path
        for spec in self.file_specs:
            path = folder + spec.suffix
            try:
                values[spec.name] = spec.read(path)
            except FileNotFoundError:
                return None
            except (OSError, ValueError, EOFError, ValidationError) as exc:
                logger.warning("ignoring unreadable result %s: %s", path, exc)
                return None
        if not self.items:
            return values
        items = dict(self.items)  # reassemble each separate output, in order
        return {s.name: tuple(values[n] for n in items[s.name]) if s.name in items
                else values[s.name] for s in self.specs}

    def write(self, values: Mapping[str, Any]) -> list[Path]:
        """Write every output under a fresh name, then point the links at them; the files.

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
        folder = self.file_folder
        folder.mkdir(parents=True, exist_ok=True)
        with contextlib.ExitStack() as stack:  # every file complete before any is named
            tmps = [stack.enter_context(_fs.temporary(folder, spec.dump(flat[spec.name])))
                    for spec in specs]
            written = [_fs.link_first_free(tmp, self._names(spec))
                       for spec, tmp in zip(specs, tmps, strict=True)]
        for spec, target in zip(specs, written, strict=True):
            self.relink(spec, target)
        return written

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
