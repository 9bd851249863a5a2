"""The one atomic-write helper: a reader never sees a partial file, a failure leaves no
temporary file, and a taken name is never overwritten."""

from __future__ import annotations

import errno
import os

import pytest

from smttask import _fs


def leftovers(folder):
    return [p.name for p in folder.iterdir() if p.name.startswith(_fs.TEMP_PREFIX)]


def test_replace_writes_bytes_text_and_writers(tmp_path):
    target = tmp_path / "f"
    _fs.replace(target, b"one")
    _fs.replace(target, "two")
    assert target.read_text() == "two"
    _fs.replace(target, lambda f: f.write(b"three"), mode=0o600)
    assert target.read_bytes() == b"three" and (target.stat().st_mode & 0o777) == 0o600
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("failure", [OSError(errno.ENOSPC, "No space left on device"),
                                     KeyboardInterrupt()])
def test_a_failed_write_keeps_the_old_file_and_no_temporary(tmp_path, failure):
    target = tmp_path / "f"
    _fs.replace(target, b"old")

    def half_then_fail(f):
        f.write(b"partial")
        raise failure

    with pytest.raises(type(failure)):
        _fs.replace(target, half_then_fail)
    with pytest.raises(type(failure)):
        _fs.create(tmp_path / "new", half_then_fail)
    with pytest.raises(type(failure)):
        _fs.claim([tmp_path / "c1", tmp_path / "c2"], half_then_fail)
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]


def test_a_failed_fsync_leaves_nothing(tmp_path, monkeypatch):
    def full_disk(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space left"):
        _fs.create(tmp_path / "x", b"data")
    assert list(tmp_path.iterdir()) == []


def test_create_never_overwrites(tmp_path):
    target = tmp_path / "f"
    assert _fs.create(target, b"first")
    assert not _fs.create(target, b"second")
    assert target.read_bytes() == b"first" and leftovers(tmp_path) == []


def test_claim_takes_the_first_free_name(tmp_path):
    names = [tmp_path / f"r_{n}.json" for n in range(1, 5)]
    assert _fs.claim(names, b"a") == names[0]
    assert _fs.claim(names, b"b") == names[1]
    names[2].write_bytes(b"someone else's")
    assert _fs.claim(names, b"c") == names[3]
    assert names[2].read_bytes() == b"someone else's"
    with pytest.raises(FileExistsError):
        _fs.claim(names, b"d")
    assert leftovers(tmp_path) == []


def test_symlink_is_relative_and_replaced_atomically(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "links").mkdir()
    a, b = tmp_path / "out" / "a", tmp_path / "out" / "b"
    a.write_text("A")
    b.write_text("B")
    link = tmp_path / "links" / "l"
    _fs.symlink(link, a)
    assert os.readlink(link) == "../out/a" and link.read_text() == "A"
    _fs.symlink(link, b)
    assert link.read_text() == "B" and leftovers(tmp_path / "links") == []
