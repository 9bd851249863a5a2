#!/usr/bin/env python
"""Per-task overhead of the SLURM executor against the local pool (same run).

Starts the tests' single-node SLURM cluster (root, slurm-wlm and munge installed; see
tests/services.py), builds a throw-away project with N trivial recorded task files, and
times `smttask.batch.run(paths, jobs=2)` (local, two workers) and
`batch.run(paths, executor="slurm")` on fresh digests each: one task per array element,
N per element, and `--tasks-per-job auto` (the default). Each SLURM array element is a new
Python process (imports included), so its overhead is about one interpreter start per
element, spread over the node's CPUs. The cluster schedules pending jobs every second
(`SchedulerParameters=sched_interval=1,batch_sched_delay=0`, as a high-throughput site
would); with SLURM's defaults an array waits 1–2.5 s more before it starts.

Target (issue 15): with `auto` packing, the per-task overhead ≤ 2× the local pool's.
Two figures are printed. The whole batch of N tasks against the local pool's includes
SLURM's fixed cost per batch (the scheduler's next pass, 0–1 s; one interpreter start
per element, about 0.6 s), which no packing can spread. The cost of each further task is
the slope between batches of N and 5N task files, for each executor: what packing
decides (one task per element costs about 0.6 s per task here).

Usage: python benchmarks/bench_slurm.py [-n 200] [--per-job 20] [--quick] [--keep]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Literal

HERE = Path(__file__).resolve().parent
#: Runs of the local pool and of `auto` packing, interleaved; the best of each is compared.
REPEATS = 3
#: The larger batch, in multiples of N, for the cost of each further task.
LARGER = 5


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=200, help="task files per executor")
    parser.add_argument("--per-job", type=int, default=20, help="tasks per array element "
                        "for the chunked run")
    parser.add_argument("--keep", action="store_true", help="keep the temporary project")
    parser.add_argument("--quick", action="store_true", help="skip the one-task-per-element "
                        "run (about five minutes for 200 tasks)")
    args = parser.parse_args()
    sys.path.insert(0, str(HERE.parent / "tests"))
    sys.path.insert(0, str(HERE))
    import pytest
    from bench_runner import make_project
    from services import Slurm  # the tests' cluster

    try:
        cluster = Slurm()
    except (pytest.skip.Exception, pytest.fail.Exception) as exc:
        print(f"SLURM executor vs local pool: not measured ({exc})")
        return 0
    os.environ["SLURM_CONF"] = str(cluster.conf)
    tmp = Path(tempfile.mkdtemp(prefix="smttask-bench-slurm-"))
    try:
        root = tmp / "proj"
        make_project(root)
        os.chdir(root)
        sys.path.insert(0, str(root))
        from benchpkg.tasks import inc

        from smttask import batch as batches
        from smttask.config import SlurmSection

        def files(batch: str, n: int) -> list[Path]:
            return [inc(x=i, batch=batch).save(root / "tasks" / batch) for i in range(n)]

        warm = files("warm", 4)
        batches.run(warm, jobs=2)  # creates the store, warms the imports
        runs: list[tuple[str, str, int | Literal["auto"]]] = [
            ("local -n 2", "local", 1), ("slurm", "slurm", 1),
            (f"slurm --tasks-per-job {args.per_job}", "slurm", args.per_job),
            ("slurm --tasks-per-job auto", "slurm", "auto")]
        if args.quick:
            runs = [run for run in runs if run[0] != "slurm"]
        # The two compared runs are repeated, interleaved, and their best kept (as timeit
        # does): a batch waits 0-1 s for the scheduler's next pass, a whole task's worth.
        # Each also runs on LARGER times as many files, for the cost of each further task.
        times: dict[tuple[str, int], list[float]] = {}
        compared = {"local -n 2", "slurm --tasks-per-job auto"}
        for rep in range(REPEATS):
            for label, executor, per_job in runs:
                for n in (args.n, LARGER * args.n) if label in compared else (args.n,):
                    if rep and label not in compared:
                        continue
                    paths = files(f"{label.replace(' ', '_')}_{n}_{rep}", n)
                    options = SlurmSection(time="10:00", tasks_per_job=per_job)
                    t0 = time.perf_counter()
                    batch = batches.run(paths, jobs=2, executor=executor, slurm=options)
                    times.setdefault((label, n), []).append(time.perf_counter() - t0)
                    assert batch.ok and batch.count("ran") == n, (label, batch.count("ran"))
        best = {key: min(samples) for key, samples in times.items()}
        local = best["local -n 2", args.n]
        print(f"SLURM executor vs local pool: {args.n} recorded trivial task files, "
              f"{os.cpu_count()} CPUs, one single-node cluster scheduling every second\n")
        print(f"{'executor':<28}{'total':>9}{'per task':>11}{'overhead/task':>15}  runs")
        for (label, n), total in best.items():
            if n != args.n:
                continue
            extra = (total - local) / n * 1e3
            runs_s = ", ".join(f"{t:.2f}" for t in times[label, n])
            print(f"{label:<28}{total:>8.1f}s{total / n * 1e3:>9.1f}ms{extra:>13.0f}ms"
                  f"  {runs_s}")
        auto = "slurm --tasks-per-job auto"
        whole = best[auto, args.n] / local
        print(f"\nthe whole batch of {args.n}, best of {REPEATS}: {whole:.2f}× the local "
              f"pool's time, of which {best[auto, args.n] - local:.2f} s is SLURM's fixed "
              "cost per batch (the scheduler's next pass, one interpreter per element)")
        slope = {label: (best[label, LARGER * args.n] - best[label, args.n])
                 / ((LARGER - 1) * args.n) for label in compared}
        for label in sorted(compared):
            runs_s = ", ".join(f"{t:.2f}" for t in times[label, LARGER * args.n])
            print(f"  {label:<28} {LARGER * args.n} files: {best[label, LARGER * args.n]:.2f} s "
                  f"({runs_s}); each further task {slope[label] * 1e3:.1f} ms")
        ratio = slope[auto] / slope["local -n 2"]
        print(f"auto packing: each further task costs {ratio:.2f}× the local pool's "
              f"(target ≤ 2×): {'PASS' if ratio <= 2 else 'FAIL'}")
    finally:
        cluster.stop()
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
