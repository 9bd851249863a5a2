"""``smttask smt``: Sumatra's own commands, run on the current project."""

from __future__ import annotations

import contextlib
import io
import sys
from typing import TextIO

import click

__all__ = ["smt"]

EXPOSED = ("list", "info", "tag", "comment", "view", "diff", "export", "sync", "version")
HELP = ("-h", "--help")


class _Masked(io.TextIOBase):
    """Writes to ``stream`` with the password of any URL replaced by ``***``."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        from ..store_url import mask

        return self.stream.write(mask(text))

    def flush(self) -> None:
        self.stream.flush()


@click.command("smt", context_settings={"ignore_unknown_options": True,
                                        "allow_extra_args": True,
                                        "help_option_names": []}, options_metavar="")
@click.argument("command", required=False, metavar="COMMAND")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def smt(ctx: click.Context, command: str | None, args: tuple[str, ...]) -> None:
    """Run Sumatra's `smt COMMAND ARGS...` on this project (URLs printed without
    passwords).

    COMMAND is one of: list, info, tag, comment, view, diff, export, sync, version.
    `smttask smt COMMAND --help` shows Sumatra's help for it.

    \b
    Examples:
      smttask smt list -l          every record, long form
      smttask smt tag good LABEL   tag a record
      smttask smt diff L1 L2       compare two records
      smttask smt list --help      Sumatra's own help for a command
    """
    if command is None or command in HELP:
        click.echo(ctx.get_help())
        ctx.exit(0 if command else 2)
    if command not in EXPOSED:
        raise click.BadParameter(f"{command!r} is not one of {', '.join(EXPOSED)}",
                                 param_hint="COMMAND")
    from .. import config, provenance
    from ..errors import ProjectNotFoundError

    try:
        project = config.find_project()
    except ProjectNotFoundError:
        if not set(args) & set(HELP):
            raise
        project = None  # help needs no project
    with contextlib.redirect_stdout(_Masked(sys.stdout)):
        provenance.run_smt_command(project, command, list(args))
