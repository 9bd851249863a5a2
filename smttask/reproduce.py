"""Reproduce recorded runs: rerun each at its commit and compare with what it recorded.

For each record the recorded commit is checked out in a temporary ``git worktree`` (the
recorded diff applied, if the run stored one); the user's working tree is never touched.
In that checkout a separate process (:mod:`smttask.replay`) rebuilds the task from the
record's description and runs it with recording off: nothing is written to the datastore
or the record store. Upstream results come from the project's datastore when present
(the inputs the record used), else they are recomputed in the checkout.

Each output is then *identical* (same bytes), *equal* (same values, or within
``rtol``/``atol``) or *different* (where, both values, the largest differences). The
recorded package versions are compared with this environment's, so that a difference
under other versions is reported as such. The outcome goes back onto the record: a tag
(``reproduced`` or ``differs``) and a dated comment.
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import _fs, config, repo, taskfile
from .errors import GitError, UsageError
from .provenance import Query, installed_version
from .view import RecordStoreView, RecordView, parse_when

__all__ = [
    "DIFFERS",
    "FAILED",
    "REPRODUCED",
    "OutputCheck",
    "PackageChange",
    "Reproduction",
    "Target",
    "exit_code",
    "judge",
    "package_changes",
    "replay",
    "reproduce",
    "select",
]

logger = logging.getLogger(__name__)

REPRODUCED, DIFFERS, FAILED = "reproduced", "differs", "could not run"


@dataclass
class OutputCheck:
    """One output compared: ``identical``, ``equal``, ``differs`` or ``missing``."""

    name: str
    state: str
    detail: str = ""

    def describe(self) -> str:
        return f"{self.name}: {self.state}" + (f" ({self.detail})" if self.detail else "")


@dataclass
class PackageChange:
    """A package whose version now differs from the recorded one ('' = not installed)."""

    name: str
    recorded: str
    current: str

    def describe(self) -> str:
        return f"{self.name} {self.recorded} recorded, {self.current or 'not installed'} now"


@dataclass
class Reproduction:
    """What reproducing one record (or one action of a crate) found."""

    label: str
    taskname: str
    commit: str
    outcome: str  # "reproduced", "differs" or "could not run"
    reason: str = ""  # why it could not run
    outputs: list[OutputCheck] = field(default_factory=list)
    packages: list[PackageChange] = field(default_factory=list)
    upstream: dict[str, str] = field(default_factory=dict)  # task -> where its result came from
    when: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def exit_code(self) -> int:
        """0 reproduced, 1 differs, 2 could not run."""
        return {REPRODUCED: 0, DIFFERS: 1}.get(self.outcome, 2)

    def headline(self) -> str:
        """``reproduced (2 outputs identical)``, ``differs (result)``, or the reason."""
        if self.outcome == FAILED:
            return f"{FAILED}: {self.reason}"
        states = [c.state for c in self.outputs]
        if self.outcome == DIFFERS:
            text = f"{DIFFERS} ({', '.join(c.name for c in self.outputs if c.state == 'differs')})"
        elif all(s == "identical" for s in states):
            n = len(states)
            text = f"{REPRODUCED} ({n} output{'s' * (n != 1)} identical)"
        else:
            text = f"{REPRODUCED} (" + ", ".join(f"{c.name} {c.state}" for c in self.outputs) + ")"
        if self.packages:
            text += f" under other package versions ({len(self.packages)} changed)"
        return text

    def lines(self) -> list[str]:
        """The details under the headline: outputs, upstream sources, package changes."""
        out = [f"output {c.describe()}" for c in self.outputs if c.state != "identical"]
        out += [f"upstream {task}: {source}" for task, source in self.upstream.items()]
        out += [f"package {p.describe()}" for p in self.packages]
        return out

    def comment(self) -> str:
        """The dated comment left on the record."""
        when = self.when.strftime("%Y-%m-%d %H:%M UTC")
        return "\n".join([f"{when}: smttask reproduce at {self.commit[:10]}: {self.headline()}",
                          *("  " + line for line in self.lines())])


# --- choosing records -----------------------------------------------------------------------

@dataclass
class Target:
    """What to reproduce: labels, task files, or filters on the record store."""

    labels: tuple[str, ...] = ()
    taskfiles: tuple[str, ...] = ()
    tasks: tuple[str, ...] = ()
    since: str | None = None
    every: bool = False


def select(target: Target, project: config.Project | None = None) -> list[RecordView]:
    """The records named by ``target``: each label (a unique prefix is enough), the newest
    finished record of each task file, and the finished records matching the filters."""
    project = project or config.find_project()
    view = RecordStoreView(project)
    chosen = [view.get(label) for label in target.labels]
    for path in taskfile.collect(target.taskfiles):
        chosen.append(_record_of_taskfile(view, path))
    if target.tasks or target.since or target.every:
        query = Query(tasks=target.tasks, statuses=("finished",),
                      since=parse_when(target.since) if target.since else None)
        chosen += list(RecordStoreView.select(query, project))
    if not (target.labels or target.taskfiles or target.tasks or target.since or target.every):
        raise UsageError("name the records to reproduce: labels, task files, --task, "
                         "--since, or --all")
    seen: set[str] = set()
    return [r for r in chosen if not (r.label in seen or seen.add(r.label))]  # type: ignore[func-returns-value]


def _record_of_taskfile(view: RecordStoreView, path: Path) -> RecordView:
    try:
        digest = json.loads(path.read_text(encoding="utf-8")).get("digest")
    except (OSError, ValueError, AttributeError) as exc:
        raise UsageError(f"{path}: not a readable task file: {exc}") from None
    for record in view.filter.status("finished"):  # newest first
        if record.digest == digest:
            return record
    raise UsageError(f"{path}: no finished record of this task (digest {digest}); "
                     "run it first")


# --- package versions ----------------------------------------------------------------------

def _current_version(name: str) -> str:
    """The installed version of the distribution providing module ``name`` ('' if none)."""
    if name == "python":  # records list the interpreter among their dependencies
        return platform.python_version()
    return installed_version(name)


def package_changes(recorded: Iterable[tuple[str, str]], skip: Iterable[str] = (), *,
                    current: Callable[[str], str] = _current_version) -> list[PackageChange]:
    """The recorded (name, version) pairs whose version differs in this environment;
    names in ``skip`` (the project's own packages) are left out. ``current`` gives the
    installed version of a module's distribution (one lookup per name and reproduce call:
    pass a memoized one)."""
    skipped = set(skip)
    changes = []
    for name, version in recorded:
        if name in skipped or name in sys.stdlib_module_names:
            continue
        now = current(name)
        if now != version and not (version == "unknown" and not now):
            changes.append(PackageChange(name, version, now))
    return changes


# --- running in a checkout -----------------------------------------------------------------

def _environment(repo_root: Path) -> dict[str, str]:
    """This environment, without PYTHONPATH entries into the user's own tree (the
    checkout's code must be imported, not today's)."""
    env = dict(os.environ)
    kept = [p for p in env.get("PYTHONPATH", "").split(os.pathsep)
            if p and not Path(p).resolve().is_relative_to(repo_root)]
    env["PYTHONPATH"] = os.pathsep.join(kept)
    if not kept:
        del env["PYTHONPATH"]
    return env


def replay(checkout: Path, jobs: list[dict[str, Any]], *, datastore: Path | None,
           rtol: float, atol: float, outside: Path, chain: bool = False
           ) -> list[dict[str, Any]]:
    """Run ``jobs`` (``key``, ``description``, recorded ``files``) in order in a fresh
    process with ``checkout`` (a project root) as working directory and import path; one
    answer per job. ``datastore``: the project whose datastore holds upstream results;
    ``chain``: later jobs reuse the results of earlier ones (a crate's upstream runs);
    ``outside``: the user's repository, whose code must not be imported."""
    with tempfile.TemporaryDirectory(prefix="smttask-replay-") as tmp:
        answers_file = Path(tmp, "answers.json")
        spec = {"checkout": str(checkout), "datastore": str(datastore) if datastore else None,
                "rtol": rtol, "atol": atol, "chain": chain, "jobs": jobs,
                "report": str(answers_file)}
        job_file = Path(tmp, "jobs.json")
        _fs.replace(job_file, json.dumps(spec))
        proc = subprocess.run([sys.executable, "-m", "smttask.replay", str(job_file)],
                              cwd=checkout, capture_output=True, text=True,
                              env=_environment(outside), check=False)
        if proc.returncode == 0 and answers_file.exists():
            return json.loads(answers_file.read_text(encoding="utf-8"))
    last = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
    logger.debug("replay failed:\n%s", proc.stderr)
    return [{"key": job["key"], "error": f"the task's process failed: {last}", "outputs": [],
             "upstream": {}} for job in jobs]


def judge(answer: dict[str, Any], reproduction: Reproduction) -> Reproduction:
    """Fill ``reproduction`` from one answer of :func:`replay`."""
    reproduction.upstream = dict(answer.get("upstream", {}))
    reproduction.outputs = [OutputCheck(o["name"], o["state"], o.get("detail", ""))
                            for o in answer.get("outputs", [])]
    missing = [c for c in reproduction.outputs if c.state == "missing"]
    if answer.get("error"):
        reproduction.outcome, reproduction.reason = FAILED, answer["error"]
    elif missing:
        reproduction.outcome = FAILED
        reproduction.reason = "nothing to compare with: " + "; ".join(
            f"output {c.name}: {c.detail}" for c in missing)
    elif any(c.state == "differs" for c in reproduction.outputs):
        reproduction.outcome = DIFFERS
    else:
        reproduction.outcome = REPRODUCED
    return reproduction


def reproduce(records: Iterable[RecordView], *, rtol: float = 0.0, atol: float = 0.0,
              tag: bool = True, progress: Callable[[Reproduction], None] | None = None
              ) -> list[Reproduction]:
    """Rerun each record at its commit and compare its outputs (see the module doc).

    Consecutive records of one commit (and diff) share a checkout and a process; each
    still gets the upstream results it used. ``tag`` stores the outcome on each record
    (tag and dated comment); ``progress`` is called with each reproduction when known.
    """
    if rtol < 0 or atol < 0:
        raise UsageError("rtol and atol must not be negative")
    records = list(records)
    if not records:
        return []
    project = records[0].project
    root = repo.repo_root(project.root)
    inside = project.root.relative_to(root)
    results: dict[str, Reproduction] = {}
    versions = functools.cache(_current_version)  # installed versions, read once per call
    runnable = []
    for record in records:
        if record.status == "finished":
            runnable.append((record, record.details()))
            continue
        rep = Reproduction(record.label, record.taskname, record.version or "", FAILED,
                           f"the record is {record.status or 'unfinished'}: only finished "
                           "records have outputs to compare")
        results[record.label] = rep
        if progress is not None:
            progress(rep)
    for (commit, diff), grouped in itertools.groupby(
            runnable, key=lambda pair: (pair[0].version or "", pair[1].diff)):
        group = list(grouped)
        answers, why = {}, ""
        try:
            with repo.checkout(root, commit, diff) as tree:
                jobs = [{"key": r.label, "description": r.description,
                         "files": [str(p) for p in r.output_files]} for r, _ in group]
                answers = {a["key"]: a for a in replay(
                    tree / inside, jobs, datastore=project.root, rtol=rtol, atol=atol,
                    outside=root)}
        except GitError as exc:
            why = str(exc)
        for record, details in group:
            rep = Reproduction(record.label, record.taskname, commit, FAILED, why)
            if record.label in answers:
                judge(answers[record.label], rep)
            rep.packages = package_changes(details.packages, project.packages,
                                           current=versions)
            results[record.label] = rep
            if tag:
                _store(record, rep)
            if progress is not None:
                progress(rep)
    return [results[r.label] for r in records]


def _store(record: RecordView, rep: Reproduction) -> None:
    """The outcome on the record, in one write: its tag (replacing the opposite one) and
    its dated line."""
    opposite = {REPRODUCED: DIFFERS, DIFFERS: REPRODUCED}.get(rep.outcome)
    record.edit(add_tags=[rep.outcome] if opposite else [],
                remove_tags=[opposite] if opposite else [], comment=rep.comment())


def exit_code(reproductions: Iterable[Reproduction]) -> int:
    """0 if every record reproduced, 2 if some could not run, else 1 (some differ)."""
    return max((r.exit_code for r in reproductions), default=0)
