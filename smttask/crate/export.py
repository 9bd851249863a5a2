"""Write records as a Provenance Run Crate (Workflow Run RO-Crate profiles 0.5).

Each record is one tool run (a ``CreateAction``) whose instrument is its task file; the
upstream records of a composed result are their own runs, linked by their outputs (a
``ParameterConnection`` from an upstream output to the input it fed). Together they are
one run of ``workflow.json``, orchestrated by smttask (an ``OrganizeAction`` with one
``ControlAction`` per step). The crate is written with the ``rocrate`` library::

    ro-crate-metadata.json
    README.md                          what is in it, how to check it
    workflow.json                      the task files, the repository, the project folder
    tasks/<label>/<Task>__<digest>.taskdesc.json
    outputs/<label>/<file>             byte copies of the datastore's files
    records/<label>.json               the record: parameters, packages, platform, …
    records/<label>.diff               the uncommitted changes it ran with (store-diff)
"""

from __future__ import annotations

import functools
import importlib.metadata
import io
import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from .. import _fs, config, repo
from ..errors import UsageError
from ..view import RecordStoreView, RecordView
from .lineage import Step, lineage

__all__ = ["PROFILES", "WFRUN_CONTEXT", "export_rocrate"]

WFRUN_CONTEXT = "https://w3id.org/ro/terms/workflow-run/context"
PROFILES = {**{f"https://w3id.org/ro/wfrun/{kind}/0.5": f"{kind.title()} Run Crate"
               for kind in ("process", "workflow", "provenance")},
            "https://w3id.org/workflowhub/workflow-ro-crate/1.0": "Workflow RO-Crate"}
_COMPLETED = "http://schema.org/CompletedActionStatus"


def _one(items: list[Any]) -> Any:
    """A single value for a one-element list (RO-Crate prefers it), else the list."""
    return items[0] if len(items) == 1 else items


def _time(when: datetime) -> str:
    return when.isoformat(timespec="milliseconds")


def _value(value: Any) -> tuple[str, Any]:
    """(additionalType, PropertyValue value) of a recorded input."""
    if isinstance(value, bool):
        return "Boolean", value
    if isinstance(value, int):
        return "Integer", value
    if isinstance(value, float):
        return "Float", value
    if isinstance(value, str):
        return "Text", value
    if isinstance(value, dict) and "npy" in value:
        shape = "×".join(map(str, value.get("shape", []))) or "scalar"
        return "PropertyValue", f"array {value.get('dtype')} {shape} (data in the task file)"
    return "PropertyValue", json.dumps(value)


def _format(path: Path) -> str:
    return "application/x-npy" if path.suffix == ".npy" else "application/json"


def _sha256(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _output_names(record: RecordView) -> dict[Path, str]:
    """Each output file's output name (its file name when today's code cannot tell)."""
    from ..errors import SmttaskError
    from ..outputs import output_of

    try:
        specs = record.task.output_specs
    except SmttaskError:
        specs = ()
    names = {}
    for path in record.output_files:
        spec = output_of(path, record.digest, specs) if specs else None
        names[path] = spec.name if spec is not None else path.name
    return names


@dataclass
class _Placed:
    """The entities of one step, for the workflow-level entities that refer to them."""

    tool: Any
    how: Any
    control: Any
    action: Any
    outputs: list[Any]
    out_params: list[Any]


class _Builder:
    """Adds the entities of one crate, step by step (upstream first)."""

    def __init__(self, project: config.Project) -> None:
        from . import rocrate

        rc = rocrate()
        self.Entity = rc.model.contextentity.ContextEntity
        self.project = project
        self.crate = crate = rc.rocrate.ROCrate(gen_preview=False, version="1.1")
        crate.metadata.extra_contexts.append(WFRUN_CONTEXT)
        self.root = repo.repo_root(project.root)
        self.url = repo.remote_url(self.root)
        version = importlib.metadata.version("smttask")
        self.lang = crate.add(rc.model.computerlanguage.ComputerLanguage(
            crate, "#smttask-taskdesc", properties={
                "name": "smttask task description", "alternateName": "taskdesc/1",
                "version": version}))
        self.engine = self.add("#smttask", "SoftwareApplication", name="smttask",
                               softwareVersion=version)
        self.placed: dict[str, _Placed] = {}
        self.values: list[Any] = []  # every PropertyValue: the workflow run's inputs
        self.in_params: list[Any] = []  # the parameters they fill: the workflow's inputs
        self.connections: list[Any] = []
        self.people: dict[str, Any] = {}

    def add(self, eid: str, kind: str | list[str], **props: Any) -> Any:
        return self.crate.add(self.Entity(self.crate, eid, properties={"@type": kind, **props}))

    def person(self, user: str) -> Any:
        if user not in self.people:
            name, _, email = user.partition(" <")
            name = name.strip() or user
            props = {"email": email.rstrip(">")} if email else {}
            self.people[user] = self.add("#person-" + "-".join(name.lower().split()), "Person",
                                         name=name, **props)
        return self.people[user]

    def outputs(self, step: Step) -> tuple[list[Any], list[Any]]:
        """The output files (byte copies) and the output parameters of one record."""
        files, params = [], []
        for path, output in _output_names(step.record).items():
            param = self.crate.add_formal_parameter(
                output, "File", identifier=f"#{step.label}-out-{output}",
                properties={"encodingFormat": _format(path)})
            params.append(param)
            files.append(self.crate.add_file(
                path, dest_path=f"outputs/{step.label}/{path.name}", properties={
                    "name": f"{output} of {step.record.taskname}",
                    "encodingFormat": _format(path), "contentSize": path.stat().st_size,
                    "sha256": _sha256(path), "exampleOfWork": param}))
        return files, params

    def inputs(self, step: Step) -> tuple[list[Any], list[Any], list[Any]]:
        """The input parameters, what filled them (values or upstream files), and the
        connections from upstream outputs."""
        params, used, links = [], [], []
        for name, value in step.record.description.get("inputs", {}).items():
            pid = f"#{step.label}-in-{name}"
            if name in step.feeds:
                ups = [self.placed[up.label] for up in step.feeds[name]]
                files = [f for up in ups for f in up.outputs]
                param = self.crate.add_formal_parameter(
                    name, "File", identifier=pid, properties={"multipleValues": len(files) > 1})
                for source in (s for up in ups for s in up.out_params):
                    links.append(self.add(
                        f"{source.id}-to-{step.label}-{name}", "ParameterConnection",
                        sourceParameter=source, targetParameter=param))
                for f in files:
                    f.append_to("exampleOfWork", param)
                used += files
            else:
                kind, shown = _value(value)
                param = self.crate.add_formal_parameter(name, kind, identifier=pid)
                self.in_params.append(param)
                pv = self.add(f"#{step.label}-value-{name}", "PropertyValue", name=name,
                              value=shown, exampleOfWork=param)
                used.append(pv)
                self.values.append(pv)
            params.append(param)
        self.connections += links
        return params, used, links

    def step(self, step: Step, position: int) -> _Placed:
        """Everything about one record: task file (the tool), outputs, run, step."""
        rec, label = step.record, step.label
        outs, out_params = self.outputs(step)
        in_params, used, links = self.inputs(step)
        tool_props: dict[str, Any] = {
            "@type": ["File", "SoftwareSourceCode"], "name": f"{rec.taskname} task file",
            "description": f"smttask task {rec.description.get('module')}.{rec.taskname}, "
                           f"defined in {rec.main_file}; Task.from_desc(path) rebuilds it",
            "encodingFormat": "application/json", "programmingLanguage": self.lang,
            "version": rec.version, "input": _one(in_params), "output": _one(out_params),
            "softwareRequirements": [self.package(n, v) for n, v in step.details.packages
                                     if n not in self.project.packages]}
        if self.url:
            tool_props["codeRepository"] = self.url
        text = json.dumps(rec.description, ensure_ascii=False, indent=1).encode()
        tool = self.crate.add_file(
            io.BytesIO(text), dest_path=f"tasks/{label}/{rec.taskname}__{rec.digest}"
            ".taskdesc.json", properties=tool_props)
        end = rec.timestamp + timedelta(seconds=rec.duration or 0)
        props: dict[str, Any] = {
            "name": f"Run of {rec.taskname} (record {label})", "identifier": label,
            "description": rec.reason or f"smttask run of {rec.taskname}",
            "startTime": _time(rec.timestamp), "endTime": _time(end),
            "actionStatus": _COMPLETED}
        if rec.user:
            props["agent"] = self.person(rec.user)
        action = self.crate.add_action(tool, identifier=f"#run-{label}", object=_one(used),
                                       result=_one(outs), properties=props)
        self.record_files(step, action, tool.id, [o.id for o in outs])
        how = self.add(f"#step-{label}", "HowToStep", position=str(position),
                       name=rec.taskname, workExample=tool)
        if links:
            how["connection"] = _one(links)
        control = self.add(f"#control-{label}", "ControlAction", instrument=how,
                           object=action, name=f"orchestrate {rec.taskname}")
        placed = self.placed[label] = _Placed(tool, how, control, action, outs, out_params)
        return placed

    def package(self, name: str, version: str) -> Any:
        """A package the run imported; its PyPI page when its distribution is known."""
        dists = _distributions().get(name)
        eid = (f"https://pypi.org/project/{dists[0]}/{version}/" if dists
               else f"#package-{name}-{version}")
        return self.add(eid, "SoftwareApplication", name=name, softwareVersion=version)

    def record_files(self, step: Step, action: Any, tool_id: str, outputs: list[str]) -> None:
        """``records/<label>.json`` (everything the record says) and its diff, if any."""
        rec, details = step.record, step.details
        summary = {
            "label": rec.label, "task": rec.taskname, "digest": rec.digest,
            "status": rec.status, "tags": sorted(rec.tags),
            "timestamp": rec.timestamp.isoformat(), "duration": rec.duration,
            "reason": rec.reason, "outcome": rec.outcome, "user": rec.user,
            "repository": self.url, "commit": rec.version, "main_file": rec.main_file,
            "script_arguments": rec.script_arguments, "parameters": rec.params,
            "packages": dict(details.packages), "platforms": details.platforms,
            "stdout_stderr": details.stdout_stderr, "task_file": tool_id, "outputs": outputs,
            "diff": f"records/{rec.label}.diff" if details.diff else None}
        text = json.dumps(summary, indent=1, ensure_ascii=False, default=str).encode()
        self.crate.add_file(io.BytesIO(text), dest_path=f"records/{rec.label}.json", properties={
            "name": f"record {rec.label}", "encodingFormat": "application/json",
            "description": "The record of this run, as smttask read it", "about": action})
        if details.diff:
            self.crate.add_file(io.BytesIO(details.diff.encode()),
                                dest_path=f"records/{rec.label}.diff", properties={
                                    "name": f"uncommitted changes of record {rec.label}",
                                    "encodingFormat": "text/x-diff", "about": action,
                                    "description": f"applied on top of commit {rec.version}"})

    def finish(self, steps: list[Step], wanted: list[RecordView], license: str) -> None:
        """The workflow, its run, smttask's orchestration, the root and a README."""
        crate, names = self.crate, ", ".join(r.label for r in wanted)
        top = [self.placed[r.label] for r in wanted]
        all_placed = [self.placed[s.label] for s in steps]
        index = {"smttask": "workflow/1", "repository": self.url,
                 "project": self.project.root.relative_to(self.root).as_posix(),
                 "tasks": [p.tool.id for p in all_placed]}
        workflow = crate.add_workflow(
            io.BytesIO(json.dumps(index, indent=1).encode()), dest_path="workflow.json",
            main=True, lang=self.lang, properties={
                "@type": ["File", "SoftwareSourceCode", "ComputationalWorkflow", "HowTo"],
                "name": f"smttask tasks of {names}", "encodingFormat": "application/json",
                "version": wanted[0].version,
                "hasPart": [p.tool for p in all_placed], "step": [p.how for p in all_placed],
                "input": self.in_params,
                "output": _one([q for p in top for q in p.out_params]),
                "connection": _one(self.connections)})
        if self.url:
            workflow["codeRepository"] = self.url
        starts = [s.record.timestamp for s in steps]
        ends = [s.record.timestamp + timedelta(seconds=s.record.duration or 0) for s in steps]
        people = list(self.people.values())
        run = crate.add_action(workflow, identifier="#run", object=self.values,
                               result=_one([f for p in top for f in p.outputs]), properties={
                                   "name": f"smttask run of {names}",
                                   "description": f"The runs that made {names}, "
                                                  "upstream runs included",
                                   "startTime": _time(min(starts)), "endTime": _time(max(ends)),
                                   "actionStatus": _COMPLETED, **_agent(people)})
        self.add("#smttask-run", "OrganizeAction", name="Run of smttask", instrument=self.engine,
                 object=[p.control for p in all_placed], result=run,
                 startTime=_time(min(starts)), endTime=_time(max(ends)))
        root = crate.root_dataset
        root["name"] = f"smttask results: {names}"
        root["description"] = (
            f"Results of {len(wanted)} smttask record(s) of project {self.project.name}, with "
            f"{len(steps) - len(wanted)} upstream record(s), their task files and provenance.")
        root["license"] = _license(self, license)
        root["conformsTo"] = [self.add(pid, "CreativeWork", name=name, version=pid[-3:])
                              for pid, name in PROFILES.items()] + _as_list(root.get("conformsTo"))
        root["mentions"] = [run, *(p.action for p in all_placed)]
        if people:
            root["author"] = _one(people)
        readme = crate.add_file(io.BytesIO(_readme(self, steps, wanted).encode()),
                                dest_path="README.md", properties={
                                    "name": "README", "encodingFormat": "text/markdown",
                                    "about": root})
        root.append_to("hasPart", readme)


@functools.cache
def _distributions() -> dict[str, list[str]]:
    return dict(importlib.metadata.packages_distributions())


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value] if value else []


