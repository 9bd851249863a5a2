"""``smttask smt``: Sumatra's own commands, run on the current project."""

from __future__ import annotations

import contextlib
import io
import sys
from typing import TextIO

import click

__all__ = ["smt"]

EXPOSED = ("list", "info", "tag", "comment", "view", "diff", "export", "sync", "version")


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
                                        "help_option_names": []})
@click.argument("command", type=click.Choice(EXPOSED))
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def smt(command: str, args: tuple[str, ...]) -> None:
    """Run Sumatra's `smt COMMAND ARGS...` on this project (URLs printed without
    passwords).

    \b
    Examples:
      smttask smt list -l          every record, long form
      smttask smt tag good LABEL   tag a record
      smttask smt diff L1 L2       compare two records
      smttask smt list --help      Sumatra's own help for a command
    """
    from .. import config, provenance

    with contextlib.redirect_stdout(_Masked(sys.stdout)):
        provenance.run_smt_command(config.find_project(), command, list(args))
