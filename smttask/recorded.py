"""Recorded tasks: results on disk, each run recorded in Sumatra.

``Recorded.run()`` loads an earlier result through the input datastore's links when one
exists. Otherwise a recorded run goes through named steps:

1. **check**: the task's module is project code, and the repository allows recording;
2. **prepare**: upstream results are obtained (an iterative task may resume from a step);
3. **start record**: a ``_running_`` record is saved;
4. **capture** stdout and stderr (still shown) while the task **runs**;
5. **write** the outputs (never overwriting) and link them;
6. **finish** the record: ``_finished_``, ``_crashed_`` or ``_killed_``, with the outputs.

With recording off (``smttask.config.record = False``), the task runs and nothing is
written or recorded.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
import socket
import sys
import textwrap
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TextIO

import xxhash

from . import config, provenance, repo
from . import digest as _digest
from .errors import (
    DirtyRepositoryError,
    ProjectNotFoundError,
    RecordStoreError,
    TaskDefinitionError,
    TaskExecutionError,
    TaskInputError,
)
from .outputs import Datastore, Loaded, ResultRef, Written
from .task import Task
from .taskfile import record_form

__all__ = ["Recorded", "RecordedIterative", "captured_output", "code_fingerprint",
           "running_note"]

logger = logging.getLogger(__name__)


class _Tee:
    """A text stream that writes through to another one and keeps a copy."""

    def __init__(self, stream: TextIO, sink: list[str]) -> None:
        self._stream = stream
        self._sink = sink

    def write(self, text: str) -> int:
        self._sink.append(text)
        return self._stream.write(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@dataclass
class CapturedOutput:
    """What was printed inside :func:`captured_output`."""

    parts: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(self.parts)


@contextlib.contextmanager
def captured_output() -> Iterator[CapturedOutput]:
    """Capture stdout and stderr while still showing them."""
    captured = CapturedOutput()
    saved = sys.stdout, sys.stderr
    if sys.stdout is not None:
        sys.stdout = _Tee(sys.stdout, captured.parts)
    if sys.stderr is not None:
        sys.stderr = _Tee(sys.stderr, captured.parts)
    try:
        yield captured
    finally:
        sys.stdout, sys.stderr = saved


@dataclass
class Prepared:
    """The inputs a run gets, with what the record should say about them."""

    kwargs: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    input_files: list[Path] = field(default_factory=list)


#: Where each task class's code lies in its repository: (module file, top package), both
#: repo-relative (found once per class and repository).
_locations: dict[tuple[type, Path], tuple[str, str]] = {}


def _project(required: bool) -> config.Project | None:
    if required:
        return config.find_project()
    try:
        return config.find_project()
    except ProjectNotFoundError:
        return None


class Recorded(Task):
    """Results on disk, runs recorded in Sumatra."""

    def result_ref(self, store: Datastore) -> ResultRef:
        """This task's result in ``store`` (whether or not it is on disk)."""
        return store.result(self.taskname, self.digest, self.output_specs, self.separate_names)

    @property
    def result_files(self) -> list[Path]:
        """The files holding this task's result in the project's output datastore (found
        through the input datastore's links); empty when the result is not on disk."""
        return self.result_ref(Datastore.of(config.find_project())).files()

    def _obtain(self, recompute: bool, record: bool) -> Any:
        project = _project(required=record)
        store = Datastore.of(project) if project is not None else None
        if store is not None and not recompute:
            loaded = self.result_ref(store).load()
            if loaded is not None and not self._recompute_stale(loaded, project):
                logger.info("%s: loaded the result of an earlier run", self.taskname)
                self.record_label = None
                self.result_source = "disk"
                return self._pack(loaded.values)
        if not record:
            prepared = self._prepare(self._load_inputs(False), store, recompute, record=False)
            return self._pack(self._execute(prepared.kwargs, validate=True))
        return self._pack(self._run_and_record(project, recompute))  # type: ignore[arg-type]

    def _prepare(self, kwargs: dict[str, Any], store: Datastore | None, recompute: bool,
                 record: bool) -> Prepared:
        """Last changes to the inputs before running (an iterative task resumes here)."""
        return Prepared(kwargs)

    def is_stale(self, loaded: Loaded) -> bool:
        """True if the task's own code changed since this result was computed."""
        current = code_fingerprint(type(self))
        return bool(loaded.code and current and loaded.code != current)

    def _recompute_stale(self, loaded: Loaded, project: config.Project | None) -> bool:
        """Whether to run again a result whose code changed (``[cache] on_code_change``)."""
        if not self.is_stale(loaded):
            return False
        policy = config.on_code_change or (
            project.config.cache.on_code_change if project is not None else "warn")
        if policy == "recompute":
            logger.info("%s: the code changed since its result was computed: running it "
                        "again", self.taskname)
            return True
        if policy == "warn":
            at = f" at commit {loaded.commit[:10]}" if loaded.commit else ""
            logger.warning("%s: loaded a result computed%s by an earlier version of its code "
                           "(run with --recompute-stale, or set [cache] on_code_change, to "
                           "compute it again)", self.taskname, at)
        return False

    # --- the recorded run, step by step -----------------------------------------------------

    def _check(self, project: config.Project) -> tuple[repo.Checked, str]:
        """The repository state to record and the module file (repo-relative)."""
        cls = type(self)
        if cls.__module__ == "__main__":
            raise TaskDefinitionError(
                f"{self.taskname} is defined in __main__; recorded tasks must live in an "
                "importable module of the project (or set smttask.config.record = False)"
            )
        cfg = project.config.repo
        root = repo.repo_root(project.root)
        key = (cls, root)
        if key not in _locations:
            module_file, code_path = repo.code_location(cls.__module__, root)
            _locations[key] = module_file.relative_to(root).as_posix(), code_path
        main_file, code_path = _locations[key]
        checked = repo.require_recordable(project.root, cfg.dirty_directories, [code_path],
                                          cfg.on_changed)
        checked = repo.require_tracked(checked, cfg.dirty_directories, cfg.on_changed)
        return checked, main_file

    def _upstream_files(self, store: Datastore) -> list[Path]:
        """The result files of the recorded upstream tasks (the record's input data)."""
        return [p.resolve() for value in self.inputs.__dict__.values()
                if isinstance(value, Recorded) for p in value.result_ref(store).links
                if p.exists()]

    def _run_and_record(self, project: config.Project, recompute: bool) -> dict[str, Any]:
        checked, main_file = self._check(project)
        store = Datastore.of(project)
        prepared = self._prepare(self._load_inputs(True), store, recompute, record=True)
        recorder = provenance.recorder(project)
        parameters, stored_inputs = record_form(self, store)
        commit = checked.state.commit or ""
        run = recorder.start(provenance.RunStart(
            taskname=self.taskname, digest=self.digest, parameters=parameters,
            main_file=main_file, commit=commit, diff=checked.diff, reason=self.reason,
            inputs=prepared.input_files + self._upstream_files(store) + stored_inputs,
            user=repo.git_user(checked.state.root), outcome=running_note()))
        self.record_label = run.label
        logger.info("%s: running (record %s)", self.taskname, run.label)
        notes = list(prepared.notes)
        ref = self.result_ref(store)
        status, written, trace = "crashed", [], ""
        start = time.perf_counter()
        output = None
        try:
            with captured_output() as output:
                values = self._execute(prepared.kwargs, validate=True)
            if values.outcome:  # the task's own note comes first
                notes.insert(0, values.outcome)
            cfg = project.config.repo  # the run may have imported more code: check it too
            checked = repo.require_tracked(checked, cfg.dirty_directories, cfg.on_changed)
            written = self._write(ref, values, {"code": code_fingerprint(type(self)),
                                                "commit": commit, "record": run.label})
            status = "finished"
        except (KeyboardInterrupt, SystemExit) as exc:
            status = "killed"
            notes.insert(0, f"Killed by {type(exc).__name__}")
            raise
        except TaskExecutionError as exc:
            cause = exc.__cause__
            notes.insert(0, f"{type(cause).__name__}: {cause}" if cause else str(exc))
            # A literal block, so that smtweb (which shows outcomes as reStructuredText)
            # keeps its lines.
            trace = "Traceback::\n\n" + textwrap.indent(
                "".join(traceback.format_exception(cause or exc)), "    ")
            raise
        except DirtyRepositoryError as exc:
            notes.insert(0, f"Not recorded as a result: {exc}")
            raise
        finally:
            if checked.state.tolerated:
                notes.append("Uncommitted changes tolerated in dirty directories: "
                             + ", ".join(checked.state.tolerated))
            outcome = "\n".join(notes) + (f"\n\n{trace}" if trace else "")
            try:
                recorder.finish(run, status=status, duration=time.perf_counter() - start,
                                outcome=outcome, outputs=written, diff=checked.diff,
                                stdout_stderr=output.text if output else "")
            except RecordStoreError:
                ref.discard(written)  # never linked nor recorded: the run did not happen
                raise
        ref.publish(written)
        return values

    def _write(self, ref: ResultRef, values: dict[str, Any], meta: dict[str, Any]
               ) -> list[Written]:
        try:
            return ref.write(values, meta)
        except (OSError, ValueError) as exc:  # a full disk, a value that cannot be saved
            raise TaskExecutionError(
                f"{self.taskname} ({self.digest}): could not save its outputs: {exc}"
            ) from exc


