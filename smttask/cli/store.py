"""``smttask store``, ``smttask status`` and ``smttask why``: browse and maintain records."""

from __future__ import annotations

import gc
import sys
from pathlib import Path
from typing import Any

import click

__all__ = ["diff", "status", "store", "why"]


def _columns(rows: list[dict[Any, Any]], keys: list[Any], header: list[str] | None = None,
             whole: int = 0) -> str:
    """Plain aligned columns (fast on thousands of rows, easy to grep), fitted to the
    terminal: long cells cut in the middle, never split across lines."""
    from .columns import fit_columns, terminal_width

    head = [str(k) for k in (keys if header is None else header)]
    text = [[str(r.get(k, "")) for k in keys] for r in rows]
    width = terminal_width()
    table, left_out = fit_columns(head, text, width, whole=whole)
    if left_out:
        click.echo(f"{len(left_out)} column(s) left out to fit {width} columns "
                   f"({', '.join(left_out)}): widen the terminal, or pipe the output", err=True)
    return table


@click.group("store")
def store() -> None:
    """Browse and maintain the record store."""


@store.command("list")
@click.option("--task", "tasks", multiple=True, metavar="NAME", help="Only these tasks.")
@click.option("--since", metavar="DATE", help="From DATE (2026-11-25, today, 3d, 12h…).")
@click.option("--until", metavar="DATE", help="Before DATE.")
@click.option("--tag", "tags", multiple=True, help="Only records with this tag (repeatable).")
@click.option("--status", "statuses", multiple=True,
              type=click.Choice(["finished", "crashed", "killed", "running", "lost"]),
              help="Only records with this status (repeatable).")
@click.option("--where", "where", multiple=True, metavar="COND",
              help="Only records whose inputs meet COND: NAME OP VALUE with OP one of "
              "= != < <= > >= (repeatable; dotted names reach upstream tasks' inputs).")
@click.option("--params", is_flag=False, flag_value="", default=None, metavar="[NAMES]",
              help="Add input columns: the comma-separated NAMES, or all of them.")
@click.option("--limit", type=click.IntRange(min=0), default=50, show_default=True,
              help="At most N records (0: all).")
@click.option("--json", "as_json", is_flag=True, help="JSON lines, for scripts.")
def list_(tasks: tuple[str, ...], since: str | None, until: str | None, tags: tuple[str, ...],
          statuses: tuple[str, ...], where: tuple[str, ...], params: str | None, limit: int,
          as_json: bool) -> None:
    """List records, newest first: label, task, status, duration, reason, version.

    \b
    Examples:
      smttask store list --task analyze --since 3d
      smttask store list --status crashed --limit 0 --json
      smttask store list --params --where 'dt>=0.3' --where nbins=20
      smttask store list --task analyze --params dt,nbins
    """
    from ..provenance import Query
    from ..view import RecordStoreView, input_columns, parse_when

    # A listing of 100,000 records makes millions of objects and no reference cycles:
    # the cyclic garbage collector would only walk them again and again (a third of the
    # time).
    collecting = gc.isenabled()
    gc.disable()
    try:
        query = Query(since=parse_when(since) if since else None,
                      until=parse_when(until) if until else None, tags=tags, tasks=tasks,
                      statuses=statuses, limit=limit + 1 if limit and not where else None,
                      tasknames=True, parameters=bool(where) or params is not None)
        view = RecordStoreView.select(query)
        if where:
            view = view.filter.where(*where)
        shown = view[:limit + 1] if limit else view
        more = bool(limit) and len(shown) > limit
        if limit:
            shown = shown[:limit]
        keys = ["label", "task", "status", "duration", "reason", "version"]
        if params is None:
            summaries = shown.summaries()
        else:
            names = [n.strip() for n in params.split(",") if n.strip()] or input_columns(shown)
            summaries = shown.table(names)
            keys += names
        if as_json:
            from pydantic_core import to_json  # 4× faster than json here

            for s in summaries:
                s["timestamp"] = s["timestamp"].isoformat()
            lines = [to_json(s, fallback=str) for s in summaries]
            if lines:
                click.echo(b"\n".join(lines))  # one write: 100,000 echo calls cost seconds
        else:
            for s in summaries:
                s["duration"] = f"{s['duration']:.2f}s" if s["duration"] is not None else ""
                s["reason"] = (s["reason"] or "").replace("\n", " ")[:40]
            click.echo(_columns(summaries, keys, whole=1))
    finally:
        if collecting:
            gc.enable()
    if more:
        click.echo(f"showing the newest {limit}; --limit 0 shows all", err=True)


