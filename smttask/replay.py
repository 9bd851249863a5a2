"""The process that runs recorded tasks again, inside a checkout of their commit.

:mod:`smttask.reproduce` starts ``python -m smttask.replay JOB.json`` with the checkout
as working directory, so the project's packages are imported from the checkout. For each
job the task is rebuilt from its description and run with recording off (nothing is
written to a datastore or a record store); each output is compared with the recorded
file: byte for byte, then by value (:func:`smttask.closeness.compare`). Upstream results
are loaded from the project's datastore when given and present (the inputs the record
used), otherwise recomputed here. The answer is written as JSON to ``job["report"]``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

__all__ = ["main", "run_jobs"]


def _output_values(task: Any, result: Any) -> dict[str, Any]:
    specs = task.output_specs
    if task.Result is None:
        return {specs[0].name: result}
    return {spec.name: getattr(result, spec.name) for spec in specs}


def _dumped(spec: Any, value: Any) -> bytes:
    return bytes(spec.encode(value))


def _recorded_tasks(task: Any) -> list[Any]:
    """The recorded upstream tasks of ``task``, nearest first (not ``task`` itself)."""
    from .recorded import Recorded
    from .task import Task

    found = []
    for value in task.inputs.__dict__.values():
        if isinstance(value, Task):
            if isinstance(value, Recorded):
                found.append(value)
            found += _recorded_tasks(value)
    return found


def _key(task: Any) -> str:
    return f"{task.taskname} ({task.digest[:8]})"


def _preload(task: Any, datastore_root: str | None) -> set[str]:
    """Load into memory the nearest upstream results found in the project's datastore:
    the inputs the record used. The keys of those loaded (the rest will be recomputed)."""
    from . import config
    from .outputs import Datastore
    from .recorded import Recorded
    from .task import Task

    loaded: set[str] = set()
    if datastore_root is None:
        return loaded
    store = Datastore.of(config.find_project(datastore_root))
    here = os.getcwd()

    def visit(node: Any) -> None:
        for value in node.inputs.__dict__.values():
            if not isinstance(value, Task):
                continue
            if isinstance(value, Recorded) and value.result_ref(store).on_disk:
                os.chdir(datastore_root)  # run() finds the project, and its datastore, here
                try:
                    value.run(record=False, cache=True)
                finally:
                    os.chdir(here)
                loaded.add(_key(value))
            else:
                visit(value)

    visit(task)
    return loaded


def _check_origin(task: Any, checkout: Path) -> None:
    from .errors import TaskFileError

    module = sys.modules[type(task).__module__]
    file = Path(getattr(module, "__file__", "") or "").resolve()
    if not file.is_relative_to(checkout):
        raise TaskFileError(f"{module.__name__} was imported from {file}, not from the "
                            f"checkout {checkout} (is the project installed elsewhere?)")


def _compare_outputs(task: Any, values: dict[str, Any], digest: str, files: list[str],
                     rtol: float, atol: float) -> list[dict[str, Any]]:
    import xxhash

    from .closeness import compare
    from .outputs import output_of

    found: dict[str, Path] = {}
    for name in files:
        spec = output_of(Path(name), digest, task.output_specs)
        if spec is not None:
            found.setdefault(spec.name, Path(name))
    checks = []
    for spec in task.output_specs:
        new = _dumped(spec, values[spec.name])
        check: dict[str, Any] = {"name": spec.name, "new_checksum": xxhash.xxh3_128_hexdigest(new)}
        path = found.get(spec.name)
        if path is None or not path.exists():
            check.update(state="missing", detail="the recorded file is gone" if path else
                         "the record lists no file for it")
            checks.append(check)
            continue
        old = path.read_bytes()
        check["recorded_checksum"] = xxhash.xxh3_128_hexdigest(old)
        if old == new:
            check.update(state="identical", detail="")
        else:
            diff = compare(spec.read(path), values[spec.name], rtol=rtol, atol=atol,
                           name=spec.name)
            if diff is None:
                check.update(state="equal", detail="same values, different bytes"
                             if rtol == atol == 0 else f"within rtol={rtol:g}, atol={atol:g}")
            else:
                check.update(state="differs", detail=diff.describe())
        checks.append(check)
    return checks


def _run_one(job: dict[str, Any], checkout: Path, datastore_root: str | None, rtol: float,
             atol: float, chain: bool) -> dict[str, Any]:
    from . import taskfile

    desc = job["description"]
    task = taskfile.load(desc, allow=(str(desc.get("module", "")),))
    _check_origin(task, checkout)
    loaded = _preload(task, datastore_root)
    result = task.run(recompute=True, record=False, cache=chain)
    sources = {_key(up): "loaded from the datastore" if _key(up) in loaded
               else "recomputed at this commit"
               for up in _recorded_tasks(task) if up.result_source is not None}
    outputs = _compare_outputs(task, _output_values(task, result),
                               desc.get("digest") or task.digest, job["files"], rtol, atol)
    return {"key": job["key"], "error": "", "outputs": outputs, "upstream": sources}


def run_jobs(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Run every job of ``spec`` in order; one answer per job: its output checks, or the
    error that stopped it. With ``spec["chain"]`` a job's result stays in memory for the
    jobs after it (upstream jobs come first); without, each job starts from the upstream
    results found in the datastore, or recomputes them."""
    from . import config
    from .errors import SmttaskError

    config.record = False
    checkout = Path(spec["checkout"]).resolve()
    answers = []
    for job in spec["jobs"]:
        try:
            answers.append(_run_one(job, checkout, spec.get("datastore"), spec["rtol"],
                                    spec["atol"], bool(spec.get("chain"))))
        except SmttaskError as exc:
            answers.append({"key": job["key"], "error": str(exc), "outputs": [],
                            "upstream": {}})
    return answers


def main(argv: list[str] | None = None) -> int:
    """``python -m smttask.replay JOB.json``: run the jobs, write the answers."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m smttask.replay JOB.json", file=sys.stderr)
        return 2
    spec = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    checkout = str(Path(spec["checkout"]).resolve())
    for extra in (os.path.join(checkout, "src"), checkout):
        if extra not in sys.path:
            sys.path.insert(0, extra)
    from . import _fs

    answers = run_jobs(spec)
    _fs.replace(Path(spec["report"]), json.dumps(answers))
    return 0


if __name__ == "__main__":
    sys.exit(main())
