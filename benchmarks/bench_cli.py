"""CLI start-up and project creation, against a bare click program (same run).

Goals (issue: project init):
- `smttask --help` and `smttask project --help` ≤ 2× a bare click program with the same
  commands (lazy imports);
- `smttask project init --no-input` of the package template ≤ 2 s.

Usage: python benchmarks/bench_cli.py [--quick] [--check]
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

BARE = textwrap.dedent('''
    import click

    @click.group()
    @click.option("-v", "--verbose", count=True)
    @click.option("-q", "--quiet", is_flag=True)
    def main(verbose, quiet):
        """Bare twin of the smttask CLI."""

    @main.group()
    def project():
        """Create and configure a project."""

    @project.command()
    @click.argument("directory", default=".")
    @click.option("--name")
    @click.option("--template")
    @click.option("--input")
    @click.option("--output")
    @click.option("--dirty", multiple=True)
    @click.option("--on-changed")
    @click.option("--record-store")
    @click.option("--git/--no-git", default=None)
    @click.option("--yes", is_flag=True)
    @click.option("--no-input", is_flag=True)
    def init(**kw):
        """Set up a project."""

    @project.group()
    def dirty():
        """Dirty directories."""

    @dirty.command()
    @click.argument("dirs", nargs=-1)
    def add(dirs):
        """Add."""

    @dirty.command()
    @click.argument("dirs", nargs=-1)
    def remove(dirs):
        """Remove."""

    @dirty.command("list")
    def list_():
        """List."""

    @project.command()
    def info():
        """Info."""

    @main.command()
    @click.argument("paths", nargs=-1)
    @click.option("-n", "--jobs", type=int)
    def run(paths, jobs):
        """Run task files."""

    if __name__ == "__main__":
        main()
''')


def timed(cmd: list[str], n: int, cwd: str | None = None, setup=None) -> float:
    times = []
    for _ in range(n):
        if setup:
            setup()
        t0 = time.perf_counter()
        subprocess.run(cmd, cwd=cwd, check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--check", action="store_true", help="exit 1 if a goal fails")
    args = parser.parse_args()
    n = 5 if args.quick else 15
    smttask = str(Path(sys.executable).with_name("smttask"))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        bare = Path(tmp) / "bare_cli.py"
        bare.write_text(BARE)
        for label, ours, theirs in [
            ("smttask --help", [smttask, "--help"], [sys.executable, str(bare), "--help"]),
            ("smttask project --help", [smttask, "project", "--help"],
             [sys.executable, str(bare), "project", "--help"]),
        ]:
            timed(ours, 2)
            timed(theirs, 2)
            a, b = timed(ours, n), timed(theirs, n)
            rows.append((label, a, b, "bare click, same commands", 2.0, a / b <= 2.0))
        target = Path(tmp) / "proj"

        def fresh() -> None:
            shutil.rmtree(target, ignore_errors=True)

        env_ok = os.environ.get("GIT_AUTHOR_NAME") or subprocess.run(
            ["git", "config", "user.email"], capture_output=True).returncode == 0
        if not env_ok:
            os.environ.update(GIT_AUTHOR_NAME="bench", GIT_AUTHOR_EMAIL="b@example.org",
                              GIT_COMMITTER_NAME="bench", GIT_COMMITTER_EMAIL="b@example.org")
        init = timed([smttask, "project", "init", "--no-input", str(target)],
                     3 if args.quick else 7, setup=fresh)
        rows.append(("project init --no-input (package)", init, 2.0, "fixed budget", 1.0,
                     init <= 2.0))
    print(f"smttask CLI benchmarks: Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
          f"medians of {n} fresh processes\n")
    print(f"{'what':<36}{'ours':>10}{'anchor':>10}  {'anchor is':<27}{'ratio':>7}"
          f"{'target':>8}  result")
    for label, ours, anchor, what, target_ratio, ok in rows:
        print(f"{label:<36}{ours * 1e3:>8.1f}ms{anchor * 1e3:>8.1f}ms  {what:<27}"
              f"{ours / anchor:>6.2f}×{'≤ ' + str(target_ratio) + '×':>8}  "
              f"{'PASS' if ok else 'FAIL'}")
    failed = sum(not r[-1] for r in rows)
    print(f"\n{len(rows) - failed}/{len(rows)} goals met")
    return 1 if (failed and args.check) else 0


if __name__ == "__main__":
    sys.exit(main())
