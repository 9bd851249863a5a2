"""`smttask export rocrate`: Provenance Run Crates, checked by the profile's validator, and
`smttask reproduce CRATE` in a fresh clone."""

from __future__ import annotations

import importlib.resources
import io
import json
import warnings
import zipfile
from pathlib import Path

import pytest

from smttask.view import RecordStoreView

TASKS = """
import numpy as np
from smttask import RecordedTask
from smttask.typing import Array

@RecordedTask
def base(n: int) -> Array[float, 1]:
    return np.arange(n) / 2

@RecordedTask
def total(arr: Array[float, 1], offset: float) -> float:
    return float(arr.sum()) + offset
"""

WFRUN = "https://w3id.org/ro/terms/workflow-run"


def _contexts() -> dict[str, dict]:
    """The two JSON-LD contexts the crates name, served locally (no network here).

    RO-Crate 1.1's context, for the terms these crates use: the 1.3 context shipped with
    the rocrate package, with the four bioschemas terms that 1.1 maps to other IRIs. The
    workflow-run context: its published terms, each ``<WFRUN>#<term>``.
    """
    shipped = json.loads(importlib.resources.files("rocrate").joinpath(
        "data/ro-crate.jsonld").read_text(encoding="utf-8"))
    v11 = {**shipped["@context"],
           "ComputationalWorkflow": "https://bioschemas.org/ComputationalWorkflow",
           "FormalParameter": "https://bioschemas.org/FormalParameter",
           "input": "https://bioschemas.org/ComputationalWorkflow#input",
           "output": "https://bioschemas.org/ComputationalWorkflow#output"}
    terms = ["ParameterConnection", "ContainerImage", "DockerImage", "SIFImage", "connection",
             "sourceParameter", "targetParameter", "md5", "sha1", "sha256", "sha512",
             "environment", "registry", "tag", "containerImage", "resourceUsage"]
    return {"https://w3id.org/ro/crate/1.1/context": {"@context": v11},
            f"{WFRUN}/context": {"@context": {t: f"{WFRUN}#{t}" for t in terms}}}


def validate(crate: Path, **options) -> list[str]:
    """What the Provenance Run Crate profile's validator (rocrate-validator) finds at the
    required level; [] when the crate conforms (``options``: more ValidationSettings)."""
    import requests
    import urllib3
    from rocrate_validator import models, services
    from rocrate_validator.utils.http import HttpRequester

    docs = _contexts()

    class Local(requests.adapters.HTTPAdapter):
        def send(self, request, **kwargs):
            doc = docs.get(request.url)
            body = json.dumps(doc).encode() if doc else b""
            raw = urllib3.HTTPResponse(body=io.BytesIO(body), status=200 if doc else 404,
                                       headers={"Content-Type": "application/ld+json"},
                                       preload_content=False, request_url=request.url)
            return self.build_response(request, raw)

    settings = services.ValidationSettings(
        rocrate_uri=str(crate), profile_identifier="provenance-run-crate",
        requirement_severity=models.Severity.REQUIRED, no_cache=True, **options)
    session = HttpRequester().session  # set up by the settings: no cache, plain requests
    session.mount("https://", Local())
    session.mount("http://", Local())
    with warnings.catch_warnings():  # rdflib's own deprecations, inside the validator
        warnings.simplefilter("ignore", DeprecationWarning)
        result = services.validate(settings)
    return [f"{issue.check.name}: {issue.message}" for issue in result.get_issues()]


def graph(crate: Path) -> dict[str, dict]:
    meta = json.loads((crate / "ro-crate-metadata.json").read_text())
    return {e["@id"]: e for e in meta["@graph"]}


def ids(value) -> list[str]:
    return [v["@id"] for v in (value if isinstance(value, list) else [value])]


