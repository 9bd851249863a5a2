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

    def role_with_password(self, role: str, password: str, db: str) -> str:
        """A login role that must give ``password`` (every other role is trusted), owning
        ``db``; the URL of ``db`` for it, without the password."""
        hba = self.data / "pg_hba.conf"
        hba.write_text(f"host all {role} 127.0.0.1/32 scram-sha-256\n" + hba.read_text())
        self.sql(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
        self.sql(f"ALTER DATABASE {db} OWNER TO {role}; SELECT pg_reload_conf()")
        return f"postgresql://{role}@127.0.0.1:{self.port}/{db}"

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


class Slurm:
    """A single-node SLURM cluster (slurmctld and slurmd as root, munge auth), set to
    schedule pending jobs at once (the main scheduler every second, no batch delay) as a
    high-throughput site would: with the defaults an array waits 1–2.5 s to start."""

    def __init__(self) -> None:
        for tool in ("slurmctld", "slurmd", "munged", "sbatch", "squeue"):
            if shutil.which(tool) is None:
                unavailable(f"{tool} is not installed (apt-get install slurm-wlm munge)")
        if os.geteuid() != 0:
            unavailable("a test SLURM cluster needs root (slurmctld and slurmd)")
        self._start_munge()
        self.dir = Path(tempfile.mkdtemp(prefix="smttask-slurm-"))
        for sub in ("state", "spool", "log"):
            (self.dir / sub).mkdir()
        host = socket.gethostname().split(".")[0]
        cpus = os.cpu_count() or 1
        with open("/proc/meminfo") as f:
            mem_mb = int(int(f.readline().split()[1]) / 1024 * 0.8)
        d = self.dir
        self.conf = d / "slurm.conf"
        self.conf.write_text(f"""\
ClusterName=smttasktest
SlurmctldHost={host}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1,batch_sched_delay=0,sched_min_interval=0
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmctldLogFile={d}/log/slurmctld.log
SlurmdLogFile={d}/log/slurmd.log
SlurmctldPort={free_port()}
SlurmdPort={free_port()}
ReturnToService=2
MinJobAge=10
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
NodeName={host} CPUs={cpus} RealMemory={mem_mb} State=UNKNOWN
PartitionName=test Nodes={host} Default=YES MaxTime=INFINITE State=UP
""")
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}
        for daemon in ("slurmctld", "slurmd"):
            proc = subprocess.run([daemon, "-f", str(self.conf)], env=self.env,
                                  capture_output=True, text=True)
            if proc.returncode:
                self.stop()
                unavailable(f"{daemon} did not start: {proc.stderr.strip()[-300:]}")
        ok = wait_for(lambda: "idle" in subprocess.run(
            ["sinfo", "-h", "-o", "%T"], env=self.env, capture_output=True, text=True).stdout,
            timeout=60)
        if not ok:
            log = (d / "log/slurmctld.log").read_text()[-500:]
            self.stop()
            unavailable(f"the SLURM node never became idle: {log}")

    @staticmethod
    def _start_munge() -> None:
        def works() -> bool:
            enc = subprocess.run(["munge", "-n"], capture_output=True)
            return enc.returncode == 0 and subprocess.run(
                ["unmunge"], input=enc.stdout, capture_output=True).returncode == 0

        if works():
            return
        for folder in ("/run/munge", "/var/log/munge", "/var/lib/munge"):
            os.makedirs(folder, exist_ok=True)
            shutil.chown(folder, "munge", "munge")
        if not Path("/etc/munge/munge.key").exists():
            subprocess.run(["runuser", "-u", "munge", "--", "mungekey", "--create"],
                           capture_output=True)
        subprocess.run(["runuser", "-u", "munge", "--", "munged"], capture_output=True)
        if not wait_for(works, timeout=15):
            unavailable("munged did not start")

    def stop(self) -> None:
        subprocess.run(["scancel", "--full", "-u", "root"], env=self.env, capture_output=True)
        for name in ("slurmd", "slurmctld"):
            pidfile = self.dir / f"{name}.pid"
            if pidfile.exists():
                try:
                    os.kill(int(pidfile.read_text().strip()), 15)
                except (ProcessLookupError, ValueError):
                    pass
        time.sleep(0.5)
        shutil.rmtree(self.dir, ignore_errors=True)