def running_note() -> str:
    """Where this process runs, for a record's outcome while it runs (lost runs are found
    by it)."""
    note = f"Running on host {socket.gethostname()}, pid {os.getpid()}"
    job = os.environ.get("SLURM_JOB_ID")
    if job:
        array = os.environ.get("SLURM_ARRAY_JOB_ID")
        index = os.environ.get("SLURM_ARRAY_TASK_ID")
        note += f", SLURM job {array}_{index}" if array and index else f", SLURM job {job}"
    return note


_fingerprints: dict[type, str] = {}


def code_fingerprint(cls: type) -> str:
    """A hash of the task's own source code ('' when it cannot be read)."""
    if cls not in _fingerprints:
        try:
            source = inspect.getsource(getattr(cls, "__wrapped__", cls))
        except (OSError, TypeError):
            source = ""
        _fingerprints[cls] = xxhash.xxh3_64_hexdigest(source.encode()) if source else ""
    return _fingerprints[cls]


class RecordedIterative(Recorded):
    """A recorded task that advances step by step and resumes from a saved earlier step.

    The iteration input (e.g. ``n``) is left out of the hash and shown in the digest:
    ``<hash>__n_4``. When the result for ``n`` is not on disk, the largest complete saved
    step below ``n`` is loaded and fed back through ``iteration_map`` (output name → input
    name), and the task runs from there.
    """

    iteration_param: ClassVar[str]
    iteration_map: ClassVar[dict[str, str]]

    def _compute_digest(self) -> str | None:
        hashed = dict(self.inputs.__dict__)
        n = hashed.pop(self.iteration_param)
        try:
            return _digest.compute(self.taskname, hashed, self.version,
                                   unhashed={self.iteration_param: n})
        except TypeError as exc:
            raise TaskInputError(f"{self.taskname}: {exc}") from None

    def _prepare(self, kwargs: dict[str, Any], store: Datastore | None, recompute: bool,
                 record: bool) -> Prepared:
        self.resumed_from: int | None = None
        if store is None or recompute:
            return Prepared(kwargs)
        n = kwargs[self.iteration_param]
        ref = self.result_ref(store)
        for step in (k for k in ref.saved_steps(self.iteration_param) if k < n):
            earlier = ref.step(self.iteration_param, step)
            loaded = earlier.load()
            if loaded is None:  # incomplete or unreadable: try an earlier step
                continue
            values = loaded.values
            files = earlier.files()
            note = f"Resumed from step {step} of {n}"
            if record:
                project = config.find_project()
                label = provenance.record_of_output(project, files[0])
                note += f" (the result of record {label})" if label else ""
            logger.info("%s: %s", self.taskname, note.lower())
            self.resumed_from = step
            resumed = {inp: values[out] for out, inp in self.iteration_map.items()}
            return Prepared({**kwargs, **resumed}, [note], files)
        return Prepared(kwargs)
