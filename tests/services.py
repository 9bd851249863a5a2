"""Real services for the tests that need them: a PostgreSQL server, a SLURM cluster.

Each is started by a session fixture from the machine's Debian packages (installed by
.ci/run). Locally a missing service skips its tests; in CI (CI=true) it fails them.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest


def unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"service unavailable in CI: {reason}")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_postgres(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


class Postgres:
    """A private PostgreSQL server on 127.0.0.1 (trust auth, fsync off)."""

    def __init__(self) -> None:
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not bins:
            unavailable("PostgreSQL is not installed (apt-get install postgresql)")
        self.bin = Path(bins[-1]).parent
        self.dir = Path(tempfile.mkdtemp(prefix="smttask-pg-"))
        if os.geteuid() == 0:
            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                unavailable("no 'postgres' user to run the server as")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        self.port = free_port()
        data = self.dir / "data"
        proc = _as_postgres([str(self.bin / "initdb"), "-D", str(data), "-A", "trust",
                             "-U", "postgres", "--no-sync"])
        if proc.returncode:
            unavailable(f"initdb failed: {proc.stderr.strip()[-300:]}")
        opts = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c max_connections=100")
        proc = _as_postgres([str(self.bin / "pg_ctl"), "-D", str(data), "-o", opts, "-w",
                             "-l", str(self.dir / "log"), "start"], timeout=60)
        if proc.returncode:
            unavailable(f"PostgreSQL did not start: {proc.stderr.strip()[-300:]}")
        self.data = data

    def createdb(self, name: str) -> str:
        proc = _as_postgres([str(self.bin / "createdb"), "-h", "127.0.0.1", "-p",
                             str(self.port), "-U", "postgres", name])
        assert proc.returncode == 0, proc.stderr
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def sql(self, statement: str, db: str = "postgres") -> str:
        proc = _as_postgres([str(self.bin / "psql"), "-h", "127.0.0.1", "-p", str(self.port),
                             "-U", "postgres", "-d", db, "-tAc", statement])
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    def stop(self) -> None:
        _as_postgres([str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate",
                      "stop"], timeout=60)
        shutil.rmtree(self.dir, ignore_errors=True)


def wait_for(check, timeout: float = 30.0, every: float = 0.3) -> bool:
    end = time.time() + timeout
    while time.time() < end:
        if check():
            return True
        time.sleep(every)
    return False
