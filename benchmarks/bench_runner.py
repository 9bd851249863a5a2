#!/usr/bin/env python
"""The batch runner's overhead, against running the same task files in a loop (same run).

Goals (issue: smttask run):
1. runner overhead per task file, 1,000 trivial task files, recording off, two workers,
   against `Task.from_desc(path).run(record=False)` in a loop in one process: ≤ 5 ms;
2. with recording on, the runner's cost per task ≤ 1.25× the runtime's recording cost
   (the same loop with recording on), each on fresh digests.

Usage: python benchmarks/bench_runner.py [--quick] [--check] [--keep]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

TASKS = textwrap.dedent('''
    from smttask import RecordedTask

    @RecordedTask
    def inc(x: int, batch: str) -> int:
        return x + 1
''')


def make_project(root: Path) -> None:
    (root / "benchpkg").mkdir(parents=True)
    (root / "benchpkg/__init__.py").write_text("")
    (root / "benchpkg/tasks.py").write_text(TASKS)
    (root / ".gitignore").write_text(".smt/\ndata/\ntasks/\n")
    (root / "smttask.toml").write_text('[project]\nname = "bench"\n')
    for cmd in (["init", "-q"], ["add", "-A"],
                ["-c", "user.name=b", "-c", "user.email=b@example.org", "commit", "-qm", "b"]):
        subprocess.run(["git", *cmd], cwd=root, check=True, capture_output=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer files and repeats")
    parser.add_argument("--check", action="store_true", help="exit 1 if a goal fails")
    parser.add_argument("--keep", action="store_true", help="keep the temporary project")
    args = parser.parse_args()
    n_plain, n_rec, repeats = (300, 40, 1) if args.quick else (1000, 100, 3)
    tmp = Path(tempfile.mkdtemp(prefix="smttask-bench-runner-"))
    root = tmp / "proj"
    make_project(root)
    os.chdir(root)
    sys.path.insert(0, str(root))
    from benchpkg.tasks import inc

    from smttask import Task, runner

    def files(batch: str, n: int) -> list[Path]:
        return [inc(x=i, batch=batch).save(root / "tasks" / batch) for i in range(n)]

    def loop(paths: list[Path], record: bool) -> None:
        for p in paths:
            Task.from_desc(p).run(record=record)

    rows, info = [], []
    runner.run(files("warm", 4), jobs=2)  # the store, the imports, the forkserver
    # 1. recording off: the same files each repeat (nothing is written).
    plain = files("plain", n_plain)
    t_loop, t_pool = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        loop(plain, record=False)
        t_loop.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        batch = runner.run(plain, jobs=2, record=False)
        t_pool.append(time.perf_counter() - t0)
        assert batch.ok and batch.count("ran") == n_plain
    a, b = statistics.median(t_pool), statistics.median(t_loop)
    overhead = (a - b) / n_plain
    rows.append(("1", f"runner overhead/task, {n_plain} files, -n 2, no record",
                 overhead * 1e3, "ms", "≤ 5 ms", overhead <= 0.005))
    info.append(f"runner {a:.2f} s vs loop {b:.2f} s for {n_plain} files")
    t0 = time.perf_counter()
    runner.run(plain[:2], jobs=2, record=False)
    info.append(f"pool start-up + 2 files: {(time.perf_counter() - t0) * 1e3:.0f} ms")
    exe = str(Path(sys.executable).with_name("smttask"))
    env = {**os.environ, "PYTHONPATH": str(root)}
    t0 = time.perf_counter()
    subprocess.run([exe, "-q", "run", "-n", "2", "--no-record", "tasks/plain"], cwd=root,
                   env=env, check=True, capture_output=True)
    info.append(f"CLI `smttask run -n 2 --no-record` on {n_plain} files: "
                f"{time.perf_counter() - t0:.2f} s")
    # 2. recording on: fresh digests for every measurement.
    rec_loop, rec_pool = [], []
    for r in range(repeats):
        paths = files(f"loop{r}", n_rec)
        t0 = time.perf_counter()
        loop(paths, record=True)
        rec_loop.append((time.perf_counter() - t0) / n_rec)
        paths = files(f"pool{r}", n_rec)
        t0 = time.perf_counter()
        batch = runner.run(paths, jobs=2)
        rec_pool.append((time.perf_counter() - t0) / n_rec)
        assert batch.ok and batch.count("ran") == n_rec
    a, b = statistics.median(rec_pool), statistics.median(rec_loop)
    rows.append(("2", f"recorded task via the runner, {n_rec} files, -n 2", a / b, "×",
                 "≤ 1.25×", a / b <= 1.25))
    info.append(f"recorded: runner {a * 1e3:.1f} ms/task vs loop {b * 1e3:.1f} ms/task "
                "(store writes are serialised by the lock)")
    print(f"smttask runner benchmarks: Python {sys.version.split()[0]}, {os.cpu_count()} CPUs,"
          f" medians of {repeats}\n")
    print(f"{'goal':<5}{'what':<52}{'value':>10}  {'target':<9}result")
    for goal, what, value, unit, target, ok in rows:
        print(f"{goal:<5}{what:<52}{value:>8.2f}{unit:<2}  {target:<9}{'PASS' if ok else 'FAIL'}")
    print()
    for line in info:
        print(f"- {line}")
    failed = sum(not r[-1] for r in rows)
    print(f"\n{len(rows) - failed}/{len(rows)} goals met")
    if args.keep:
        print(f"kept {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failed and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
