"""``smttask run``: run task files, in parallel, with progress and a summary."""

from __future__ import annotations

import os
import sys

import click

__all__ = ["run"]


@click.command("run")
@click.argument("paths", nargs=-1)
@click.option("-n", "--jobs", type=click.IntRange(min=1), default=None,
              help="Worker processes (default: the number of CPUs).")
@click.option("--recompute", is_flag=True, help="Run the tasks even if their results exist.")
@click.option("--recompute-stale", is_flag=True,
              help="Run again the tasks whose result was computed by code that has changed "
                   "since (default: [cache] on_code_change in smttask.toml).")
@click.option("--reason", metavar="TEXT", help="Reason recorded for every task (overrides "
              "the files').")
@click.option("--record/--no-record", default=True, show_default=True,
              help="--no-record: no repository check, no records, nothing written.")
@click.option("--keep/--clean", default=True, show_default=True,
              help="--clean deletes each task file after its result is recorded.")
@click.option("--retries", type=click.IntRange(min=0), default=0, show_default=True,
              help="Run a failed task again up to N times.")
@click.option("--fail-fast", is_flag=True, help="Stop scheduling after the first failure.")
@click.option("--pdb", "use_pdb", is_flag=True,
              help="Run in this process and open the debugger where a task fails.")
@click.option("--dry-run", is_flag=True, help="List which tasks would run or load; run nothing.")
@click.option("--show-output", is_flag=True,
              help="Print what the tasks write to stdout above the progress bar (by default "
                   "it is kept in their records only; stderr is always shown).")
@click.option("--import", "imports", multiple=True, metavar="PKG",
              help="Also allow task files to import PKG (repeatable).")
@click.option("--executor", type=click.Choice(["local", "slurm"]), default="local",
              show_default=True, help="local: a pool of processes here; slurm: SLURM job "
              "arrays (needs smttask[slurm]).")
@click.option("--partition", help="SLURM partition [default: from smttask.toml].")
@click.option("--time", "time_limit", metavar="HH:MM:SS", help="SLURM time per task file.")
@click.option("--cpus", type=click.IntRange(min=1), help="SLURM CPUs per task file.")
@click.option("--mem", help="SLURM memory per task file, e.g. 4G.")
@click.option("--array-parallelism", type=click.IntRange(min=1),
              help="At most N array elements at once.")
@click.option("--tasks-per-job", metavar="N|auto",
              help="Task files run one after the other by each array element; auto packs "
                   "short tasks (from earlier records' durations) so that job starts cost "
                   "at most as much as the tasks [default: auto].")
@click.option("--wait/--no-wait", default=True, show_default=True,
              help="SLURM: show progress until the arrays finish, or return once submitted.")
@click.option("--status", "show_status", is_flag=True,
              help="SLURM: report on the latest submission instead of running anything.")
@click.pass_context
def run(ctx: click.Context, paths: tuple[str, ...], jobs: int | None, recompute: bool,
        recompute_stale: bool, reason: str | None, record: bool, keep: bool, retries: int,
        fail_fast: bool, use_pdb: bool, dry_run: bool, show_output: bool,
        imports: tuple[str, ...], executor: str,
        partition: str | None, time_limit: str | None, cpus: int | None, mem: str | None,
        array_parallelism: int | None, tasks_per_job: str | None, wait: bool,
        show_status: bool) -> None:
    """Run task files (and the task files in folders, recursively).

    Every file is validated first; the git tree is checked once; tasks then run in a pool
    of worker processes, each result written once and each run recorded. Shared upstream
    tasks run once. Exit code 0 only if every task ran or was loaded.

    \b
    Examples:
      smttask run tasks/                 every task file in tasks/, one per CPU
      smttask run --executor slurm --time 2:00:00 --mem 8G tasks/
      smttask run -n 4 tasks/sweep*      four at a time
      smttask run --dry-run tasks/       what would run, what would load
      smttask run --show-output tasks/   also print what the tasks print
      smttask -v run tasks/              with the full traceback of each failure
      smttask run --pdb tasks/a.taskdesc.json   debug a failing task
      smttask run /path/to/project/tasks/       from anywhere: the task files' project

    breakpoint() in a task opens pdb on this terminal (the progress display waits until
    the task ends); see docs/running.md.
    """
    from .. import batch as batches
    from .display import Display

    if show_status:
        _slurm_status()
        return
    if not paths:
        raise click.UsageError("give task files or folders (or --status)")
    quiet, verbose = ctx.obj.get("quiet", False), ctx.obj.get("verbose", 0)
    workers = 1 if use_pdb else jobs or os.cpu_count() or 1
    display = Display(quiet=quiet, live=not use_pdb,  # the debugger needs the terminal
                      show_output=show_output, parallel=workers > 1, verbose=verbose)
    slurm = None
    if executor == "slurm":
        from .. import config

        slurm = config.project_of(paths).config.executor.slurm.with_overrides(
            partition=partition, time=time_limit, cpus=cpus, mem=mem,
            array_parallelism=array_parallelism,
            tasks_per_job=tasks_per_job if tasks_per_job in (None, "auto") else _count(
                tasks_per_job))
    batch = batches.run(
        paths, jobs=1 if use_pdb else jobs, record=record, recompute=recompute,
        recompute_stale=recompute_stale,
        reason=reason, retries=retries, fail_fast=fail_fast, keep=keep, dry_run=dry_run,
        pdb=use_pdb, allow=imports, on_event=display, on_output=display.output,
        executor=executor, slurm=slurm, wait=wait,
    )
    if executor == "slurm" and not wait:
        ids = sorted({j.slurm_id.split("_")[0] for j in batch.jobs if j.slurm_id})
        click.echo(f"submitted {batch.count('submitted')} task(s) as SLURM job(s) "
                   f"{', '.join(ids)}; `smttask run --status` reports on them")
        sys.exit(0 if batch.ok else 1)
    if dry_run:
        from .columns import middle, terminal_width

        room = (terminal_width() or 10**6) - 11
        for job in batch.jobs:
            click.echo(f"{job.state:<10} {middle(job.name, room)}")
        click.echo(f"{batch.count('would run')} would run, {batch.count('would load')} would "
                   f"load, {len(batch.invalid)} invalid", err=True)
        sys.exit(0 if batch.ok else 1)
    display.summary(batch)
    if batch.interrupted:
        sys.exit(130)
    sys.exit(0 if batch.ok else 1)


def _count(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise click.BadParameter(f"{text!r}: a number of task files, or auto",
                                 param_hint="--tasks-per-job") from None


def _slurm_status() -> None:
    from ..executors import slurm
    from .columns import fit_line, terminal_width

    rows = slurm.status()
    width = terminal_width()
    for row in rows:
        extra = f"  record {row['label']}" if row["label"] else ""
        error = f"  {row['error']}" if row["error"] else ""
        click.echo(fit_line(f"{row['slurm_id']:<10} {row['state']:<8} {row['task']}",
                            f"{extra}{error}", width))
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["state"]] = counts.get(row["state"], 0) + 1
    click.echo(", ".join(f"{n} {state}" for state, n in sorted(counts.items())), err=True)
