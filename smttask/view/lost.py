"""Lost runs: a record still marked running whose process is gone."""

from __future__ import annotations

import os
import re
import socket
from datetime import UTC, datetime

_RUNNING = re.compile(r"Running on host (?P<host>\S+), pid (?P<pid>\d+)"
                      r"(?:, SLURM job (?P<job>[\w.]+))?")


def lost_because(outcome: str, started: datetime, lost_after_hours: float) -> str:
    """Why a record still marked running has no process any more ('' if it may run).

    On the host that ran it, the process is looked up (its pid, started before the
    record); a SLURM job is looked up in the queue; otherwise a run older than
    ``lost_after_hours`` counts as lost.
    """
    m = _RUNNING.match(outcome)
    age = (datetime.now(UTC) - started).total_seconds() / 3600
    if m is None:
        return f"no process is named and it started {age:.0f} h ago" \
            if age > lost_after_hours else ""
    if m["host"] == socket.gethostname():
        pid = int(m["pid"])
        return "" if _alive(pid, started) else f"its process {pid} on {m['host']} is gone"
    if m["job"]:
        queued = _slurm_job_queued(m["job"])
        if queued is not None:
            return "" if queued else f"its SLURM job {m['job']} is no longer queued or running"
    if age > lost_after_hours:
        return f"it started on {m['host']} {age:.0f} h ago, more than the {lost_after_hours:g} h " \
            "after which a run from another host counts as lost"
    return ""


def _alive(pid: int, since: datetime) -> bool:
    """True if process ``pid`` exists and started before ``since`` (not a reused pid)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        with open(f"/proc/{pid}/stat") as f:
            ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/stat") as f:
            boot = next(int(line.split()[1]) for line in f if line.startswith("btime"))
    except (OSError, ValueError, IndexError, StopIteration):
        return True  # no /proc: trust the pid
    started = boot + ticks / os.sysconf("SC_CLK_TCK")
    return started <= since.timestamp() + 2


def _slurm_job_queued(job: str) -> bool | None:
    """Whether SLURM still knows the job as queued or running; None if it cannot say."""
    import subprocess

    try:
        proc = subprocess.run(["squeue", "-h", "-o", "%i", "-j", job], capture_output=True,
                              text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return False if "Invalid job id" in proc.stderr else None
    return bool(proc.stdout.strip())

