"""One result file: how an output is encoded (``.npy`` or JSON), its checksum sidecar
``<file>.meta.json``, verification on load and quarantine of a file that fails it."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import json
import logging
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import xxhash

from .. import _fs
from .reading import CorruptResult, Hashing, read_file

if TYPE_CHECKING:
    import numpy as np
    from pydantic import TypeAdapter

    from ..typing import SeparateOutputs

logger = logging.getLogger(__name__)

#: The checksum file beside each result file.
SIDECAR = ".meta.json"
#: Where array inputs of records are stored once (in the input datastore).
BLOBS = ".inputs"


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

    # Parsed by hand up to the header (the cache-hit path: few steps after a large read).
    lead = bytes(data[:12])
    if lead[:6] != b"\x93NUMPY":
        raise CorruptResult("not a .npy file")
    if lead[6:8] not in (b"\x01\x00", b"\x02\x00"):
        raise CorruptResult(f".npy format version {lead[6]}.{lead[7]} is not one smttask "
                            "writes")
    size_bytes = 2 if lead[6] == 1 else 4
    if len(lead) < 8 + size_bytes:
        raise CorruptResult("truncated .npy header")
    offset = 8 + size_bytes + int.from_bytes(lead[8:8 + size_bytes], "little")
    shape, fortran, dtype = _npy_header(bytes(data[:offset]))
    if dtype.hasobject:
        raise CorruptResult("object arrays are never loaded")
    count = math.prod(shape)
    if len(data) - offset != count * dtype.itemsize:
        raise CorruptResult(f"{len(data) - offset} data bytes for {count} items of {dtype}")
    arr = np.frombuffer(data, dtype=dtype, count=count, offset=offset)
    return arr.reshape(shape, order="F" if fortran else "C")


#: A checksum file is a few hundred bytes; one larger than this is not one smttask wrote.
_SIDECAR_MAX = 1 << 16


def read_sidecar(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The checksum sidecar of a result file, or None if it has none."""
    try:
        fd = os.open(f"{os.fspath(path)}{SIDECAR}", os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CorruptResult(f"unreadable checksum file: {exc}") from None
    try:
        meta = json.loads(os.read(fd, _SIDECAR_MAX))
    except (OSError, ValueError) as exc:
        raise CorruptResult(f"unreadable checksum file: {exc}") from None
    finally:
        os.close(fd)
    if not isinstance(meta, dict) or not isinstance(meta.get("xxh3"), str):
        raise CorruptResult("malformed checksum file")
    return meta


def read_verified(path: str | os.PathLike[str], decode: Callable[[Any], Any] | None = None,
                  ) -> tuple[Any, dict[str, Any] | None]:
    """A result file's bytes (or ``decode(bytes)``), checked against its sidecar, and the
    sidecar (None if it has none: not checked). CorruptResult if they disagree; the bytes
    are checked before they are decoded."""
    with Hashing(os.fspath(path), xxhash.xxh3_128()) as result:
        meta = read_sidecar(path)  # while a shared read starts
        data, digest = result()
    if meta is not None:
        _check(data, meta, digest)
    return (data if decode is None else decode(data)), meta


def _check(data: Any, meta: dict[str, Any], digest: str | None) -> None:
    if meta.get("size") is not None and meta["size"] != len(data):
        raise CorruptResult(f"{len(data)} bytes where {meta['size']} were written")
    if digest != meta["xxh3"]:
        raise CorruptResult("checksum mismatch (the file changed after it was written)")


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
        created = datetime.fromtimestamp(os.stat(path).st_ctime, UTC)
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
        from ..typing import SeparateOutputs

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
        from ..typing import is_array_type

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
        return read_verified(path, self.decode)[0]


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
    data = read_file(os.fspath(path))
    return len(data), xxhash.xxh3_128_hexdigest(data), hashlib.sha1(data).hexdigest()


def quarantine(path: Path, why: str) -> Path:
    """Set a bad result file (and its sidecar) aside under a name no lookup uses; where."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    aside = path.with_name(f"{path.name}.quarantined-{stamp}")
    os.rename(path, aside)
    with contextlib.suppress(FileNotFoundError):
        os.rename(f"{path}{SIDECAR}", f"{aside}{SIDECAR}")
    logger.warning("set aside the result file %s (%s); the task will run again: %s",
                   path, why, aside.name)
    return aside