@pytest.fixture
def composed(proj):
    """A composed result (total of base) recorded in a project with an origin remote."""
    bare = proj.root.parent / "origin.git"
    proj.git("clone", "-q", "--bare", str(proj.root), str(bare))
    proj.git("remote", "add", "origin", str(bare))
    tasks = proj.module(TASKS)
    proj.git("push", "-q", "origin", "main")
    assert tasks.total(arr=tasks.base(n=5), offset=0.5).run() == 5.5
    view = RecordStoreView()
    return view.filter.task("total").latest, view.filter.task("base").latest


def test_a_composed_result_exports_as_a_valid_provenance_run_crate(proj, composed):
    total, base = composed
    out = proj.cli("export", "rocrate", total.label, "-o", "crate", "--license", "CC-BY-4.0")
    assert out.returncode == 0, out.stderr
    crate = proj.root / "crate"

    assert validate(crate) == []
    g = graph(crate)
    # One tool run per record, the upstream one included, each with its task file.
    runs = {e["identifier"]: e for e in g.values() if e.get("@type") == "CreateAction"
            and "identifier" in e}
    assert set(runs) == {total.label, base.label}
    for run in runs.values():
        tool = g[ids(run["instrument"])[0]]
        assert (crate / tool["@id"]).is_file() and tool["@id"].endswith(".taskdesc.json")
        assert tool["version"] == proj.git("rev-parse", "HEAD").strip()
        assert tool["codeRepository"] == str(proj.root.parent / "origin.git")
    # The upstream output is the input of the downstream run, and a connection says so.
    base_out = ids(runs[base.label]["result"])
    assert set(base_out) <= set(ids(runs[total.label]["object"]))
    links = [e for e in g.values() if e.get("@type") == "ParameterConnection"]
    assert [(g[ids(c["sourceParameter"])[0]]["name"], g[ids(c["targetParameter"])[0]]["name"])
            for c in links] == [("result", "arr")]
    values = {g[i]["name"]: g[i]["value"] for i in ids(runs[total.label]["object"])
              if g[i]["@type"] == "PropertyValue"}
    assert values == {"offset": 0.5}
    # Package versions, the record's platform and parameters travel with it.
    record = json.loads((crate / f"records/{total.label}.json").read_text())
    assert record["commit"] == total.version and record["status"] == "finished"
    assert record["platforms"] and "numpy" in record["packages"]
    assert record["parameters"]["offset"] == 0.5  # the inputs, at the top level
    assert g["./"]["license"] == {"@id": "https://spdx.org/licenses/CC-BY-4.0"}
    assert (crate / "README.md").read_text().startswith(f"# smttask results: {total.label}")


def test_the_validator_catches_a_broken_connection(proj, composed, tmp_path):
    """The check above can fail: the validator reads the workflow-run terms."""
    total, _ = composed
    proj.cli("export", "rocrate", total.label, "-o", "crate")
    meta_path = proj.root / "crate" / "ro-crate-metadata.json"
    meta = json.loads(meta_path.read_text())
    for entity in meta["@graph"]:
        entity.pop("targetParameter", None)
    meta_path.write_text(json.dumps(meta))
    assert any("targetParameter" in issue for issue in validate(
        proj.root / "crate", enable_profile_inheritance=False, abort_on_first=True))


def test_the_crate_outputs_are_byte_identical_to_the_datastore(proj, composed):
    total, base = composed
    out = proj.cli("export", "rocrate", total.label, "-o", "crate.zip")
    assert out.returncode == 0, out.stderr
    with zipfile.ZipFile(proj.root / "crate.zip") as zf:
        names = zf.namelist()
        for record in (total, base):
            for path in record.output_files:
                name = f"outputs/{record.label}/{path.name}"
                assert zf.read(name) == path.read_bytes()
        meta = json.loads(zf.read("ro-crate-metadata.json"))
    assert "ro-crate-metadata.json" in names
    import hashlib

    files = [e for e in meta["@graph"] if e["@id"].startswith("outputs/")]
    assert len(files) == 2
    with zipfile.ZipFile(proj.root / "crate.zip") as zf:
        for entity in files:
            assert entity["sha256"] == hashlib.sha256(zf.read(entity["@id"])).hexdigest()