def _agent(people: list[Any]) -> dict[str, Any]:
    return {"agent": _one(people)} if people else {}


def _license(b: _Builder, text: str) -> Any:
    """A license entity for a URL or an SPDX identifier (``CC-BY-4.0``), else the text."""
    if "://" not in text and text.replace("-", "").replace(".", "").isalnum():
        text = f"https://spdx.org/licenses/{text}"
    if "://" in text:
        return b.add(text, "CreativeWork", name=text.rstrip("/").rsplit("/", 1)[-1])
    return text


def _readme(b: _Builder, steps: list[Step], wanted: list[RecordView]) -> str:
    """A page for people: what the crate holds and how to check it."""
    rows = [f"| {s.label} | {s.record.taskname} | {(s.record.version or '')[:10]} | "
            + ", ".join(f"`{f.id}`" for f in b.placed[s.label].outputs) + " |" for s in steps]
    where = b.url or "the project's repository (it had no remote: pass --repository)"
    return "\n".join([
        f"# smttask results: {', '.join(r.label for r in wanted)}", "",
        f"Outputs of smttask runs of project {b.project.name}, with everything needed to make "
        "them again (a Provenance Run Crate, RO-Crate 1.1).", "",
        "| record | task | commit | outputs |", "|---|---|---|---|", *rows, "",
        "- `workflow.json`: the task files, the repository and the project folder in it.",
        "- `tasks/`: one task file per run; `Task.from_desc(path)` rebuilds the task.",
        "- `outputs/`: the results, byte for byte as smttask wrote them.",
        "- `records/`: each run's record: parameters, package versions, platform, timing.", "",
        f"To check the results, `smttask reproduce <this crate>` clones {where}, checks out "
        "each run's commit, runs it again and compares its outputs with these.", ""])


