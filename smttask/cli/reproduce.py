"""``smttask reproduce``: rerun records at their commit and compare the outputs."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

__all__ = ["reproduce"]


def _is_crate(arg: str) -> bool:
    path = Path(arg)
    return path.suffix == ".zip" and path.is_file() or (path / "ro-crate-metadata.json").is_file()


def _show(rep: Any) -> None:
    click.echo(f"{rep.label}  {rep.taskname}  at {rep.commit[:10] or '?'}: {rep.headline()}")
    for line in rep.lines():
        click.echo(f"    {line}")


@click.command("reproduce")
@click.argument("targets", nargs=-1, metavar="[LABEL|TASKFILE|CRATE]...")
@click.option("--task", "tasks", multiple=True, metavar="NAME",
              help="Every finished record of this task (repeatable).")
@click.option("--since", metavar="DATE", help="Finished records from DATE (2026-11-25, 3d…).")
@click.option("--all", "every", is_flag=True, help="Every finished record.")
@click.option("--rtol", type=float, default=0.0, show_default=True,
              help="Relative tolerance for arrays and numbers.")
@click.option("--atol", type=float, default=0.0, show_default=True,
              help="Absolute tolerance for arrays and numbers.")
@click.option("--no-tag", is_flag=True,
              help="Leave the records as they are (no tag, no comment).")
@click.option("--repository", metavar="URL|PATH",
              help="For a crate: clone this repository instead of the one it names.")
def reproduce(targets: tuple[str, ...], tasks: tuple[str, ...], since: str | None,
              every: bool, rtol: float, atol: float, no_tag: bool,
              repository: str | None) -> None:
    """Rerun records at their recorded commit and compare the outputs with the recorded
    ones: identical, equal within --rtol/--atol, or different (where, and by how much).

    Each commit is checked out in a temporary git worktree (your working tree is never
    touched) and the task runs there in a separate process, without writing results or
    records. Upstream results come from the datastore when present. Package versions
    that changed since the run are listed. The outcome is stored on each record as a
    tag (`reproduced` or `differs`) and a dated comment.

    Given an RO-Crate made by `smttask export rocrate` (a folder or a .zip), its
    repository is cloned afresh and every run in the crate is checked against the
    crate's outputs (no project or record store needed; nothing is tagged).

    Exit status: 0 all reproduced, 1 some differ, 2 some could not run.

    \b
    Examples:
      smttask reproduce 20261125-140312_3f0c1a
      smttask reproduce --task analyze --since 30d
      smttask reproduce --all --rtol 1e-9
      smttask reproduce tasks/analyze__3f0c1a2b.taskdesc.json
      smttask reproduce figure3.crate.zip
    """
    from .. import reproduce as rp

    crates = [t for t in targets if _is_crate(t)]
    if crates:
        from ..crate import reproduce_crate

        if len(crates) != len(targets) or tasks or since or every:
            from ..errors import UsageError

            raise UsageError("reproduce one crate at a time, without labels or filters")
        reports = reproduce_crate(Path(crates[0]), repository=repository, rtol=rtol,
                                  atol=atol, progress=_show)
    else:
        files = tuple(t for t in targets if Path(t).exists())
        labels = tuple(t for t in targets if not Path(t).exists())
        records = rp.select(rp.Target(labels=labels, taskfiles=files, tasks=tasks,
                                      since=since, every=every))
        reports = rp.reproduce(records, rtol=rtol, atol=atol, tag=not no_tag, progress=_show)
    counts = {o: sum(r.outcome == o for r in reports)
              for o in (rp.REPRODUCED, rp.DIFFERS, rp.FAILED)}
    click.echo(", ".join(f"{n} {o}" for o, n in counts.items() if n) or "nothing to reproduce")
    sys.exit(rp.exit_code(reports))
