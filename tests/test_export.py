"""`smttask export snakemake`, run by real Snakemake."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from smttask.view import RecordStoreView

BIN = Path(sys.executable).parent

TASKS = """
from smttask import RecordedTask

@RecordedTask
def base(n: int) -> float:
    return float(n)

@RecordedTask
def plus(y: float, z: float) -> float:
    return y + z
"""


def test_snakemake_runs_the_exported_batch(proj):
    if shutil.which("snakemake", path=str(BIN)) is None:
        pytest.fail("snakemake is a test dependency (pip install -e '.[test]')")
    tasks = proj.module(TASKS)
    for z in (1.0, 3.0):
        tasks.plus(y=tasks.base(n=10), z=z).save(proj.root / "tasks")
    env = {**os.environ, "PYTHONPATH": str(proj.root), "PATH": f"{BIN}:{os.environ['PATH']}"}
    out = proj.cli("export", "snakemake", "tasks")
    assert out.returncode == 0, out.stderr
    text = (proj.root / "Snakefile").read_text()
    assert text.count("\nrule ") == 4  # all + 2 plus + 1 shared upstream
    assert "base__" in text  # the upstream task got its own task file
    run = subprocess.run([str(BIN / "snakemake"), "--cores", "2", "-q"], cwd=proj.root,
                         capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    rs = RecordStoreView()
    assert len(rs.filter.task("base")) == 1  # the shared upstream ran once
    assert len(rs.filter.task("plus").filter.status("finished")) == 2
    assert tasks.plus(y=tasks.base(n=10), z=3.0).run() == 13.0
    again = subprocess.run([str(BIN / "snakemake"), "--cores", "2"], cwd=proj.root,
                           capture_output=True, text=True, env=env, timeout=300)
    assert "Nothing to be done" in again.stdout + again.stderr
