"""``smttask export``: task files as workflows for other engines."""

from __future__ import annotations

from pathlib import Path

import click

__all__ = ["export"]


@click.group("export")
def export() -> None:
    """Export task files as a workflow for another engine."""


@export.command("snakemake")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("Snakefile"), show_default=True, help="Where to write it.")
@click.option("--import", "imports", multiple=True, metavar="PKG")
def snakemake(paths: tuple[str, ...], output: Path, imports: tuple[str, ...]) -> None:
    """Write a Snakefile: one rule per task, each running `smttask run` on its task file.

    \b
    Examples:
      smttask export snakemake tasks/ && snakemake --cores 4
      smttask export snakemake -o workflow/Snakefile tasks/
    """
    from ..export import snakefile

    snakefile(paths, allow=imports, target=output)
    click.echo(f"wrote {output}; run `snakemake --cores N` in the project folder")
