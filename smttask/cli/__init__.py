"""The ``smttask`` command line: a thin click layer over the library.

Subcommands live one group per module in this package and are imported only when used,
so ``smttask --help`` stays fast. Every expected failure is a SmttaskError, printed as one
``Error: ...`` line with a non-zero exit code and no traceback.
"""

from __future__ import annotations

import importlib
import logging
import sys
from typing import Any

import click

__all__ = ["main"]

# name -> (module, attribute, one-line help); filled in as command groups are added.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "diff": ("smttask.cli.store", "diff", "Which inputs differ: task files or records."),
    "export": ("smttask.cli.export", "export", "Task files as Snakemake; records as RO-Crates."),
    "graph": ("smttask.cli.graph", "graph", "The task graph of task files: tree, DOT, SVG."),
    "project": ("smttask.cli.project", "project", "Create, update and configure a project."),
    "reproduce": ("smttask.cli.reproduce", "reproduce",
                  "Rerun records at their commit; compare the outputs."),
    "run": ("smttask.cli.run", "run", "Run task files, in parallel, with progress."),
    "smt": ("smttask.cli.smt", "smt", "Sumatra's own commands, on this project."),
    "status": ("smttask.cli.store", "status", "For task files: on disk, or why not."),
    "store": ("smttask.cli.store", "store", "Browse and maintain the record store."),
    "why": ("smttask.cli.store", "why", "Why a task file will run or load."),
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in COMMANDS:
            module, attr, _ = COMMANDS[name]
            return getattr(importlib.import_module(module), attr)
        return super().get_command(ctx, name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][2]) for name in sorted(COMMANDS)]
        rows += [(n, c.get_short_help_str()) for n, c in sorted(self.commands.items())]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        from ..errors import SmttaskError

        try:
            return super().invoke(ctx)
        except SmttaskError as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(exc.exit_code)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="smttask", prog_name="smttask")
@click.option("-v", "--verbose", count=True, help="More output (-vv for debug logs).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors.")
@click.pass_context
def main(ctx: click.Context, verbose: int, quiet: bool) -> None:
    """Reproducible computational research on top of the Sumatra lab book.

    \b
    Examples:
      smttask project init          set up a project in this folder
      smttask run -n 4 tasks/       run the task files in tasks/, four at a time
    """
    ctx.obj = {"verbose": verbose, "quiet": quiet}
    level = logging.ERROR if quiet else (logging.WARNING, logging.INFO, logging.DEBUG)[
        min(verbose, 2)]
    root = logging.getLogger()
    if not any(isinstance(h, _Stderr) for h in root.handlers):
        handler = _Stderr()
        handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
        root.addHandler(handler)
    logging.getLogger("smttask").setLevel(level)


class _Stderr(logging.StreamHandler):
    """Log records to whatever ``sys.stderr`` is when they are emitted."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass
