"""``smttask project init``: the questions, the copier render, and the project bootstrap.

Nothing is written until every answer is known and confirmed. The template is rendered
into a temporary folder first; a file that exists in the destination with another content
is a conflict and stops everything. Then files are copied (never over existing ones),
``.gitignore`` gets the lines it lacks, ``smttask.toml`` is written with comments, ``.smt/``
and its record store are created, and, if asked, the git repository and its first commit.
Any failure or Ctrl-C on the way removes what was created.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sys
import tempfile
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from . import config, repo, store_url, templates
from .errors import ScaffoldError
from .templates import GITIGNORE_HEADER, template_dir

__all__ = ["Answers", "InitReport", "TEMPLATES", "ask", "commit_config", "config_uncommitted",
           "init", "template_dir"]


@dataclass(frozen=True)
class Template:
    """A project template shipped in ``project_templates/``."""

    name: str
    description: str
    dirty_suggestions: tuple[str, ...]


# Descriptions fit an 80-column terminal after the wizard's "  Description: ".
TEMPLATES = {
    "package": Template("package", "a new project: a package, an example task, run.py, "
                        "reports/", ("reports", "labnotes")),
    "minimal": Template("minimal", "an existing repository: only smttask.toml, .smt/, "
                        ".gitignore", ("reports", "labnotes", "notebooks")),
}


def package_name(project_name: str) -> str:
    """A valid Python package name derived from the project name."""
    name = re.sub(r"\W+", "_", project_name.strip().lower()).strip("_") or "project"
    return f"p_{name}" if name[0].isdigit() else name


# --- answers -----------------------------------------------------------------------------

class Answers(BaseModel):
    """Everything ``init`` needs; validated like smttask.toml."""

    model_config = ConfigDict(extra="forbid")

    name: str
    template: Literal["package", "minimal"] = "package"
    input: str = "data"
    output: str = "data/run_dump"
    tasks: str = "tasks"
    dirty_directories: list[str] = []
    on_changed: Literal["error", "store-diff"] = "error"
    record_store: str = ".smt/records"
    git: bool = True

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return config.check_name(value)

    @field_validator("record_store")
    @classmethod
    def _store(cls, value: str) -> str:
        return store_url.check(value, password_allowed=True)  # used, never written

    @field_validator("input", "output", "tasks")
    @classmethod
    def _relative(cls, value: str) -> str:
        return config.normalise_relpath(value)

    @field_validator("dirty_directories")
    @classmethod
    def _dirs(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(config.normalise_relpath(v) for v in value))

    @model_validator(mode="after")
    def _output_inside_input(self) -> Answers:
        config.check_output(self.output, self.input)
        return self

    def toml(self) -> str:
        return config.render_config(
            self.name, input=self.input, output=self.output, tasks=self.tasks,
            on_changed=self.on_changed, dirty_directories=self.dirty_directories,
            record_store=store_url.without_password(self.record_store))


def _explain(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    msg = err["msg"].removeprefix("Value error, ")
    return f"{loc}: {msg}" if loc else msg


def make_answers(**values: Any) -> Answers:
    try:
        return Answers(**values)
    except ValidationError as exc:
        raise ScaffoldError(_explain(exc)) from None


# --- the wizard --------------------------------------------------------------------------

OPTION_OF = {
    "name": "--name", "template": "--template", "input": "--input", "output": "--output",
    "dirty_directories": "--dirty", "on_changed": "--on-changed",
    "record_store": "--record-store", "git": "--git/--no-git",
}


def defaults(dest: Path) -> dict[str, Any]:
    empty = not dest.exists() or not any(p.name != ".git" for p in dest.iterdir())
    template = "package" if empty else "minimal"
    name = re.sub(r"[^\w\- ]", "-", dest.resolve().name).lstrip("-_ ") or "project"
    return {"name": name, "template": template, "input": "data", "output": "data/run_dump",
            "dirty_directories": list(TEMPLATES[template].dirty_suggestions[:2]),
            "on_changed": "error", "record_store": ".smt/records",
            "git": not repo.in_repository(dest)}


def _ask_text(message: str, default: str, check: Callable[[str], Any]) -> str:
    """A text question, asked again until ``check`` accepts the answer; each refusal is
    explained on the lines below the answer (questionary's own validation prints on the
    terminal's last row, far from the question)."""
    import questionary

    while True:
        answer = questionary.text(message, default=default).unsafe_ask().strip()
        try:
            check(answer)
        except ValueError as exc:
            width = min(shutil.get_terminal_size().columns, 80) - 1
            for line in textwrap.wrap(str(exc), width, initial_indent="  ✗ ",
                                      subsequent_indent="    ", break_long_words=False,
                                      break_on_hyphens=False):
                questionary.print(line, style="fg:ansired")
            default = answer  # to be corrected rather than typed again
            continue
        return answer


def ask(dest: Path, given: dict[str, Any], *, interactive: bool,
        echo: Callable[[str], None] = print) -> Answers | None:
    """Complete ``given`` (answers from options) with defaults or questions; None if declined.

    ``interactive=False`` uses the defaults for everything not given.
    """
    values = {**defaults(dest), **{k: v for k, v in given.items() if v is not None}}
    if given.get("template") and given.get("dirty_directories") is None:
        values["dirty_directories"] = list(TEMPLATES[values["template"]].dirty_suggestions[:2])
    if not interactive:
        return make_answers(**values)
    import questionary

    # Each question with a typical answer fits one line of an 80-column terminal.
    def text(key: str, message: str, check: Callable[[str], Any]) -> None:
        if given.get(key) is None:
            values[key] = _ask_text(message, str(values[key]), check)

    text("name", "Project name:", config.check_name)
    if given.get("template") is None:
        values["template"] = questionary.select(
            "Template:", default=values["template"],
            choices=[questionary.Choice(t.name, value=t.name, description=t.description)
                     for t in TEMPLATES.values()]).unsafe_ask()
    text("input", "Input datastore (earlier results are found here):", config.normalise_relpath)
    values["input"] = config.normalise_relpath(values["input"])
    if given.get("output") is None:
        values["output"] = f"{values['input']}/run_dump"
    text("output", "Output datastore (new results; inside the input one):",
         lambda v: config.check_output(v, values["input"]))
    if given.get("dirty_directories") is None:
        suggestions = TEMPLATES[values["template"]].dirty_suggestions
        chosen = questionary.checkbox(
            "Dirty directories (changes there never block a run):",
            instruction="(space, enter)",
            choices=[questionary.Choice(d, checked=i < 2) for i, d in enumerate(suggestions)],
        ).unsafe_ask()
        extra = _ask_text("Other dirty directories (comma-separated, empty for none):", "",
                          lambda v: [config.normalise_relpath(d) for d in v.split(",")
                                     if d.strip()])
        values["dirty_directories"] = chosen + [d.strip() for d in extra.split(",") if d.strip()]
    if given.get("on_changed") is None:
        values["on_changed"] = questionary.select(
            "When code has uncommitted changes:", default=values["on_changed"], choices=[
                questionary.Choice("error: refuse to record (commit first)", value="error"),
                questionary.Choice("store-diff: record the diff and run", value="store-diff"),
            ]).unsafe_ask()
    text("record_store", "Record store (SQLite file, or a postgresql:// URL):",
         lambda v: store_url.check(v, password_allowed=True))
    if given.get("git") is None and values["git"]:
        values["git"] = questionary.confirm(
            "No git repository here: create one with a first commit?", default=True
        ).unsafe_ask()
    answers = make_answers(**values)
    echo(summary(dest, answers))
    return answers if questionary.confirm("Create the project?", default=True).unsafe_ask() \
        else None


def summary(dest: Path, a: Answers) -> str:
    rows = [("folder", str(dest)), ("project", a.name), ("template", a.template),
            ("input datastore", a.input), ("output datastore", a.output),
            ("dirty directories", ", ".join(a.dirty_directories) or "(none)"),
            ("on uncommitted code", a.on_changed),
            ("record store", store_url.mask(a.record_store)),
            ("git", "create the repository and a first commit" if a.git else "leave as is")]
    return "\n".join(f"  {k:>19}: {v}" for k, v in rows)


# --- creating the project ----------------------------------------------------------------

@dataclass
class InitReport:
    """What ``init`` did."""

    root: Path
    created: list[Path] = field(default_factory=list)
    gitignore_added: list[str] = field(default_factory=list)
    git_created: bool = False
    commit: str | None = None
    notes: list[str] = field(default_factory=list)


class _Undo:
    """Remember what was created, to remove it again if init fails."""

    def __init__(self) -> None:
        self.paths: list[Path] = []
        self.restore: dict[Path, bytes] = {}

    def created(self, path: Path) -> None:
        self.paths.append(path)

    def mkdir(self, path: Path) -> None:
        missing = [p for p in (path, *path.parents) if not p.exists()]
        path.mkdir(parents=True, exist_ok=True)
        self.paths.extend(reversed(missing))

    def rollback(self) -> None:
        for path, content in self.restore.items():
            path.write_bytes(content)
        for path in reversed(self.paths):
            with contextlib.suppress(OSError):
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()


def _render(answers: Answers, target: Path, source: Path | None) -> None:
    data = answers.model_dump(include={"input", "output", "tasks", "dirty_directories",
                                       "on_changed", "record_store"})
    data["record_store"] = store_url.without_password(answers.record_store)
    data["project_name"] = answers.name
    if answers.template == "package":
        data["package"] = package_name(answers.name)
    templates.render(answers.template, data, target, source)


def _files(folder: Path) -> Iterator[Path]:
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            yield path.relative_to(folder)



def _gitignore_lines(answers: Answers, rendered: Path) -> list[str]:
    lines = [".smt/", f"/{answers.input}/", f"/{answers.tasks}/"]
    template = rendered / ".gitignore"
    if template.exists():
        lines += [ln for ln in template.read_text().splitlines() if ln and not ln.startswith("#")]
    return lines


def init(dest: str | os.PathLike[str], answers: Answers, *, source: Path | None = None
         ) -> InitReport:
    """Create the project in ``dest`` (see the module docstring). ``source``: a template
    folder to render instead of the shipped template (for template development)."""
    from . import provenance

    dest = Path(dest).resolve()
    if (dest / config.CONFIG_FILE).exists():
        raise ScaffoldError(f"{dest} is already an smttask project ({config.CONFIG_FILE} "
                            "exists); nothing was changed")
    report = InitReport(dest)
    undo = _Undo()
    try:
        with tempfile.TemporaryDirectory(prefix="smttask-init-") as tmp:
            rendered = Path(tmp) / "project"
            _render(answers, rendered, source)
            (rendered / config.CONFIG_FILE).write_text(answers.toml())
            files = [f for f in _files(rendered) if f.name != ".gitignore" or f.parent.parts]
            conflicts = [str(f) for f in files if (dest / f).exists()
                         and (dest / f).read_bytes() != (rendered / f).read_bytes()]
            if conflicts:
                raise ScaffoldError(
                    "these files exist with another content: " + ", ".join(conflicts)
                    + "; nothing was changed (move them away, or use --template minimal)")
            undo.mkdir(dest)
            for rel in files:
                target = dest / rel
                if target.exists():
                    continue
                undo.mkdir(target.parent)
                shutil.copyfile(rendered / rel, target)
                undo.created(target)
                report.created.append(rel)
            report.gitignore_added = _merge_gitignore(dest, _gitignore_lines(answers, rendered),
                                                     undo)
        password = store_url.password(answers.record_store)
        project = replace(config.load_project(dest), password=password)
        if not project.smt_dir.exists():
            undo.created(project.smt_dir)
        provenance.ensure_store(project)
        if password:
            report.notes.append(
                "the record store's password was used to create it and written nowhere; "
                f"give it to later commands with PGPASSWORD, ~/.pgpass or {store_url.ENV}")
        if answers.git and not repo.in_repository(dest):
            undo.created(dest / ".git")
            report.git_created = True
            report.commit = repo.commit_all(dest, f"Start the {answers.name} project with smttask")
            if report.commit is None:
                report.notes.append("created the git repository but could not commit (set "
                                    "`git config user.name` and `user.email`, then commit)")
        elif not answers.git and not repo.in_repository(dest):
            report.notes.append("no git repository: run `git init` and commit before "
                                "recording runs")
        else:
            report.notes.append("commit smttask.toml and .gitignore (and the new files) "
                                "before recording runs")
    except BaseException:
        undo.rollback()
        raise
    return report


def _merge_gitignore(dest: Path, lines: list[str], undo: _Undo) -> list[str]:
    path = dest / ".gitignore"
    existing = path.read_text() if path.exists() else ""
    have = {ln.strip() for ln in existing.splitlines()}
    missing = [ln for ln in lines if ln not in have and ln.lstrip("/") not in have]
    if not missing:
        return []
    if path.exists():
        undo.restore[path] = existing.encode()
    else:
        undo.created(path)
    sep = "" if not existing or existing.endswith("\n") else "\n"
    blank = "\n" if existing else ""
    path.write_text(existing + sep + blank + GITIGNORE_HEADER + "\n" + "\n".join(missing) + "\n")
    return missing


def config_uncommitted(project: config.Project) -> bool:
    """True if smttask.toml has changes git has not committed (an edit blocks recorded
    runs until it is committed)."""
    path = Path(project.config_path)
    return bool(repo.uncommitted(path.parent, [path.name]))


def commit_config(project: config.Project, message: str) -> str:
    """Commit smttask.toml alone (other staged changes stay staged); the commit."""
    return repo.commit_file(Path(project.config_path), message)


def interactive_terminal() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()


def missing_answers(given: dict[str, Any]) -> list[str]:
    return [OPTION_OF[k] for k in OPTION_OF if given.get(k) is None]
