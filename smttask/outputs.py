"""The output datastore: the only module that knows where results live on disk.

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
"""

from __future__ import annotations

import contextlib
import functools
import glob
import hashlib
import io
import json
import logging
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import xxhash

from . import _fs
from .errors import TaskInputError

if TYPE_CHECKING:
    import numpy as np
    from pydantic import TypeAdapter

    from .config import Project
    from .typing import SeparateOutputs

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
    "verify",
]

logger = logging.getLogger(__name__)

#: The checksum file beside each result file.
SIDECAR = ".meta.json"
#: Where array inputs of records are stored once (in the input datastore).
BLOBS = ".inputs"


class CorruptResult(Exception):
    """A result file that must not be loaded: checksum, size or type do not match."""


def npy_bytes(arr: Any) -> bytes:
    """The ``.npy`` bytes of an array (no pickles)."""
    import numpy as np

    buf = io.BytesIO()
    np.save(buf, np.asarray(arr), allow_pickle=False)
    return buf.getvalue()


@functools.lru_cache(maxsize=256)
def _npy_header(header: bytes) -> tuple[tuple[int, ...], bool, np.dtype[Any]]:
    """(shape, Fortran order, dtype) of a ``.npy`` header, magic included (cached: parsing
    one costs more than reading a small array)."""
    from numpy.lib import format as npy

    stream = io.BytesIO(header)
    version = npy.read_magic(stream)
    read = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
    try:
        return read(stream)
    except (ValueError, SyntaxError, TypeError) as exc:
        raise CorruptResult(f"unreadable .npy header: {exc}") from None


def npy_from_buffer(data: Any) -> np.ndarray:
    """An array over the ``.npy`` bytes ``data`` (no copy; writable for a bytearray)."""
    import numpy as np
    from numpy.lib import format as npy

    head = io.BytesIO(bytes(data[:16]))
    try:
        version = npy.read_magic(head)
    except ValueError as exc:
        raise CorruptResult(f"not a .npy file: {exc}") from None
    size_bytes = 2 if version == (1, 0) else 4
    if len(data) < 8 + size_bytes:
        raise CorruptResult("truncated .npy header")
    header_len = int.from_bytes(bytes(data[8:8 + size_bytes]), "little")
    offset = 8 + size_bytes + header_len
    if version not in ((1, 0), (2, 0)):
        raise CorruptResult(f".npy format version {version} is not one smttask writes")
    shape, fortran, dtype = _npy_header(bytes(data[:offset]))
    if dtype.hasobject:
        raise CorruptResult("object arrays are never loaded")
    count = 1
    for n in shape:
        count *= n
    if len(data) - offset != count * dtype.itemsize:
        raise CorruptResult(f"{len(data) - offset} data bytes for {count} items of {dtype}")
    arr = np.frombuffer(data, dtype=dtype, count=count, offset=offset)
    return arr.reshape(shape, order="F" if fortran else "C")


