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
import logging
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TextIO

from . import config, provenance, repo
from . import digest as _digest
from .errors import ProjectNotFoundError, TaskDefinitionError, TaskExecutionError, TaskInputError
from .outputs import Datastore, ResultRef
from .task import Task
from .taskfile import describe_json

__all__ = ["Recorded", "RecordedIterative", "captured_output"]

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
        return store.result(self.taskname, self.digest, self.output_specs)

    @property
    def result_files(self) -> list[Path]:
        """The files holding this task's result in the project's output datastore (found
        through the input datastore's links); empty when the result is not on disk."""
        return self.result_ref(Datastore.of(config.find_project())).files()

    def _obtain(self, recompute: bool, record: bool) -> Any:
        project = _project(required=record)
        store = Datastore.of(project) if project is not None else None
        if store is not None and not recompute:
            values = self.result_ref(store).load()
            if values is not None:
                logger.info("%s: loaded the result of an earlier run", self.taskname)
                self.record_label = None
                self.result_source = "disk"
                return self._pack(values)
        if not record:
            prepared = self._prepare(self._load_inputs(False), store, recompute, record=False)
            return self._pack(self._execute(prepared.kwargs, validate=True))
        return self._pack(self._run_and_record(project, recompute))  # type: ignore[arg-type]

    def _prepare(self, kwargs: dict[str, Any], store: Datastore | None, recompute: bool,
                 record: bool) -> Prepared:
        """Last changes to the inputs before running (an iterative task resumes here)."""
        return Prepared(kwargs)

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
        module_file, code_path = repo.code_location(cls.__module__, root)
        checked = repo.require_recordable(project.root, cfg.dirty_directories, [code_path],
                                          cfg.on_changed)
        return checked, module_file.relative_to(root).as_posix()

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
        commit = checked.state.commit or ""
        rec = recorder.start(
            taskname=self.taskname, digest=self.digest,
            parameters_json=describe_json(self), main_file=main_file, commit=commit,
            diff=checked.diff, reason=self.reason,
            input_paths=prepared.input_files + self._upstream_files(store),
            user=repo.git_user(checked.state.root))
        self.record_label = rec.label
        logger.info("%s: running (record %s)", self.taskname, rec.label)
        notes = list(prepared.notes)
        if checked.state.tolerated:
            notes.append("Uncommitted changes tolerated in dirty directories: "
                         + ", ".join(checked.state.tolerated))
        status, written = "crashed", []
        start = time.perf_counter()
        output = None
        try:
            with captured_output() as output:
                values = self._execute(prepared.kwargs, validate=True)
                written = self._write(store, values)
            status = "finished"
            return values
        except (KeyboardInterrupt, SystemExit) as exc:
            status = "killed"
            notes.insert(0, f"Killed by {type(exc).__name__}")
            raise
        except TaskExecutionError as exc:
            cause = exc.__cause__
            notes.insert(0, f"{type(cause).__name__}: {cause}" if cause else str(exc))
            raise
        finally:
            recorder.finish(rec, status=status, duration=time.perf_counter() - start,
                            outcome="\n".join(notes), output_paths=written,
                            stdout_stderr=output.text if output else "", commit=commit)

    def _write(self, store: Datastore, values: dict[str, Any]) -> list[Path]:
        try:
            return self.result_ref(store).write(values)
        except (OSError, ValueError) as exc:  # a full disk, a value that cannot be saved
            raise TaskExecutionError(
                f"{self.taskname} ({self.digest}): could not save its outputs: {exc}"
            ) from exc


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
            values = earlier.load()
            if values is None:  # incomplete or unreadable: try an earlier step
                continue
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
