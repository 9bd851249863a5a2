"""Project templates: rendering with copier, the record of a render, and ``project update``.

The answers file (``.smttask-answers.yml``) names the template by a location that
survives installation, ``_src_path: smttask:<template>``, next to ``smttask_version``,
the version of smttask that rendered it. The files a render put into the project are
also kept, exactly as rendered, in ``.smttask-template.json`` (committed with the
project): the common ancestor of a later update.

:func:`update` renders the current template with the same answers and merges each file
three ways (``git merge-file``): the earlier render, your version, the new render.

- changed by the template only: replaced by the new version;
- changed by you only: left alone;
- changed by both: merged; overlapping changes are conflicts, written into the file
  between ``<<<<<<< yours`` and ``>>>>>>> template`` markers and reported;
- new in the template: created (merged with a file of yours of the same name);
- deleted by you, or dropped by the template: left as it is, and reported.

Nothing is lost: every line of yours stays in the file, and an update refuses to start
while a file it would change has uncommitted changes.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import _fs, config, repo
from .errors import ScaffoldError

__all__ = ["ANSWERS_FILE", "FileUpdate", "SNAPSHOT_FILE", "UpdateReport", "append_lines",
           "finish_render", "render", "template_dir", "update", "version"]

ANSWERS_FILE = ".smttask-answers.yml"
SNAPSHOT_FILE = ".smttask-template.json"
SOURCE_PREFIX = "smttask:"
GITIGNORE_HEADER = "# smttask: the record store, results and task files stay out of git"
#: Files of a render that are not merged: the bookkeeping, and .gitignore (lines added).
NOT_MERGED = {ANSWERS_FILE, SNAPSHOT_FILE, ".gitignore", config.CONFIG_FILE}


def template_dir(name: str) -> Path:
    """The copier template folder (inside the wheel, or in a source checkout)."""
    here = Path(__file__).resolve().parent
    for base in (here / "project_templates", here.parent / "project_templates"):
        if (base / name / "copier.yml").is_file():
            return base / name
    raise ScaffoldError(f"template {name!r} not found; choose one of package, minimal")


#: The version assumed when smttask's own is unknown (a source tree that is not installed):
#: a generated project's pyproject.toml requires at least it, and PyPI's unrelated
#: smttask 0.2.0 is below it.
OLDEST_VERSION = "0.3.0.dev0"


def version() -> str:
    """The installed smttask version (recorded in the answers file)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("smttask")
    except PackageNotFoundError:  # pragma: no cover - source tree
        return OLDEST_VERSION


def render(template: str, data: dict[str, Any], target: Path, source: Path | None = None
           ) -> dict[str, str]:
    """Render ``template`` (or the template folder ``source``) into ``target`` with
    ``data``; the rendered files that updates merge, by relative path."""
    import copier

    data = {**data, "smttask_version": version()}
    copier.run_copy(str(source or template_dir(template)), target, data=data, defaults=True,
                    overwrite=True, quiet=True)
    return finish_render(target, template)


def _files(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): p.read_text(encoding="utf-8")
            for p in sorted(folder.rglob("*")) if p.is_file()
            and p.relative_to(folder).as_posix() not in NOT_MERGED}


def finish_render(rendered: Path, template: str) -> dict[str, str]:
    """Name the template as ``smttask:<template>`` in the answers file, and keep the
    rendered files in the snapshot file (when there are any); those files."""
    answers = rendered / ANSWERS_FILE
    if answers.exists():
        text = re.sub(r"(?m)^_src_path: .*$", f"_src_path: {SOURCE_PREFIX}{template}",
                      answers.read_text(encoding="utf-8"))
        answers.write_text(text, encoding="utf-8")
    files = _files(rendered)
    if files:
        snap = {"template": template, "smttask_version": version(), "files": files}
        (rendered / SNAPSHOT_FILE).write_text(json.dumps(snap, indent=1, ensure_ascii=False)
                                              + "\n", encoding="utf-8")
    return files


def append_lines(path: Path, lines: list[str]) -> list[str]:
    """Add to ``path`` (a .gitignore) the lines it lacks, under smttask's header."""
    existing = path.read_text() if path.exists() else ""
    have = {ln.strip() for ln in existing.splitlines()}
    missing = [ln for ln in lines if ln not in have and ln.lstrip("/") not in have]
    if missing:
        sep = "" if not existing or existing.endswith("\n") else "\n"
        blank = "\n" if existing else ""
        _fs.replace(path, existing + sep + blank + GITIGNORE_HEADER + "\n"
                    + "\n".join(missing) + "\n")
    return missing


# --- update ------------------------------------------------------------------------------

@dataclass
class FileUpdate:
    """What an update did to one file: ``action`` is updated, merged, conflict, added,
    up to date, yours (changed by you only), kept or not restored."""

    path: str
    action: str
    conflicts: int = 0
    note: str = ""

    def __str__(self) -> str:
        return f"{self.action:>10}  {self.path}" + (f"  ({self.note})" if self.note else "")