def read_sidecar(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The checksum sidecar of a result file, or None if it has none."""
    try:
        with open(f"{os.fspath(path)}{SIDECAR}", "rb") as f:
            meta = json.loads(f.read())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise CorruptResult(f"unreadable checksum file: {exc}") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("xxh3"), str):
        raise CorruptResult("malformed checksum file")
    return meta


#: Bytes read (and hashed) at a time: small enough to be hashed while still in the CPU's
#: cache, which makes a verified load cost little more than the read itself.
_CHUNK = 1 << 20


def _read_file(path: str, hasher: Any = None) -> Any:
    """A file's bytes, into a buffer that is not zero-filled first (a writable uint8
    array: arrays loaded from it need no copy); each chunk goes through ``hasher`` (an
    xxhash object) as it arrives."""
    import numpy as np

    with open(path, "rb", buffering=0) as f:
        size = os.fstat(f.fileno()).st_size
        data = np.empty(size, dtype=np.uint8)
        view = data.data  # a memoryview
        done = 0
        while done < size:
            n = f.readinto(view[done:done + _CHUNK])
            if not n:
                break
            if hasher is not None:
                hasher.update(view[done:done + n])
            done += n
    if done != size:
        raise CorruptResult(f"read {done} of {size} bytes")
    return data


def read_verified(path: str | os.PathLike[str]) -> tuple[Any, dict[str, Any] | None]:
    """A result file's bytes, checked against its sidecar in the same pass, and the
    sidecar (None if it has none: not checked). CorruptResult if they disagree."""
    meta = read_sidecar(path)
    if meta is None:
        return _read_file(os.fspath(path)), None
    hasher = xxhash.xxh3_128()
    data = _read_file(os.fspath(path), hasher)
    if meta.get("size") is not None and meta["size"] != len(data):
        raise CorruptResult(f"{len(data)} bytes where {meta['size']} were written")
    if hasher.hexdigest() != meta["xxh3"]:
        raise CorruptResult("checksum mismatch (the file changed after it was written)")
    return data, meta


@dataclass(frozen=True)
class Loaded:
    """A result read back and verified, with what its checksum files say of it."""

    values: dict[str, Any]
    metas: list[dict[str, Any] | None]  # None: written before smttask kept checksums

    @property
    def code(self) -> str:
        """The fingerprint of the code that computed it ('' if unknown)."""
        return next((str(m.get("code") or "") for m in self.metas if m), "")

    @property
    def commit(self) -> str:
        """The commit it was computed at ('' if unknown)."""
        return next((str(m.get("commit") or "") for m in self.metas if m), "")


_warned_legacy: set[str] = set()


def _legacy_warning(path: str) -> None:
    folder = os.path.dirname(path)
    if folder not in _warned_legacy:
        _warned_legacy.add(folder)
        logger.warning("results in %s have no checksum files (written before smttask kept "
                       "them): loaded without verification; `smttask store verify --fix` "
                       "adds them", folder)


@dataclass(frozen=True)
class Written:
    """One result file as written: where it is and its checksums."""

    path: Path
    size: int
    xxh3: str
    sha1: str
    created: datetime = field(compare=False)

    @classmethod
    def of(cls, path: Path) -> Written:
        """An existing result file, with its checksums (from its sidecar when it has one)."""
        meta = read_sidecar(path)
        if meta is not None and isinstance(meta.get("sha1"), str):
            size, xxh3, sha1 = int(meta["size"]), meta["xxh3"], meta["sha1"]
        else:
            size, xxh3, sha1 = checksums(path)
        created = datetime.fromtimestamp(os.stat(path).st_ctime, timezone.utc)
        return cls(Path(path), size, xxh3, sha1, created)


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
        from .typing import SeparateOutputs

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

    def encode(self, value: Any) -> bytes:
        """The file bytes for ``value``: ``.npy`` for arrays, JSON otherwise."""
        if self.ext == "npy":
            return npy_bytes(value)
        return self.adapter.dump_json(value)

    def decode(self, data: bytes | bytearray) -> Any:
        """The validated value of file bytes; CorruptResult if they do not fit the type."""
        from pydantic import ValidationError

        try:
            if self.ext == "npy":
                arr = npy_from_buffer(data)
                value = self.adapter.validate_python(arr)
                if getattr(value, "dtype", arr.dtype) != arr.dtype:
                    raise CorruptResult(f"dtype {arr.dtype} where {value.dtype} is declared")
                return value
            return self.adapter.validate_json(bytes(data))
        except ValidationError as exc:
            first = exc.errors()[0]
            raise CorruptResult(f"does not fit the declared type: {first['msg']}") from None

    def read(self, path: str | os.PathLike[str]) -> Any:
        """Load one saved value, verified against its checksum when it has one."""
        return self.decode(read_verified(path)[0])


def verify(data: bytes | bytearray, meta: dict[str, Any]) -> None:
    """CorruptResult unless ``data`` has the size and xxh3-128 its sidecar says."""
    if meta.get("size") is not None and meta["size"] != len(data):
        raise CorruptResult(f"{len(data)} bytes where {meta['size']} were written")
    if xxhash.xxh3_128_hexdigest(data) != meta["xxh3"]:
        raise CorruptResult("checksum mismatch (the file changed after it was written)")


def check_file(path: Path) -> dict[str, Any] | None:
    """Verify a result file against its checksum file; that file's content (None if it
    has none). CorruptResult if they disagree."""
    if not os.path.exists(f"{path}{SIDECAR}"):
        return None  # nothing to check against (the file is not even read)
    return read_verified(path)[1]


def add_sidecar(path: Path, meta: dict[str, Any]) -> None:
    """Give an older result file (verified by other means) its checksum file."""
    size, xxh3, sha1 = checksums(path)
    _fs.create(Path(f"{path}{SIDECAR}"),
               json.dumps({**meta, "size": size, "xxh3": xxh3, "sha1": sha1}, sort_keys=True))


def checksums(path: str | os.PathLike[str]) -> tuple[int, str, str]:
    """(size, xxh3-128, SHA-1) of a file."""
    data = _read_file(os.fspath(path))
    return len(data), xxhash.xxh3_128_hexdigest(data), hashlib.sha1(data).hexdigest()


def quarantine(path: Path, why: str) -> Path:
    """Set a bad result file (and its sidecar) aside under a name no lookup uses; where."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%f")
    aside = path.with_name(f"{path.name}.quarantined-{stamp}")
    os.rename(path, aside)
    with contextlib.suppress(FileNotFoundError):
        os.rename(f"{path}{SIDECAR}", f"{aside}{SIDECAR}")
    logger.warning("set aside the result file %s (%s); the task will run again: %s",
                   path, why, aside.name)
    return aside


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
        data = _read_file(os.fspath(self.input_dir / key))
        if xxhash.xxh3_128_hexdigest(data) != digest:
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
            real = os.path.realpath(link)
            try:
                data, meta = read_verified(real)
                if meta is None:
                    _legacy_warning(real)
                values[spec.name] = spec.decode(data)
            except FileNotFoundError:
                return None
            except (CorruptResult, OSError) as exc:
                quarantine(Path(real), str(exc))
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(link)
                return None
            metas.append(meta)
        if self.items:  # reassemble each separate output, in order
            items = dict(self.items)
            values = {s.name: tuple(values[n] for n in items[s.name]) if s.name in items
                      else values[s.name] for s in self.specs}
        return Loaded(values, metas)

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
            with contextlib.ExitStack() as stack:  # every file complete before any is named
                tmps = [stack.enter_context(_fs.temporary(folder, data)) for data in encoded]
                for spec, tmp, data in zip(specs, tmps, encoded, strict=True):
                    path = _fs.link_first_free(tmp, self._names(spec))
                    item = Written(path, len(data), xxhash.xxh3_128_hexdigest(data),
                                   hashlib.sha1(data).hexdigest(),
                                   datetime.fromtimestamp(os.stat(path).st_ctime, timezone.utc))
                    written.append(item)
                    side = {"size": item.size, "xxh3": item.xxh3, "sha1": item.sha1,
                            "task": self.taskname, "digest": self.digest, "output": spec.name,
                            **(meta or {})}
                    # No fsync for the checksum file: after a power cut it may be empty
                    # (the result is then set aside) or missing (as for older results).
                    _fs.create(Path(f"{path}{SIDECAR}"), json.dumps(side, sort_keys=True),
                               durable=False)
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
