"""Reading result files: every byte read and hashed right whichever thread read it, a
helper that is busy or failing never costs a wrong result or a hang, and large reads are
shared with the helper only while a CPU is idle."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest
import xxhash
from conftest import watchdog

from smttask.outputs import reading

CHUNK, SHARED, SHARE_MIN = reading.CHUNK, reading.SHARED_CHUNK, reading.SHARE_MIN


@pytest.fixture
def shared(monkeypatch):
    """Every large read is shared with the helper thread."""
    monkeypatch.setattr(reading, "_idle_core", lambda: True)


@pytest.mark.parametrize("size", [0, 1, reading.ALIGN_MIN, CHUNK, SHARE_MIN - 1, SHARE_MIN,
                                  SHARE_MIN + 1, 5 * CHUNK - 1, 5 * CHUNK + 1, 9 * CHUNK,
                                  5 * SHARED - 1, 5 * SHARED + 1])
def test_every_byte_is_read_and_hashed_in_order(tmp_path, shared, size):
    path = tmp_path / "f.bin"
    content = os.urandom(size)
    path.write_bytes(content)
    with watchdog(15):
        data, digest = reading.read_hashing(str(path), xxhash.xxh3_128())
    assert data.tobytes() == content
    assert digest == xxhash.xxh3_128_hexdigest(content)
    if size >= reading.ALIGN_MIN:  # page-aligned, as the file's pages are
        assert data.__array_interface__["data"][0] % reading.PAGE == 0


def test_a_slow_hash_leaves_the_reading_to_the_helper(tmp_path, shared):
    """The reading thread hashing slowly, the helper reads most chunks meanwhile: they
    are hashed in the file's order all the same."""
    path = tmp_path / "f.bin"
    content = os.urandom(SHARE_MIN + 3 * SHARED + 5)
    path.write_bytes(content)

    class Slow:
        def __init__(self):
            self.hasher = xxhash.xxh3_128()

        def update(self, chunk):
            time.sleep(0.005)
            self.hasher.update(chunk)

        def hexdigest(self):
            return self.hasher.hexdigest()

    with watchdog(15):
        data, digest = reading.read_hashing(str(path), Slow())
    assert data.tobytes() == content and digest == xxhash.xxh3_128_hexdigest(content)


def test_a_busy_helper_is_not_waited_for(tmp_path, shared):
    """The helper thread still on an earlier job: this thread reads the whole file."""
    path = tmp_path / "f.bin"
    content = os.urandom(SHARE_MIN + 3 * CHUNK)
    path.write_bytes(content)
    release, served = threading.Event(), threading.Event()

    class EarlierJob:
        def help(self):
            release.wait(30)
            served.set()

    reading._helper().put(EarlierJob())
    try:
        with watchdog(15):
            data, digest = reading.read_hashing(str(path), xxhash.xxh3_128())
    finally:
        release.set()
    assert served.wait(15)
    assert data.tobytes() == content and digest == xxhash.xxh3_128_hexdigest(content)


def test_a_failure_during_a_shared_read_is_raised_as_itself(tmp_path, shared):
    """What goes wrong while the helper reads its chunks comes back to the load that
    asked, as itself (not as a corrupt file to set aside), and the helper goes on serving
    later loads."""
    path = tmp_path / "big.bin"
    path.write_bytes(os.urandom(SHARE_MIN + 3 * CHUNK))

    class Failing:
        def update(self, chunk):
            raise ValueError("the hasher failed")

    with watchdog(15):  # a reader left waiting raises Hang
        with pytest.raises(ValueError, match="the hasher failed"):
            reading.read_hashing(str(path), Failing())
        data, digest = reading.read_hashing(str(path), xxhash.xxh3_128())
    assert digest == xxhash.xxh3_128_hexdigest(path.read_bytes())
    assert data.tobytes() == path.read_bytes()


@pytest.mark.parametrize(("line", "shared"), [
    (b"0.50 0.50 0.30 1/83 9965\n", True),    # only this thread runs: a CPU is idle
    (b"1.57 0.87 0.45 2/85 10255\n", False),  # both CPUs taken
    (b"9.00 9.00 9.00 17/300 1\n", False),
    (b"garbage\n", False),                     # unknown: read alone
    (b"", False),
])
def test_a_read_is_shared_only_while_a_cpu_is_idle(tmp_path, monkeypatch, line, shared):
    loadavg = tmp_path / "loadavg"
    loadavg.write_bytes(line)
    monkeypatch.setattr(reading, "LOADAVG", str(loadavg))
    monkeypatch.setattr(reading, "_cpus", 2)
    monkeypatch.setattr(reading, "_machine_cpus", 2)
    assert reading._idle_core() is shared
    monkeypatch.setattr(reading, "LOADAVG", str(tmp_path / "missing"))
    assert reading._idle_core() is False


def test_no_read_is_shared_while_every_cpu_is_busy():
    """Real busy loops on every CPU (as `smttask run -n N` workers on N cores): the
    helper would only be preempted mid-chunk."""
    code = "import sys, time\nsys.stdout.write('spinning\\n'); sys.stdout.flush()\nwhile True: pass"
    spinners = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
                for _ in range(os.cpu_count() or 1)]
    try:
        for spinner in spinners:
            assert spinner.stdout.readline() == b"spinning\n"
        assert not any(reading._idle_core() for _ in range(20))
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()
            spinner.stdout.close()


def test_a_process_allowed_one_cpu_never_shares_a_read():
    code = ("import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); "
            "from smttask.outputs import reading; "
            "print(any(reading._idle_core() for _ in range(50)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_leaving_a_started_read_early_closes_the_file(tmp_path, shared):
    """An error between starting a read and asking for its bytes (an unreadable checksum
    file, read meanwhile) leaves no open file and a helper free for the next read."""
    path = tmp_path / "big.bin"
    content = os.urandom(SHARE_MIN + 5 * CHUNK)
    path.write_bytes(content)
    before = len(os.listdir("/proc/self/fd"))
    with watchdog(15):
        with pytest.raises(KeyError), reading.Hashing(str(path), xxhash.xxh3_128()):
            raise KeyError("the checksum file")
        assert len(os.listdir("/proc/self/fd")) == before
        data, digest = reading.read_hashing(str(path), xxhash.xxh3_128())
    assert data.tobytes() == content and digest == xxhash.xxh3_128_hexdigest(content)
