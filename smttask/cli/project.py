"""``smttask project``: create a project, update it from its template, edit its dirty
directories, show its state."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

__all__ = ["project"]


@click.group("project")
def project() -> None:
    """Create, update (from its template) and configure an smttask project."""


@project.command("init")
@click.argument("directory", default=".", type=click.Path(file_okay=False, path_type=Path))
@click.option("--name", help="Project name (default: the folder's name).")
@click.option("--template", type=click.Choice(["package", "minimal"]),
              help="package: a complete research project; minimal: only smttask's files, "
                   "for an existing repository (default: package in an empty folder).")
@click.option("--input", "input_", metavar="DIR", help="Input datastore [default: data].")
@click.option("--output", metavar="DIR", help="Output datastore, inside the input one "
              "[default: data/run_dump].")
@click.option("--dirty", multiple=True, metavar="DIR",
              help="A dirty directory: uncommitted changes there never block a run "
                   "(repeatable; default: the template's suggestions).")
@click.option("--on-changed", type=click.Choice(["error", "store-diff"]),
              help="Uncommitted code: refuse to record, or record the diff [default: error].")
@click.option("--record-store", metavar="URL", help="SQLite file or postgresql:// URL "
              "[default: .smt/records].")
@click.option("--git/--no-git", default=None,
              help="Create the git repository and its first commit if there is none "
                   "[default: yes].")
@click.option("-y", "--yes", is_flag=True,
              help="Accept every default: ask nothing, not even for confirmation.")
@click.option("--no-input", is_flag=True, help="The same as --yes.")
def init(directory: Path, name: str | None, template: str | None, input_: str | None,
         output: str | None, dirty: tuple[str, ...], on_changed: str | None,
         record_store: str | None, git: bool | None, yes: bool, no_input: bool) -> None:
    """Set up an smttask project in DIRECTORY (default: here).

    Asks a few questions (each has an option, for scripts; --yes accepts the defaults of
    the others), renders the project from a template, creates the Sumatra lab book
    (.smt/) and smttask.toml, and, if there is no git repository, creates one with a
    first commit. Existing files are never overwritten; Ctrl-C leaves nothing behind.

    \b
    Examples:
      smttask project init                          answer the questions
      smttask project init deathstar --no-input     all defaults, no questions
      smttask project init --template minimal --dirty notebooks -y
    """
    from .. import scaffold

    given = {"name": name, "template": template, "input": input_, "output": output,
             "dirty_directories": list(dirty) or None, "on_changed": on_changed,
             "record_store": record_store, "git": git}
    target = directory.resolve()
    if (target / "smttask.toml").exists():
        from ..errors import ScaffoldError

        raise ScaffoldError(f"{target} is already an smttask project (smttask.toml exists); "
                            "nothing was changed")
    interactive = not (no_input or yes)
    if interactive and not scaffold.interactive_terminal():
        missing = ", ".join(scaffold.missing_answers(given))
        raise click.UsageError(
            "no terminal to ask questions on: pass --yes (or --no-input) to accept the "
            "defaults" + (f" of what is not given ({missing})" if missing else ""))
    try:
        answers = scaffold.ask(target, given, interactive=interactive,
                               echo=lambda text: click.echo(f"\n{text}\n"))
    except KeyboardInterrupt:
        click.echo("\nAborted: nothing was changed.", err=True)
        sys.exit(130)
    if answers is None:
        click.echo("Nothing was changed.", err=True)
        sys.exit(1)
    try:
        report = scaffold.init(target, answers)
    except KeyboardInterrupt:
        click.echo("\nAborted: nothing was left behind.", err=True)
        sys.exit(130)
    click.echo(f"Created the {answers.template} project '{answers.name}' in {report.root}")
    for rel in report.created:
        click.echo(f"  + {rel}")
    if report.gitignore_added:
        click.echo(f"  + .gitignore: {', '.join(report.gitignore_added)}")
    click.echo("  + .smt/ (Sumatra lab book and record store)")
    if report.commit:
        click.echo(f"  + git repository, first commit {report.commit[:10]}")
    for note in report.notes:
        click.echo(f"Note: {note}")
    if answers.template == "package":
        where = "" if report.root == Path.cwd() else f"cd {click.format_filename(directory)}; "
        click.echo(f"\nNext: {where}python run.py; smttask run -n 2 {answers.tasks}/; smt list")


@project.group("dirty")
def dirty() -> None:
    """Folders where uncommitted changes never block a recorded run."""


def _project_and_repo() -> tuple[Any, Path]:
    from .. import config, repo

    proj = config.find_project()
    return proj, repo.repo_root(proj.root)


_COMMIT = click.option(
    "--commit/--no-commit", default=None,
    help="Commit smttask.toml (alone) after the change: uncommitted, it blocks recorded "
         "runs [default: ask in a terminal, otherwise do not commit].")


def _settle(proj: Any, commit: bool | None, message: str) -> None:
    """Commit smttask.toml, offer to, or say that it needs a commit."""
    from .. import scaffold

    if not scaffold.config_uncommitted(proj):
        return
    if commit is None and scaffold.interactive_terminal():
        commit = click.confirm("Commit smttask.toml now? (uncommitted, it blocks recorded "
                               "runs)", default=True)
    if commit:
        click.echo(f"committed smttask.toml ({scaffold.commit_config(proj, message)[:10]})")
    else:
        click.echo("Note: smttask.toml is not committed; a recorded run refuses uncommitted "
                   "changes to it: `git commit smttask.toml` (or use --commit)", err=True)


@dirty.command("add")
@click.argument("directories", nargs=-1, required=True)
@click.option("--force", is_flag=True, help="Accept a folder that holds project code.")
@_COMMIT
def dirty_add(directories: tuple[str, ...], force: bool, commit: bool | None) -> None:
    """Mark DIRECTORIES as dirty (e.g. reports, labnotes; never code folders).

    \b
    Examples:
      smttask project dirty add notebooks            (asks to commit smttask.toml)
      smttask project dirty add --commit reports labnotes
    """
    from .. import config

    proj, root = _project_and_repo()
    dirs = config.add_dirty_directories(proj, list(directories), root, force=force)
    click.echo("dirty directories: " + (", ".join(dirs) or "(none)"))
    _settle(proj, commit, f"smttask project dirty add {' '.join(directories)}")


@dirty.command("remove")
@click.argument("directories", nargs=-1, required=True)
@_COMMIT
def dirty_remove(directories: tuple[str, ...], commit: bool | None) -> None:
    """Stop treating DIRECTORIES as dirty.

    \b
    Examples:
      smttask project dirty remove --commit labnotes
    """
    from .. import config

    proj, root = _project_and_repo()
    dirs = config.remove_dirty_directories(proj, list(directories), root)
    click.echo("dirty directories: " + (", ".join(dirs) or "(none)"))
    _settle(proj, commit, f"smttask project dirty remove {' '.join(directories)}")


@dirty.command("list")
def dirty_list() -> None:
    """List the dirty directories, one per line."""
    from .. import config

    for d in config.find_project().config.repo.dirty_directories:
        click.echo(d)


@project.command("info")
def info() -> None:
    """Show the configuration, the record store and whether a run may be recorded now."""
    from .. import config
    from ..explain import project_info

    for key, value in project_info(config.find_project()):
        click.echo(f"{key:>20}: {value}")


@project.command("update")
@click.option("--dry-run", is_flag=True, help="Only show what would change.")
def update(dry_run: bool) -> None:
    """Bring the project's files up to date with its template (the one that created it,
    as shipped with this smttask), keeping your edits.

    Each file the template wrote is merged three ways: the earlier render (kept in
    .smttask-template.json), your version, and the new render. Changes of yours stay;
    where you and the template changed the same lines, the file gets conflict markers
    (<<<<<<< yours … >>>>>>> template) and is listed: resolve them, then commit. Files
    to be changed must have no uncommitted changes. Exit status 1 when there are
    conflicts.

    \b
    Examples:
      smttask project update --dry-run     what would change
      smttask project update && git diff   update, then review
    """
    from ..templates import update as do_update

    report = do_update(dry_run=dry_run)
    click.echo(f"{report.template} template: smttask {report.old_version} → "
               f"{report.new_version}{' (dry run: nothing written)' if dry_run else ''}")
    for done in report.files:
        click.echo(f"  {done}")
    if report.gitignore_added:
        click.echo(f"  + .gitignore: {', '.join(report.gitignore_added)}")
    for note in report.notes:
        click.echo(f"Note: {note}")
    if report.conflicts:
        names = ", ".join(f.path for f in report.conflicts)
        click.echo(f"{len(report.conflicts)} file(s) with conflicts: {names}; resolve the "
                   "<<<<<<< markers, then commit", err=True)
        sys.exit(1)
    if not dry_run:
        click.echo(f"{len(report.changed)} file(s) changed; review with `git diff`, then "
                   "commit" if report.changed else "nothing to change")
