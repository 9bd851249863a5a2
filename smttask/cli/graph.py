"""``smttask graph``: the task graph of task files, as a tree, DOT text or SVG."""

from __future__ import annotations

import click

__all__ = ["graph"]


@click.command("graph")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--dot", "dot_file", type=click.Path(dir_okay=False, allow_dash=True),
              metavar="FILE", help="Also write the graph as Graphviz DOT text (- : only "
              "the DOT text, to stdout).")
@click.option("--svg", "svg_file", type=click.Path(dir_okay=False), metavar="FILE",
              help="Also write the graph as an SVG picture.")
@click.option("--engine", type=click.Choice(["auto", "dot", "builtin"]), default="auto",
              show_default=True, help="SVG by Graphviz's dot (auto: when installed) or by "
              "smttask's built-in layout.")
@click.option("--collapse/--no-collapse", default=None,
              help="One node per task name, with counts [default: when over 30 tasks].")
@click.option("--values", is_flag=True, help="Plain inputs as nodes of their own.")
@click.option("--import", "imports", multiple=True, metavar="PKG",
              help="Also allow task files to import PKG.")
def graph(paths: tuple[str, ...], dot_file: str | None, svg_file: str | None, engine: str,
          collapse: bool | None, values: bool, imports: tuple[str, ...]) -> None:
    """Print the tasks of the task files in PATHS and everything upstream of them as a
    tree: name, short digest, kind and status (in memory, on disk, would run), each
    input task under the input name it is given as. A task shared by several others is
    drawn once; more than 30 tasks are collapsed into one line per task name, with
    counts and the values each input takes.

    \b
    Examples:
      smttask graph tasks/                         the sweep, collapsed by task name
      smttask graph --no-collapse tasks/analyze__3f0c….taskdesc.json
      smttask graph tasks/ --svg sweep.svg --dot sweep.dot
      smttask graph tasks/ --dot - | dot -Tpng > sweep.png

    SVG is drawn by Graphviz's `dot` when it is installed; otherwise by a simple
    built-in layout (and --engine dot fails, saying how to install Graphviz).
    """
    from ..graph import from_files

    g = from_files(paths, values=values, allow=imports)
    if dot_file == "-":
        click.echo(g.dot(collapse), nl=False)
        return
    click.echo(g.tree(collapse))
    for name, fmt in ((dot_file, "dot"), (svg_file, "svg")):
        if name:
            g.save(name, fmt, engine=engine, collapse=collapse)  # type: ignore[arg-type]
            click.echo(f"wrote {name}", err=True)