def _check_exportable(record: RecordView) -> None:
    if record.status != "finished":
        raise UsageError(f"record {record.label} is {record.status or 'unfinished'}: only "
                         "finished records can be exported")
    gone = [str(p) for p in record.output_files if not p.exists()]
    if gone or not record.output_files:
        raise UsageError(f"record {record.label}: its output files are gone "
                         f"({', '.join(gone) or 'none recorded'})")


def export_rocrate(labels: Iterable[str], target: str | os.PathLike[str], *,
                   project: config.Project | None = None, license: str = "not specified"
                   ) -> Path:
    """Write the records ``labels`` (with their upstream records) as a Provenance Run
    Crate: a folder, or a zip file when ``target`` ends in ``.zip``. Never overwrites.

    ``license`` is a URL, an SPDX identifier such as ``CC-BY-4.0``, or a sentence.
    """
    target = Path(target)
    view = RecordStoreView(project)
    wanted = [view.get(label) for label in labels]
    if not wanted:
        raise UsageError("name the records to export")
    if target.exists() and (target.is_file() or any(target.iterdir())):
        raise UsageError(f"{target} exists; choose a new folder or .zip name")
    steps = lineage(view, wanted)
    for step in steps:
        _check_exportable(step.record)
    builder = _Builder(view.project)
    for position, step in enumerate(steps, 1):
        builder.step(step, position)
    builder.finish(steps, wanted, license)
    _write(builder.crate, target)
    return target


def _write(crate: Any, target: Path) -> None:
    """Write the crate under a temporary name, then give it ``target``'s name."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.suffix == ".zip":
        def stream(f: Any) -> None:
            for chunk in crate.stream_zip():
                f.write(chunk)

        if not _fs.create(target, stream):
            raise UsageError(f"{target} exists; choose a new name")
        return
    tmp = Path(tempfile.mkdtemp(prefix=".smttask-crate-", dir=target.parent))
    try:
        crate.write(tmp)
        if target.exists():
            target.rmdir()  # empty (checked): replaced by the crate
        os.rename(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