@store.command("compare")
@click.argument("labels", nargs=-1, required=True)
def compare(labels: tuple[str, ...]) -> None:
    """Records side by side: the inputs that differ, and the outputs that are numbers
    (or short tuples of numbers). A unique label prefix is enough.

    \b
    Examples:
      smttask store compare 20261125-0630 20261125-0631 20261125-0632
      smttask store compare $(smttask store list --task analyze --json | jq -r .label)
    """
    from ..compare import compare as compare_records

    result = compare_records(list(labels))
    rows = result.rows()
    click.echo(_columns([dict(enumerate(r)) for r in rows[1:]], list(range(len(rows[0]))),
                        header=rows[0]))
    if not result.inputs:
        click.echo("no input differs", err=True)


def _view() -> Any:
    from ..view import RecordStoreView

    return RecordStoreView()


@store.command("show")
@click.argument("label")
def show(label: str) -> None:
    """Every field of one record (a unique label prefix is enough)."""
    rec = _view().get(label)
    fields = [("label", rec.label), ("task", rec.taskname), ("status", rec.status),
              ("tags", ", ".join(sorted(rec.tags))), ("timestamp", rec.timestamp),
              ("duration", f"{rec.duration:.3f}s" if rec.duration is not None else ""),
              ("reason", rec.reason), ("outcome", rec.outcome), ("code", rec.main_file),
              ("version", rec.version), ("script", rec.script_arguments),
              ("user", rec.user), ("digest", rec.digest)]
    for key, value in fields:
        text = str(value).replace("\n", "\n" + " " * 12)
        click.echo(f"{key:>10}: {text}")
    click.echo("    inputs:")
    from ..view import flatten_inputs, summarize

    for name, value in flatten_inputs(rec.inputs).items():
        click.echo(f"      {name} = {summarize(value)!r}")
    click.echo("   outputs:")
    for path in rec.output_files:
        state = "" if path.exists() else "   (deleted)"
        click.echo(f"      {path}{state}")
    more = rec.details()
    click.echo("  packages: " + ", ".join(f"{name} {version}" for name, version in more.packages))
    for platform in more.platforms:
        click.echo(f"  platform: {platform}")
    if more.diff:
        click.echo("      diff:\n" + "\n".join("      " + ln for ln in more.diff.splitlines()))
    if more.stdout_stderr:
        click.echo("    output:\n" + "\n".join("      " + ln
                                                for ln in more.stdout_stderr.splitlines()))


@store.command("find-output")
@click.argument("taskfile", type=click.Path(exists=True, dir_okay=False))
@click.option("--import", "imports", multiple=True, metavar="PKG")
def find_output(taskfile: str, imports: tuple[str, ...]) -> None:
    """Print the files holding TASKFILE's results (exit 1 if not computed).

    \b
    Examples:
      smttask store find-output tasks/analyze__3f0c….taskdesc.json
      cat $(smttask store find-output tasks/analyze__3f0c….taskdesc.json)
    """
    from ..explain import find_output as find

    found, missing = find(taskfile, allow=imports)
    for path in found:
        click.echo(path)
    if missing:
        click.echo(f"not on disk: {', '.join(str(p) for p in missing)} "
                   f"(`smttask why {taskfile}` says why)", err=True)
        sys.exit(1)


@store.command("recreate")
@click.argument("label")
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False),
              help="Folder for the task file (default: the project's task folder).")
def recreate(label: str, out_dir: str | None) -> None:
    """Write the task file that reproduces a record."""
    view = _view()
    rec = view.get(label)
    folder = Path(out_dir) if out_dir else view.project.tasks_dir
    click.echo(rec.task.save(folder))


@store.command("rebuild")
def rebuild() -> None:
    """Recreate the input-datastore links from the records (newest wins).

    Use it after deleting links, or after an upgrade changed the digests. Archived files
    are never moved or deleted. A record that cannot be restored (its task cannot be
    imported, its files are gone) is listed with the reason, and the exit code is 1.
    """
    from ..maintenance import rebuild_links

    report = rebuild_links(_view())
    for reason in report.skipped:
        click.echo(f"skipped {reason}", err=True)
    click.echo(f"{len(report.linked)} link(s) written, {len(report.skipped)} skipped")
    if not report.ok:
        sys.exit(1)


@store.command("verify")
@click.option("--fix", is_flag=True, help="Set bad files aside, mend links, mark lost runs "
              "killed, add missing checksum files, remove old temporary files.")
def verify(fix: bool) -> None:
    """Check that the datastore and the record store agree.

    Every linked result must verify (checksum) and have a finished record; every finished
    record's outputs must exist and verify; no run may be lost (marked running while its
    process is gone); no temporary file may be left from a killed process. Exit code 0
    when all is well (after --fix: when everything found was fixed).

    \b
    Examples:
      smttask store verify          report only
      smttask store verify --fix    repair what can be repaired
    """
    from ..maintenance import verify as check

    report = check(fix=fix)
    for breach in report.breaches:
        click.echo(str(breach))
    fixed = sum(1 for b in report.breaches if b.fixed)
    click.echo(f"{report.records} record(s), {report.files} result file(s), {report.links} "
               f"link(s) checked: {len(report.breaches)} problem(s)"
               + (f", {fixed} fixed" if fix else ""), err=True)
    if not report.ok:
        sys.exit(1)


