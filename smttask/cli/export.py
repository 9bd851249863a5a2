"""``smttask export``: task files as workflows for other engines; records as RO-Crates."""

from __future__ import annotations

from pathlib import Path

import click

__all__ = ["export"]


@click.group("export")
def export() -> None:
    """Export task files as a workflow, or records as an RO-Crate."""


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


@export.command("rocrate")
@click.argument("labels", nargs=-1, required=True)
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True,
              help="A new folder, or a file ending in .zip.")
@click.option("--license", "license_", default="not specified", show_default=True,
              metavar="URL|SPDX|TEXT", help="The crate's license, e.g. CC-BY-4.0.")
def rocrate(labels: tuple[str, ...], output: Path, license_: str) -> None:
    """Write records as an RO-Crate (Provenance Run Crate): their outputs, the task
    files that rebuild them, parameters, code version, packages, platform and timing.

    The upstream records of a composed result come along as their own runs, linked by
    their outputs. `smttask reproduce CRATE` checks a crate again in a fresh clone of
    the repository it names (the `origin` remote).

    \b
    Examples:
      smttask export rocrate 20261125-140312_3f0c1a -o figure3.crate.zip
      smttask export rocrate 20261125-1403 20261125-1410 -o results/ --license CC-BY-4.0
    """
    from ..crate import export_rocrate

    target = export_rocrate(labels, output, license=license_)
    click.echo(f"wrote {target}")