@dataclass
class UpdateReport:
    """The files of an update; ``conflicts`` lists those left with conflict markers."""

    template: str
    old_version: str
    new_version: str
    files: list[FileUpdate] = field(default_factory=list)
    gitignore_added: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def conflicts(self) -> list[FileUpdate]:
        return [f for f in self.files if f.action == "conflict"]

    @property
    def changed(self) -> list[FileUpdate]:
        return [f for f in self.files if f.action in ("updated", "merged", "conflict", "added")]


def _answers(root: Path) -> tuple[str, dict[str, Any]]:
    import yaml

    path = root / ANSWERS_FILE
    if not path.is_file():
        raise ScaffoldError(f"{path} is missing: only projects made by `smttask project init` "
                            "can be updated")
    try:
        answers = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ScaffoldError(f"{ANSWERS_FILE}: cannot read it: {exc}") from None
    src = str(answers.get("_src_path", ""))
    # Projects made before the answers named the template: the last folder of the path.
    name = src.removeprefix(SOURCE_PREFIX) if src.startswith(SOURCE_PREFIX) else \
        Path(src).name
    if name not in ("package", "minimal"):
        raise ScaffoldError(f"{ANSWERS_FILE}: _src_path {src!r} names no smttask template "
                            "(expected smttask:package or smttask:minimal)")
    return name, {k: v for k, v in answers.items() if not k.startswith("_")}


def _plan(path: str, ours: str | None, base: str | None, theirs: str | None,
          labels: tuple[str, str, str]) -> tuple[FileUpdate, str | None]:
    """What to do with one file, and the text to write (None: leave it)."""
    if theirs is None:
        if ours is not None and base is not None:
            return FileUpdate(path, "kept", note="no longer in the template"), None
        return FileUpdate(path, "up to date"), None
    if ours is None:
        if base is None:
            return FileUpdate(path, "added"), theirs
        if base == theirs:
            return FileUpdate(path, "up to date", note="deleted by you"), None
        return FileUpdate(path, "not restored", note="deleted by you, changed in the "
                          "template"), None
    if ours == theirs or base == theirs:
        return FileUpdate(path, "up to date" if ours == theirs else "yours"), None
    if ours == base:
        return FileUpdate(path, "updated"), theirs
    merged, n = repo.merge_texts(ours, base or "", theirs, labels)
    if n:
        return FileUpdate(path, "conflict", n, f"{n} conflict{'s' if n > 1 else ''}: "
                          "resolve the <<<<<<< markers"), merged
    return FileUpdate(path, "merged"), merged


def update(root: str | os.PathLike[str] | None = None, *, source: Path | None = None,
           dry_run: bool = False) -> UpdateReport:
    """Bring the project at ``root`` (default: the current one) up to date with its
    template (or the template folder ``source``); see the module docstring."""
    root = Path(root).resolve() if root is not None else config.find_project().root
    template, data = _answers(root)
    snap_path = root / SNAPSHOT_FILE
    snapshot = json.loads(snap_path.read_text(encoding="utf-8")) if snap_path.exists() else {}
    base_files: dict[str, str] = snapshot.get("files", {})
    old = str(data.get("smttask_version") or snapshot.get("smttask_version") or "unknown")
    report = UpdateReport(template, old, version())
    if not snap_path.exists() and template != "minimal":
        report.notes.append(f"no {SNAPSHOT_FILE} (a project made before smttask kept its "
                            "render): every file that differs from the template is merged "
                            "as a conflict")
    with tempfile.TemporaryDirectory(prefix="smttask-update-") as tmp:
        rendered = Path(tmp) / "project"
        new_files = render(template, data, rendered, source)
        labels = ("yours", f"template (smttask {old})", f"template (smttask {version()})")
        writes: dict[str, str] = {}
        for path in sorted(set(new_files) | set(base_files)):
            target = root / path
            ours = target.read_text(encoding="utf-8") if target.is_file() else None
            done, text = _plan(path, ours, base_files.get(path), new_files.get(path), labels)
            report.files.append(done)
            if text is not None:
                writes[path] = text
        gitignore = rendered / ".gitignore"
        ignore_lines = [ln for ln in gitignore.read_text().splitlines()
                        if ln and not ln.startswith("#")] if gitignore.exists() else []
        touched = [*writes, ANSWERS_FILE, SNAPSHOT_FILE, ".gitignore"]
        dirty = [p for p in repo.uncommitted(root, touched) if p in writes]
        if dirty:
            raise ScaffoldError("uncommitted changes in files the update would change: "
                                + ", ".join(dirty) + "; commit them first (nothing was "
                                "changed)")
        if dry_run:
            return report
        for path, text in writes.items():
            target = root / path
            target.parent.mkdir(parents=True, exist_ok=True)
            mode = target.stat().st_mode & 0o777 if target.exists() else None
            _fs.replace(target, text, mode=mode)
        for name in (ANSWERS_FILE, SNAPSHOT_FILE):
            if (rendered / name).exists():
                _fs.replace(root / name, (rendered / name).read_bytes())
        report.gitignore_added = append_lines(root / ".gitignore", ignore_lines)
    return report
