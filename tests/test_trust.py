"""Results you can trust, tried as a hostile-but-honest user would: corrupted result files,
a killed worker, a full disk and a full record store, code that changed or that git does
not track, single-use results and unsafe task names. Nothing wrong is ever returned, and
afterwards the datastore and the record store agree (`store verify`)."""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import GIT_ENV, SMTTASK, watchdog
from services import unavailable

from smttask import (
    DirtyRepositoryError,
    MemoizedTask,
    RecordedTask,
    RecordStoreError,
    TaskDefinitionError,
    TaskExecutionError,
    provenance,
)
from smttask.maintenance import verify
from smttask.outputs import SIDECAR, reading
from smttask.view import RecordStoreView

TASKS = """
import numpy as np
from smttask import RecordedTask, TaskOutput
from smttask.typing import Array

CALLS = []

class Series(TaskOutput):
    r: Array[float, 1]
    counts: list[float]

@RecordedTask
def series(n: int) -> Series:
    CALLS.append(n)
    r = np.arange(n, dtype=float) + 70
    return r, [float(i) for i in range(n)]
"""


def files(proj, task, output):
    link = proj.root / "data" / task.taskname / f"{task.digest}_{output}"
    return link, link.resolve()


def set_aside(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".quarantined-" in p.name
                  and not p.name.endswith(SIDECAR))


# --- corrupted results -----------------------------------------------------------------

def flip_bit(data: bytes) -> bytes:
    b = bytearray(data)
    b[-1] ^= 0x01  # r[-1]: 77.0 becomes a slightly different float
    return bytes(b)


def other_shape(data: bytes) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, np.arange(3, dtype=float))
    return buf.getvalue()