@store.command("create-surrogates")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--import", "imports", multiple=True, metavar="PKG")
def create_surrogates(paths: tuple[str, ...], imports: tuple[str, ...]) -> None:
    """Make records for the results of task files that are on disk but that no record
    claims. A task file that cannot get one (invalid, not a recorded task, no result on
    disk) is listed with the reason, and the exit code is 1.

    \b
    Examples:
      smttask store create-surrogates tasks/
    """
    from ..maintenance import create_surrogates as make

    report = make(paths, allow=imports)
    for label in report.made:
        click.echo(label)
    for reason in report.skipped:
        click.echo(f"skipped {reason}", err=True)
    click.echo(f"{len(report.made)} surrogate record(s) created, {len(report.recorded)} "
               f"already recorded, {len(report.skipped)} skipped", err=True)
    if not report.ok:
        sys.exit(1)


@store.command("delete")
@click.argument("labels", nargs=-1)
@click.option("--since", metavar="DATE", help="Every record from DATE on.")
@click.option("--dry-run/--no-dry-run", default=True, show_default=True,
              help="Only show what would be deleted; --no-dry-run deletes.")
@click.option("--keep-files", is_flag=True, help="Delete the records but keep their files.")
def delete(labels: tuple[str, ...], since: str | None, dry_run: bool, keep_files: bool) -> None:
    """Delete records, with their output files and the links to them.

    A link to a deleted file is pointed at the newest remaining file of the same result,
    or removed. Without --no-dry-run nothing is changed.
    """
    from ..errors import UsageError
    from ..maintenance import delete as do_delete
    from ..maintenance import plan_deletion

    view = _view()
    if not labels and not since:
        raise UsageError("name the records to delete (labels) or give --since DATE")
    records = [view.get(label) for label in labels]
    if since:
        records += list(view.filter.after(since))
    records = list({r.label: r for r in records}.values())
    plan = plan_deletion(records, keep_files=keep_files)
    click.echo(str(plan) or "nothing to delete")
    if dry_run:
        click.echo(f"dry run: {len(plan.records)} record(s) would be deleted; add "
                   "--no-dry-run to delete", err=True)
        return
    do_delete(plan)
    click.echo(f"deleted {len(plan.records)} record(s), {len(plan.files)} file(s)", err=True)


@click.command("status")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--import", "imports", multiple=True, metavar="PKG")
def status(paths: tuple[str, ...], imports: tuple[str, ...]) -> None:
    """For each task file: is its result on disk, and if not, why not."""
    from ..explain import status as get_status
    from .columns import fit_line, terminal_width

    width = terminal_width()
    for path, st in get_status(paths, allow=imports):
        mark = "on disk " if st.on_disk else "will run"
        click.echo(fit_line(f"{mark}  {path}", f": {st.explanation}", width))


@click.command("why")
@click.argument("taskfile", type=click.Path(exists=True, dir_okay=False))
@click.option("--import", "imports", multiple=True, metavar="PKG")
def why(taskfile: str, imports: tuple[str, ...]) -> None:
    """Explain whether TASKFILE will run or load, and which inputs differ from the
    closest record (reported as `smttask diff` reports them)."""
    from ..explain import why as explain

    st = explain(taskfile, allow=imports)
    click.echo(f"{st.task.taskname} ({st.task.digest}): {st.explanation}")
    if st.closest is not None and st.differences:
        when = st.closest.timestamp.strftime("%Y-%m-%d %H:%M")
        click.echo(f"compared with record {st.closest.label} ({when}, {st.closest.status}):")
        for d in st.differences:
            click.echo(f"  {d}")


@click.command("diff")
@click.argument("a")
@click.argument("b")
def diff(a: str, b: str) -> None:
    """Which inputs differ between A and B, each a task file or a record (by label or a
    unique label prefix): dotted names with both values (arrays: dtype, shape or the
    first differing element), and the digest of each side. Task files are read, not
    imported. Exit status: 0 the same task, 1 they differ.

    \b
    Examples:
      smttask diff tasks/analyze__3f0c….taskdesc.json tasks/analyze__5709….taskdesc.json
      smttask diff tasks/analyze__3f0c….taskdesc.json 20261125-063011
      smttask diff 20261125-063011 20261125-070512
    """
    from ..compare import diff as compare_two

    result = compare_two(a, b)
    for line in result.lines():
        click.echo(line)
    if not result.same:
        sys.exit(1)