def test_a_crate_is_reproduced_in_a_fresh_clone(proj, composed, tmp_path):
    total, base = composed
    proj.cli("export", "rocrate", total.label, "-o", str(tmp_path / "shared.zip"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    out = proj.cli("reproduce", str(tmp_path / "shared.zip"), cwd=elsewhere)

    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith(f"{base.label}  base  at ")
    assert "reproduced (1 output identical)" in lines[0]
    assert f"{total.label}  total  at " in out.stdout
    assert out.stdout.rstrip().endswith("2 reproduced")
    assert len(proj.git("worktree", "list").splitlines()) == 1


def test_a_crate_without_a_remote_needs_a_repository(proj, tmp_path):
    tasks = proj.module(TASKS)
    tasks.base(n=3).run()
    label = RecordStoreView().latest.label
    proj.cli("export", "rocrate", label, "-o", str(tmp_path / "c"))
    assert json.loads((tmp_path / "c" / "workflow.json").read_text())["repository"] is None

    out = proj.cli("reproduce", str(tmp_path / "c"), cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.startswith("Error: ") and "pass --repository" in out.stderr
    given = proj.cli("reproduce", str(tmp_path / "c"), "--repository", str(proj.root),
                     cwd=tmp_path)
    assert given.returncode == 0, given.stdout + given.stderr


def test_a_task_file_in_a_crate_has_its_record_reason_whatever_ran_since(proj, tmp_path):
    """The same task run twice in this process for two reasons: each record's task file
    says its own reason (the live task object only remembers the last one)."""
    tasks = proj.module(TASKS)
    upstream = tasks.base(n=4)
    task = tasks.total(arr=upstream, offset=1.0, reason="first look")
    task.run()
    first = RecordStoreView().filter.task("total").latest.label
    upstream.reason = "set on the upstream object later"
    task.reason = "second look"
    task.run(recompute=True)
    assert proj.cli("export", "rocrate", first, "-o", str(tmp_path / "c")).returncode == 0
    [path] = (tmp_path / "c" / "tasks" / first).glob("total__*.taskdesc.json")
    desc = json.loads(path.read_text())
    assert desc["reason"] == "first look"
    assert desc["inputs"]["arr"]["reason"] is None


def test_a_record_without_a_reason_describes_none(proj):
    """As a saved task file says it: null (the record stores an empty string)."""
    tasks = proj.module(TASKS)
    tasks.base(n=2).run()
    assert RecordStoreView().latest.description["reason"] is None


def test_export_refuses_to_overwrite_and_names_unfinished_records(proj):
    tasks = proj.module(TASKS)
    tasks.base(n=3).run()
    label = RecordStoreView().latest.label
    (proj.root / "taken").mkdir()
    (proj.root / "taken" / "notes.txt").write_text("mine")
    out = proj.cli("export", "rocrate", label, "-o", "taken")
    assert out.returncode == 2
    assert out.stderr == "Error: taken exists; choose a new folder or .zip name\n"
    assert (proj.root / "taken" / "notes.txt").read_text() == "mine"
    for path in RecordStoreView().latest.output_files:
        path.unlink()
    gone = proj.cli("export", "rocrate", label, "-o", "new")
    assert gone.returncode == 2
    assert "its output files are gone" in gone.stderr
    assert not (proj.root / "new").exists()


def test_a_zip_that_is_not_a_crate_is_one_line(tmp_path):
    with zipfile.ZipFile(tmp_path / "notes.zip", "w") as zf:
        zf.writestr("notes.txt", "not a crate")
    from conftest import cli

    out = cli("reproduce", str(tmp_path / "notes.zip"), cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.startswith(f"Error: {tmp_path / 'notes.zip'}: not a crate made by "
                                 "smttask export rocrate")
    assert len(out.stderr.splitlines()) == 1