CORRUPTIONS = {
    "npy: one bit flipped": ("r.npy", flip_bit),
    "npy: truncated": ("r.npy", lambda d: d[: len(d) // 2]),
    "npy: empty": ("r.npy", lambda d: b""),
    "npy: a valid array of another shape": ("r.npy", other_shape),
    "json: a valid list with other values": ("counts.json",
                                             lambda d: json.dumps([9.0] * 8).encode()),
    "json: [NaN] in place of the list": ("counts.json", lambda d: b"[NaN]"),
    "json: not JSON": ("counts.json", lambda d: b"{broken"),
}


@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
def test_a_corrupted_result_is_set_aside_and_recomputed(proj, case, caplog):
    tasks = proj.module(TASKS)
    task = tasks.series(n=8)
    expected = task.run()
    name, corrupt = CORRUPTIONS[case]
    link, real = files(proj, task, name)
    os.chmod(real, 0o644)
    bad = corrupt(real.read_bytes())
    real.write_bytes(bad)
    tasks.CALLS.clear()
    with caplog.at_level(logging.WARNING, logger="smttask"):
        again = tasks.series(n=8).run()
    assert tasks.CALLS == [8]  # ran again: the bad file was never returned
    np.testing.assert_array_equal(again.r, expected.r)
    assert again.counts == expected.counts
    [aside] = set_aside(real.parent)  # kept, under a name no lookup uses
    assert aside.startswith(f"{real.name}.quarantined-")
    assert (real.parent / aside).read_bytes() == bad
    assert any("set aside the result file" in r.message and real.name in r.message
               for r in caplog.records)
    assert link.exists() and link.resolve().read_bytes() != bad
    report = verify()
    assert report.ok, [str(b) for b in report.breaches]


LARGE = 300_000  # 2.4 MB: may be read by two threads at once (reading.SHARE_MIN)


def _flip(at: float):
    def corrupt(data: bytes) -> bytes:
        b = bytearray(data)
        b[min(int(len(b) * at), len(b) - 1)] ^= 0x10
        return bytes(b)
    return corrupt


@pytest.mark.parametrize("reading_in", ["two threads", "one thread"])
@pytest.mark.parametrize(("where", "corrupt"), [
    ("a bit in the first chunk", _flip(0.1)), ("a bit in a middle chunk", _flip(0.5)),
    ("the last byte", _flip(1.0)), ("truncated", lambda d: d[: len(d) - 4096])])
def test_a_corrupted_large_array_is_set_aside_and_recomputed(proj, monkeypatch, reading_in,
                                                             where, corrupt):
    # A large read is shared only while a CPU is idle: both ways are tried here.
    monkeypatch.setattr(reading, "_idle_core", lambda: reading_in == "two threads")
    tasks = proj.module(TASKS)
    expected = tasks.series(n=LARGE).run()
    link, real = files(proj, tasks.series(n=LARGE), "r.npy")
    os.chmod(real, 0o644)
    real.write_bytes(corrupt(real.read_bytes()))
    tasks.CALLS.clear()
    again = tasks.series(n=LARGE).run()
    assert tasks.CALLS == [LARGE], where  # ran again: the bad file was never returned
    np.testing.assert_array_equal(again.r, expected.r)
    assert len(set_aside(real.parent)) == 1
    assert verify().ok
    tasks.CALLS.clear()
    np.testing.assert_array_equal(tasks.series(n=LARGE).run().r, expected.r)
    assert tasks.CALLS == []  # the good file loads, verified, either way


def test_a_forked_child_verifies_large_results_with_its_own_helper_thread(proj, monkeypatch):
    """A process forked after a large verified load (as a worker pool's may be) has no
    helper thread: its loads start one instead of waiting for the parent's."""
    monkeypatch.setattr(reading, "_idle_core", lambda: True)
    tasks = proj.module(TASKS)
    expected = tasks.series(n=LARGE).run()
    tasks.CALLS.clear()
    tasks.series(n=LARGE).run()  # loaded: this process's helper thread runs now
    assert tasks.CALLS == [] and reading._jobs is not None
    pid = os.fork()
    if pid == 0:  # the child: load again, exit 0 if it loaded the right values
        try:
            ok = tasks.series(n=LARGE).run().r[-1] == expected.r[-1] and not tasks.CALLS
            os._exit(0 if ok else 1)
        except BaseException:
            os._exit(2)
    deadline = time.time() + 15
    while (status := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.time() < deadline:
        time.sleep(0.05)
    if status[0] == 0:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        pytest.fail("the forked child waited for a helper thread it does not have")
    assert os.waitstatus_to_exitcode(status[1]) == 0


@pytest.mark.parametrize("fifo", ["result file", "checksum file"])
def test_a_fifo_in_place_of_a_result_or_checksum_file_is_set_aside_not_waited_on(proj, fifo):
    tasks = proj.module(TASKS)
    task = tasks.series(n=8)
    task.run()
    _, real = files(proj, task, "r.npy")
    suffix = "" if fifo == "result file" else SIDECAR
    Path(f"{real}{suffix}").unlink()
    os.mkfifo(f"{real}{suffix}")
    tasks.CALLS.clear()

    with watchdog(20):  # a load waiting on the FIFO raises Hang
        tasks.series(n=8).run()
    assert tasks.CALLS == [8]
    [aside] = set_aside(real.parent)
    assert (real.parent / f"{aside}{suffix}").is_fifo()  # set aside, with its checksum file


def test_a_result_link_to_a_file_outside_the_datastore_never_moves_that_file(proj, tmp_path,
                                                                              caplog):
    """A planted link to a file elsewhere: the file does not verify, and only the link
    goes (quarantine renames files of the output datastore only)."""
    tasks = proj.module(TASKS)
    task = tasks.series(n=8)
    task.run()
    link, _ = files(proj, task, "r.npy")
    outside = tmp_path / "elsewhere.npy"
    outside.write_bytes(b"someone else's file")
    link.unlink()
    link.symlink_to(outside)
    tasks.CALLS.clear()

    with caplog.at_level(logging.WARNING, logger="smttask"):
        assert list(tasks.series(n=8).run().r)[:2] == [70.0, 71.0]
    assert tasks.CALLS == [8]
    assert outside.read_bytes() == b"someone else's file"  # still there, not renamed
    assert any("outside the output datastore" in r.message for r in caplog.records)
    assert link.resolve() != outside


def test_without_checksum_files_only_the_type_is_checked_and_verify_adds_them(proj, caplog):
    tasks = proj.module(TASKS)
    task = tasks.series(n=4)
    task.run()
    _, real = files(proj, task, "r.npy")
    for sidecar in real.parent.glob(f"*{SIDECAR}"):  # as written by earlier versions
        sidecar.unlink()
    with caplog.at_level(logging.WARNING, logger="smttask"):
        assert list(tasks.series(n=4).run().r) == [70.0, 71.0, 72.0, 73.0]
    assert any("no checksum files" in r.message for r in caplog.records)
    report = verify()
    assert {b.kind for b in report.breaches} == {"no-checksum"} and not report.ok
    assert verify(fix=True).ok and verify().ok
    assert Path(f"{real}{SIDECAR}").exists()


def test_verify_reports_and_fixes_what_went_wrong_behind_its_back(proj):
    tasks = proj.module(TASKS)
    for n in (2, 3, 4):
        tasks.series(n=n).run()
    assert verify().ok
    t2, t3, t4 = (tasks.series(n=n) for n in (2, 3, 4))
    _, bad = files(proj, t2, "counts.json")
    os.chmod(bad, 0o644)
    bad.write_bytes(b"[1.0, 2.0]")  # same length, other values
    _, gone = files(proj, t3, "r.npy")
    gone.unlink()
    orphan = proj.root / "data/run_dump/series/.smttask-tmp-999-deadbeef"
    orphan.write_bytes(b"x" * 100)
    report = verify(orphan_age=0)
    kinds = sorted(b.kind for b in report.breaches)
    assert kinds == ["corrupt", "dangling", "missing", "temporary"], report.breaches
    assert not report.ok
    fixed = verify(fix=True, orphan_age=0)
    assert all(b.fixed for b in fixed.breaches) and fixed.ok
    assert not orphan.exists() and set_aside(bad.parent)
    assert verify().ok
    assert list(t4.run().r) == [70.0, 71.0, 72.0, 73.0]
    tasks.CALLS.clear()
    t2.run()
    t3.run()
    assert tasks.CALLS == [2, 3]  # both run again


def test_another_results_file_and_checksum_file_copied_in_are_never_loaded(proj):
    """A result file replaced by another result's, checksum file and all (as a careless
    copy between folders does): each checks out against the other, so the name (which
    holds the digest) and the record must vouch for them too."""
    tasks = proj.module(TASKS)
    t2, t3 = tasks.series(n=2), tasks.series(n=3)
    expected = t2.run()
    t3.run()
    (_, mine), (_, other) = files(proj, t2, "r.npy"), files(proj, t3, "r.npy")
    for suffix in ("", SIDECAR):
        target = Path(f"{mine}{suffix}")
        os.chmod(target, 0o644)
        target.write_bytes(Path(f"{other}{suffix}").read_bytes())

    report = verify()
    [breach] = report.breaches
    assert breach.kind == "corrupt" and breach.where == str(mine)
    assert "no record wrote these bytes" in breach.detail
    tasks.CALLS.clear()
    np.testing.assert_array_equal(tasks.series(n=2).run().r, expected.r)
    assert tasks.CALLS == [2]  # the copied file was set aside, not returned
    assert set_aside(mine.parent) and verify().ok


def test_two_versions_of_one_result_swapped_are_found_by_verify(proj):
    """The ``_N`` versions of one result share its digest, so their checksum files cannot
    tell them apart on load; the records that wrote each path can."""
    tasks = proj.module(TASKS.replace("+ 70", "+ OFFSET") + "\nOFFSET = 70\n")
    tasks.series(n=3).run()
    tasks.OFFSET = 10  # another result for the same inputs, written as a second version
    latest = tasks.series(n=3).run(recompute=True)
    _, second = files(proj, tasks.series(n=3), "r.npy")  # the link points at the latest
    first, later = sorted(second.parent.glob(f"{tasks.series(n=3).digest}_r*.npy"))
    assert later == second and verify().ok
    for suffix in ("", SIDECAR):
        a, b = Path(f"{first}{suffix}"), Path(f"{second}{suffix}")
        os.chmod(a, 0o644)
        os.chmod(b, 0o644)
        data = a.read_bytes()
        a.write_bytes(b.read_bytes())
        b.write_bytes(data)

    report = verify()
    assert sorted(x.where for x in report.breaches) == sorted([str(first), str(second)])
    assert all("no record wrote these bytes" in x.detail for x in report.breaches)
    assert verify(fix=True).breaches and verify().ok
    tasks.CALLS.clear()
    np.testing.assert_array_equal(tasks.series(n=3).run().r, latest.r)
    assert tasks.CALLS == [3]  # the swapped file was set aside, and the task ran again


def test_records_hold_each_outputs_xxh3_and_older_records_still_verify(proj):
    import sqlite3

    tasks = proj.module(TASKS)
    task = tasks.series(n=4)
    task.run()
    [record] = RecordStoreView()
    keys = provenance.output_keys(record.project)[record.label]
    for name in ("r.npy", "counts.json"):
        _, real = files(proj, task, name)
        side = json.loads(Path(f"{real}{SIDECAR}").read_text())
        assert [k.xxh3 for k in keys if k.path.endswith(name)] == [side["xxh3"]]
    # A store written before records held it: the checksum files' SHA-1s vouch instead.
    with contextlib.closing(sqlite3.connect(proj.root / ".smt/records")) as db, db:
        db.execute("UPDATE django_store_datakey SET metadata = '{\"size\": 1}'")
    assert all(k.xxh3 is None for k in provenance.output_keys(record.project)[record.label])
    assert verify().ok


def test_store_verify_command(proj):
    tasks = proj.module(TASKS)
    task = tasks.series(n=3)
    task.run()
    assert proj.cli("store", "verify").returncode == 0
    _, real = files(proj, task, "r.npy")
    os.chmod(real, 0o644)
    real.write_bytes(real.read_bytes()[:-8])
    out = proj.cli("store", "verify")
    assert out.returncode == 1 and out.stdout.startswith(f"corrupt: {real}")
    assert proj.cli("store", "verify", "--fix").returncode == 0
    assert proj.cli("store", "verify").returncode == 0


# --- a worker killed mid-write, a full disk, a full record store --------------------------

KILLER = """
import os, signal, threading, time
from pathlib import Path
import numpy as np
from smttask import RecordedTask
from smttask.typing import Array

@RecordedTask
def big(n: int) -> Array[float, 1]:
    folder = Path("data/run_dump/big")
    def watch():  # kill -9 this process as soon as its output file is being written
        while True:
            if folder.is_dir() and any(p.name.startswith(".smttask-tmp-")
                                       for p in folder.iterdir()):
                os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(0.0005)
    threading.Thread(target=watch, daemon=True).start()
    return np.ones(n)

@RecordedTask
def nap(x: int) -> int:
    time.sleep(600)
    return x
"""


def test_kill_9_mid_write_leaves_a_lost_record_that_verify_repairs(proj):
    tasks = proj.module(KILLER)
    tasks.big(n=20_000_000).save(proj.root / "tasks")  # 160 MB: the kill lands mid-write
    out = proj.cli("run", "-n", "2", "tasks")
    assert out.returncode == 1 and "worker process died" in out.stderr
    folder = proj.root / "data/run_dump/big"
    assert [p for p in folder.iterdir() if p.name.startswith(".smttask-tmp-")]
    assert not (proj.root / "data/big").exists()  # nothing linked
    [record] = RecordStoreView()
    assert record.status == "lost" and "is gone" in record.lost_because()
    assert len(RecordStoreView().filter.status("lost")) == 1
    assert "lost" in proj.cli("store", "list", "--status", "lost").stdout
    report = verify(orphan_age=0)
    assert sorted(b.kind for b in report.breaches) == ["lost", "temporary"]
    assert verify(fix=True, orphan_age=0).ok
    [record] = RecordStoreView()
    assert record.status == "killed" and "Lost: its process" in record.outcome
    assert not [p for p in folder.iterdir() if p.name.startswith(".smttask-tmp-")]


def test_a_running_record_is_not_lost(proj):
    tasks = proj.module(KILLER)
    path = tasks.nap(x=1).save(proj.root / "tasks")
    proc = subprocess.Popen([SMTTASK, "run", "-n", "1", str(path)], cwd=proj.root,
                            env={**os.environ, **GIT_ENV, "PYTHONPATH": str(proj.root)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while time.time() < deadline and not provenance.labels(proj.project):
            time.sleep(0.2)
        [record] = RecordStoreView()
        assert record.status == "running" and record.lost_because() == ""
        assert f", pid {proc.pid}" in record.outcome or ", pid " in record.outcome
    finally:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def small_filesystem(path: Path, size: str):
    """A tmpfs of ``size`` at ``path`` (None when this machine does not allow mounting)."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs",
                              str(path)], capture_output=True).returncode == 0
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


def no_temporaries(folder: Path) -> bool:
    return not folder.exists() or not [p for p in folder.rglob(".smttask-tmp-*")]


def test_a_full_disk_fails_the_run_and_leaves_nothing(proj, monkeypatch):
    tasks = proj.module(TASKS)
    out = proj.root / "data/run_dump"
    with small_filesystem(out, "256k") as mounted, monkeypatch.context() as patch:
        if not mounted:  # no tmpfs here: naming the result fails as on a full disk
            real_link = os.link

            def full(src, dst, *args, **kwargs):
                if "run_dump" in os.fspath(dst):
                    raise OSError(errno.ENOSPC, "No space left on device")
                return real_link(src, dst, *args, **kwargs)

            patch.setattr(os, "link", full)
        with pytest.raises(TaskExecutionError, match="No space left on device"):
            tasks.series(n=100_000).run()  # 800 kB of output
        assert no_temporaries(out)
        assert not (proj.root / "data/series").exists()
        [record] = RecordStoreView()
        assert record.status == "crashed" and "No space left" in record.outcome
    assert list(tasks.series(n=3).run().r) == [70.0, 71.0, 72.0]
    assert verify().ok


STORE_FILLER = """
from pathlib import Path
from smttask import RecordedTask

@RecordedTask
def fills(x: int) -> int:
    if x != 1:
        return x
    with open(Path(__file__).parents[1] / "store" / "filler", "wb") as f:
        try:
            while True:
                f.write(b"x" * 65536)
                f.flush()
        except OSError:
            pass
    print("x" * 1_000_000)  # the final save must grow the store (its log) on a full disk
    return x
"""


def test_a_full_record_store_leaves_no_linked_result(proj):
    store = proj.root / "store"
    with small_filesystem(store, "2m") as mounted:
        if not mounted:
            unavailable("this machine cannot mount a tmpfs for the record store")
        text = (proj.root / "smttask.toml").read_text()
        proj.write("smttask.toml", text + f'\n[record_store]\nurl = "{store}/records"\n')
        proj.write(".gitignore", ".smt/\ndata/\ntasks/\n__pycache__/\nstore/\n")
        tasks = proj.module(STORE_FILLER)
        with pytest.raises(RecordStoreError, match="full"):
            tasks.fills(x=1).run()
        assert not (proj.root / "data/fills").exists()  # the result was not linked
        folder = proj.root / "data/run_dump/fills"
        assert not folder.exists() or not any(folder.iterdir())  # nor kept
        (store / "filler").unlink()
        [record] = RecordStoreView()
        assert record.status == "running"  # its process is alive: not lost (yet)
        assert tasks.fills(x=2).run() == 2  # the store works again


# --- stale code, untracked code ------------------------------------------------------------

ANALYZE = """
from smttask import RecordedTask

@RecordedTask
def analyze(x: float) -> float:
    return x * 2
"""


def test_a_changed_task_body_is_noticed(proj, caplog):
    tasks = proj.module(ANALYZE)
    tasks.analyze(x=1.0).run()
    first = proj.git("rev-parse", "HEAD").strip()
    path = tasks.analyze(x=1.0).save(proj.root / "tasks")
    for name in [m for m in list(__import__("sys").modules) if m.startswith(proj.pkg)]:
        del __import__("sys").modules[name]
    tasks = proj.module(ANALYZE.replace("x * 2", "x * 3"))  # same digest, other code
    second = proj.git("rev-parse", "HEAD").strip()
    status = proj.cli("status", str(path)).stdout
    assert f"on disk, but analyze changed since it was computed (commit {first[:7]} → " \
           f"{second[:7]})" in status
    assert "analyze changed since it was computed" in proj.cli("why", str(path)).stdout
    with caplog.at_level(logging.WARNING, logger="smttask"):
        assert tasks.analyze(x=1.0).run() == 2.0  # the default: warn, and load
    assert any("earlier version of its code" in r.message for r in caplog.records)
    out = proj.cli("run", "--recompute-stale", "tasks")
    assert out.returncode == 0 and "1 ran" in out.stderr
    assert tasks.analyze(x=1.0).run() == 3.0
    assert "it will be loaded, not run" in proj.cli("status", str(path)).stdout


def test_on_code_change_recompute(proj):
    proj.write("smttask.toml", (proj.root / "smttask.toml").read_text()
               + '\n[cache]\non_code_change = "recompute"\n')
    tasks = proj.module(ANALYZE)
    assert tasks.analyze(x=2.0).run() == 4.0
    for name in [m for m in list(__import__("sys").modules) if m.startswith(proj.pkg)]:
        del __import__("sys").modules[name]
    tasks = proj.module(ANALYZE.replace("x * 2", "x * 5"))
    assert tasks.analyze(x=2.0).run() == 10.0


UNTRACKED_TOP = """
from smttask import RecordedTask

@RecordedTask
def uses_helper(x: int) -> int:
    import helper_top
    return helper_top.twice(x)
"""


def test_untracked_code_blocks_a_recorded_run(proj, monkeypatch):
    monkeypatch.delitem(sys.modules, "helper_top", raising=False)
    tasks = proj.module(UNTRACKED_TOP)
    proj.write("helper_top.py", "def twice(x):\n    return 2 * x\n")  # never added to git
    with pytest.raises(DirtyRepositoryError, match="helper_top.py"):
        tasks.uses_helper(x=2).run()
    [record] = RecordStoreView()
    assert record.status == "crashed" and "does not track" in record.outcome
    assert not (proj.root / "data/uses_helper").exists()
    proj.commit("add the helper")
    assert tasks.uses_helper(x=2).run() == 4


def test_ignored_code_inside_the_package_blocks_too(proj):
    proj.write(".gitignore", ".smt/\ndata/\ntasks/\n__pycache__/\nsecret_*.py\n")
    proj.write(f"{proj.pkg}/secret_helper.py", "K = 3\n")
    tasks = proj.module(f"""
        from smttask import RecordedTask
        from {proj.pkg} import secret_helper

        @RecordedTask
        def times_k(x: int) -> int:
            return x * secret_helper.K
    """)
    with pytest.raises(DirtyRepositoryError, match="secret_helper.py"):
        tasks.times_k(x=2).run()
    tasks.times_k(x=2).save(proj.root / "tasks")
    out = proj.cli("run", "tasks")
    assert out.returncode == DirtyRepositoryError.exit_code and "secret_helper.py" in out.stderr


def test_untracked_code_goes_into_the_diff_under_store_diff(proj, monkeypatch):
    monkeypatch.delitem(sys.modules, "helper_top", raising=False)
    proj.write("smttask.toml", (proj.root / "smttask.toml").read_text().replace(
        "[repo]", '[repo]\non_changed = "store-diff"'))
    proj.commit("store-diff")
    tasks = proj.module(UNTRACKED_TOP)
    proj.write("helper_top.py", "def twice(x):\n    return 2 * x\n")
    assert tasks.uses_helper(x=3).run() == 6
    rec = provenance.get_record(proj.project, RecordStoreView().latest.label)
    assert "+++ b/helper_top.py" in rec.diff and "+    return 2 * x" in rec.diff


def test_code_in_a_dirty_directory_is_tolerated_and_listed(proj, monkeypatch):
    monkeypatch.delitem(sys.modules, "plot_helper", raising=False)
    tasks = proj.module("""
        import sys
        from pathlib import Path
        from smttask import RecordedTask

        @RecordedTask
        def titled(x: int) -> str:
            sys.path.insert(0, str(Path(__file__).parents[1] / "reports"))
            import plot_helper
            return plot_helper.title() * x
    """)
    proj.write("reports/plot_helper.py", "def title():\n    return 'T'\n")  # not in git
    assert tasks.titled(x=2).run() == "TT"
    assert "reports/plot_helper.py" in RecordStoreView().latest.outcome


# --- single-use results, task names -------------------------------------------------------

def test_an_iterator_is_never_shared_between_consumers(proj):
    tasks = proj.module("""
        from collections.abc import Iterator
        from smttask import MemoizedTask, RecordedTask

        @MemoizedTask
        def numbers(n: int) -> Iterator[int]:
            return iter(range(n))

        @RecordedTask
        def total(xs: Iterator[int], scale: float) -> float:
            return float(sum(xs)) * scale
    """)
    source = tasks.numbers(n=9)
    assert tasks.total(xs=source, scale=1.0).run() == 36.0
    assert tasks.total(xs=source, scale=2.0).run() == 72.0  # not an exhausted iterator
    assert [r.status for r in RecordStoreView()] == ["finished", "finished"]
    assert sorted(r.outcome for r in RecordStoreView()) == ["", ""]


@pytest.mark.parametrize("name", ["../escape", "/abs/path", "a/b", "..", ".hidden", "x\x00y"])
def test_unsafe_task_names_are_refused_at_decoration(name):
    def f(x: int) -> int:
        return x

    f.__qualname__ = name
    with pytest.raises(TaskDefinitionError, match="cannot be a task name"):
        RecordedTask(f)
    with pytest.raises(TaskDefinitionError, match="cannot be a task name"):
        MemoizedTask(f)
