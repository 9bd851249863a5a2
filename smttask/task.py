"""The Task: validated inputs, a digest, and a lazy, cached, recorded run.

A task class is made by a decorator (see :mod:`smttask.decorators`) from a typed
function. Creating an instance validates the inputs and computes the digest; nothing
runs until :meth:`Task.run`. Three kinds of tasks share this machinery:

- :class:`Recorded`: results written to the output datastore, found again through the
  input datastore, each run recorded in Sumatra;
- :class:`Memoized`: results kept in memory only, never written or recorded;
- :class:`UnpureMemoized`: like Memoized, but the digest is computed from the output.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from . import config, outputs, repo
from . import digest as _digest
from .errors import (
    ProjectNotFoundError,
    TaskDefinitionError,
    TaskExecutionError,
    TaskInputError,
)
from .outputs import OutputSpec

__all__ = ["Memoized", "Recorded", "RecordedIterative", "Task", "TaskOutput", "UnpureMemoized"]

logger = logging.getLogger(__name__)


class TaskOutput(BaseModel):
    """Subclass with one annotated field per output; each output is saved to its own file."""

    model_config = ConfigDict(arbitrary_types_allowed=True, protected_namespaces=())


def _summary(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"<array {value.dtype} {value.shape}>"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _first_error(exc: ValidationError) -> tuple[str, str]:
    """(field, message) of the most telling error, skipping the upstream-task branch."""
    errors = [e for e in exc.errors() if e["type"] != "is_instance_of"] or exc.errors()
    err = errors[0]
    loc = [str(p) for p in err["loc"]]
    # Drop the union-branch label pydantic puts after the field name.
    if len(loc) > 1 and not loc[1].isdigit():
        loc = [loc[0], *loc[2:]]
    msg = err["msg"]
    if err["type"] == "missing":
        msg = "missing required input"
    elif err["type"] == "extra_forbidden":
        msg = "unknown input"
    return ".".join(loc), msg


class _Tee:
    """A text stream that writes through to another one and keeps a copy."""

    def __init__(self, stream: Any, sink: list[str]) -> None:
        self._stream = stream
        self._sink = sink

    def write(self, text: str) -> int:
        self._sink.append(text)
        return self._stream.write(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class _Capture:
    """Capture stdout and stderr while still showing them."""

    def __enter__(self) -> list[str]:
        self.sink: list[str] = []
        self.saved = sys.stdout, sys.stderr
        if sys.stdout is not None:
            sys.stdout = _Tee(sys.stdout, self.sink)
        if sys.stderr is not None:
            sys.stderr = _Tee(sys.stderr, self.sink)
        return self.sink

    def __exit__(self, *exc: Any) -> None:
        sys.stdout, sys.stderr = self.saved


class Task:
    """Base of every task class; instances are lazy, validated, digest-identified tasks."""

    # Set by the decorators for each task class.
    taskname: ClassVar[str]
    Inputs: ClassVar[type[BaseModel]]
    output_specs: ClassVar[tuple[OutputSpec, ...]]
    Result: ClassVar[type | None] = None
    version: ClassVar[str | None] = None
    cache: ClassVar[bool] = False
    _func: ClassVar[Callable[..., Any]]
    _bound: ClassVar[bool] = False  # callable class: pass the task as `self`
    _memo: ClassVar[dict[str, Any]]
    _input_types: ClassVar[dict[str, Any]]

    def __init__(self, *args: Any, reason: str | None = None, **inputs: Any) -> None:
        cls = type(self)
        if args:
            names = list(cls.Inputs.model_fields)
            if len(args) > len(names):
                raise TaskInputError(f"{cls.taskname}: takes {len(names)} inputs, "
                                     f"{len(args)} given")
            for name, value in zip(names, args, strict=False):
                if name in inputs:
                    raise TaskInputError(f"{cls.taskname}: {name}: given twice", name)
                inputs[name] = value
        try:
            self.inputs = cls.Inputs(**inputs)
        except ValidationError as exc:
            field, msg = _first_error(exc)
            raise TaskInputError(f"{cls.taskname}: {field}: {msg}", field, msg) from None
        self.reason = reason
        #: Label of the record made by the last run() of this object (None if loaded).
        self.record_label: str | None = None
        #: Where the last run() got its result: "memory", "disk" or "run".
        self.result_source: str | None = None
        self._digest: str | None = None
        self._digest = self._compute_digest()

    def _compute_digest(self) -> str | None:
        try:
            return _digest.compute(self.taskname, self.inputs.__dict__, self.version)
        except TypeError as exc:
            raise TaskInputError(f"{self.taskname}: {exc}") from None

    # --- identity ------------------------------------------------------------------------

    @property
    def digest(self) -> str:
        """The digest of the task name, version and validated inputs."""
        return self._digest  # type: ignore[return-value]

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={_summary(v)}" for k, v in self.inputs.__dict__.items())
        return f"{self.taskname}({args})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.digest == self.digest  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self), self.digest))

    # --- description and task files --------------------------------------------------------

    @property
    def desc(self) -> dict[str, Any]:
        """The JSON-ready task description (what a task file holds)."""
        from .taskfile import describe

        return describe(self)

    def save(self, path: str | Path = "tasks", *, overwrite: bool = False) -> Path:
        """Write the task file into a folder (or to a ``.json`` path); its path."""
        from .taskfile import save

        return save(self, path, overwrite=overwrite)

    @classmethod
    def from_desc(cls, source: Any, *, allow: tuple[str, ...] = ()) -> Task:
        """Rebuild a task from a task file path, its JSON text or its dict."""
        from .taskfile import load

        task = load(source, allow=allow)
        if not isinstance(task, cls):
            from .errors import TaskFileError

            raise TaskFileError(f"the description is a {task.taskname} task, not a {cls.__name__}")
        return task

    # --- running ---------------------------------------------------------------------------

    def run(self, recompute: bool = False, cache: bool | None = None,
            record: bool | None = None) -> Any:
        """The task's result: from memory, from disk, or by running it.

        ``recompute`` runs it even when a result exists; ``cache`` keeps the result in
        memory (default: the task's ``cache`` setting); ``record`` overrides
        ``smttask.config.record``.
        """
        cls = type(self)
        key = self.digest
        if not recompute and key in cls._memo:
            logger.debug("%s: result from memory", self.taskname)
            self.result_source = "memory"
            return cls._memo[key]
        self.result_source = "run"
        result = self._obtain(recompute, config.record if record is None else record)
        if cls.cache if cache is None else cache:
            cls._memo[key] = result
        return result

    def clear(self) -> None:
        """Forget the in-memory result."""
        type(self)._memo.pop(self.digest, None)

    def _obtain(self, recompute: bool, record: bool) -> Any:
        return self._pack(self._execute(self._load_inputs(record), validate=False))

    def _load_inputs(self, record: bool) -> dict[str, Any]:
        kwargs = {}
        for name, value in self.inputs.__dict__.items():
            if isinstance(value, Task):
                value = value.run(record=record)
            elif isinstance(value, np.random.Generator):
                value = _copy_rng(value)  # a rerun starts from the same state
            kwargs[name] = value
        return kwargs

    def _call(self, kwargs: dict[str, Any]) -> Any:
        func = type(self)._func
        return func(self, **kwargs) if self._bound else func(**kwargs)

    def _execute(self, kwargs: dict[str, Any], *, validate: bool) -> dict[str, Any]:
        """Run the task's code; the outputs by name. Failures become TaskExecutionError."""
        try:
            raw = self._call(kwargs)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:
            raise TaskExecutionError(
                f"{self.taskname} ({self.digest}) failed: {type(exc).__name__}: {exc}"
            ).with_traceback(exc.__traceback__) from exc
        return self._parse(raw, validate=validate)

    def _parse(self, raw: Any, *, validate: bool) -> dict[str, Any]:
        specs = self.output_specs
        if self.Result is None:
            values = {specs[0].name: raw}
        elif isinstance(raw, TaskOutput):
            values = dict(raw.__dict__)
        elif isinstance(raw, dict):
            values = raw
        elif isinstance(raw, tuple | list) and len(raw) == len(specs):
            values = {spec.name: v for spec, v in zip(specs, raw, strict=True)}
        else:
            raise TaskExecutionError(
                f"{self.taskname} must return its {len(specs)} outputs as a tuple, a dict or "
                f"a {self.Result.__name__} instance, not {type(raw).__name__}"
            )
        if set(values) != {s.name for s in specs}:
            raise TaskExecutionError(
                f"{self.taskname} returned outputs {sorted(values)}, expected "
                f"{[s.name for s in specs]}"
            )
        if not validate:
            return values
        checked = {}
        for spec in specs:
            try:
                checked[spec.name] = spec.adapter.validate_python(values[spec.name])
            except ValidationError as exc:
                _, msg = _first_error(exc)
                raise TaskExecutionError(
                    f"{self.taskname} returned an invalid output '{spec.name}': {msg}"
                ) from exc
        return checked

    def _pack(self, values: dict[str, Any]) -> Any:
        if self.Result is None:
            return values[self.output_specs[0].name]
        return self.Result(**values)


def _copy_rng(gen: np.random.Generator) -> np.random.Generator:
    bitgen = type(gen.bit_generator)()
    bitgen.state = gen.bit_generator.state
    return np.random.Generator(bitgen)


def _project(required: bool) -> config.Project | None:
    if required:
        return config.find_project()
    try:
        return config.find_project()
    except ProjectNotFoundError:
        return None


class Recorded(Task):
    """Results on disk, runs recorded in Sumatra."""

    def _obtain(self, recompute: bool, record: bool) -> Any:
        project = _project(required=record)
        if project is not None and not recompute:
            values = outputs.load(project.input_dir, self.taskname, self.digest,
                                  list(self.output_specs))
            if values is not None:
                logger.info("%s: loaded the result of an earlier run", self.taskname)
                self.record_label = None
                self.result_source = "disk"
                return self._pack(values)
        if not record:
            kwargs, _, _ = self._prepare(self._load_inputs(False), project, recompute, False)
            return self._pack(self._execute(kwargs, validate=True))
        return self._pack(self._run_and_record(project, recompute))  # type: ignore[arg-type]

    def _prepare(self, kwargs: dict[str, Any], project: config.Project | None,
                 recompute: bool, record: bool) -> tuple[dict[str, Any], list[str], list[Path]]:
        """Last changes to the inputs before running: (inputs, record notes, input files)."""
        return kwargs, [], []

    def _run_and_record(self, project: config.Project, recompute: bool) -> dict[str, Any]:
        from . import provenance
        from .taskfile import describe_json

        cls = type(self)
        if cls.__module__ == "__main__":
            raise TaskDefinitionError(
                f"{self.taskname} is defined in __main__; recorded tasks must live in an "
                "importable module of the project (or set smttask.config.record = False)"
            )
        repo_cfg = project.config.repo
        root = repo.repo_root(project.root)
        module_file, code_path = repo.code_location(cls.__module__, root)
        state, diff = repo.require_recordable(
            project.root, repo_cfg.dirty_directories, [code_path], repo_cfg.on_changed
        )
        kwargs, prepared_notes, prepared_inputs = self._prepare(
            self._load_inputs(True), project, recompute, True)
        input_paths = prepared_inputs + [
            p.resolve()
            for value in self.inputs.__dict__.values()
            if isinstance(value, Recorded)
            for p in outputs.link_paths(project.input_dir, value.taskname, value.digest,
                                        list(value.output_specs))
            if p.exists()
        ]
        recorder = provenance.recorder(project)
        rec = recorder.start(
            taskname=self.taskname,
            digest=self.digest,
            parameters_json=describe_json(self),
            main_file=module_file.relative_to(root).as_posix(),
            commit=state.commit,  # type: ignore[arg-type]
            diff=diff,
            reason=self.reason,
            input_paths=input_paths,
            user=repo.git_user(root),
        )
        self.record_label = rec.label
        logger.info("%s: running (record %s)", self.taskname, rec.label)
        status, notes, written = "crashed", list(prepared_notes), []
        if state.tolerated:
            notes.append("Uncommitted changes tolerated in dirty directories: "
                         + ", ".join(state.tolerated))
        start = time.perf_counter()
        capture = _Capture()
        sink = capture.__enter__()
        try:
            values = self._execute(kwargs, validate=True)
            written = outputs.write(project.output_dir, project.input_dir, self.taskname,
                                    self.digest, list(self.output_specs), values)
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
        except Exception as exc:
            notes.insert(0, f"{type(exc).__name__}: {exc}")
            raise TaskExecutionError(
                f"{self.taskname} ({self.digest}): could not save its outputs: {exc}"
            ) from exc
        finally:
            capture.__exit__()
            recorder.finish(
                rec,
                status=status,
                duration=time.perf_counter() - start,
                outcome="\n".join(notes),
                output_paths=written,
                stdout_stderr="".join(sink),
                commit=state.commit,  # type: ignore[arg-type]
            )


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

    def _step_digest(self, step: int) -> str:
        return f"{self.digest.split('__', 1)[0]}__{self.iteration_param}_{step}"

    def saved_steps(self, input_dir: Path) -> list[int]:
        """Steps with result links on disk (complete or not), largest first."""
        prefix = self._step_digest(0)[:-1]
        try:
            names = os.listdir(input_dir / self.taskname)
        except FileNotFoundError:
            return []
        steps = {int(m[1]) for name in names if name.startswith(prefix)
                 and (m := re.match(r"(\d+)_", name[len(prefix):]))}
        return sorted(steps, reverse=True)

    def _prepare(self, kwargs: dict[str, Any], project: config.Project | None,
                 recompute: bool, record: bool) -> tuple[dict[str, Any], list[str], list[Path]]:
        self.resumed_from: int | None = None
        if project is None or recompute:
            return kwargs, [], []
        n = kwargs[self.iteration_param]
        specs = list(self.output_specs)
        for step in (k for k in self.saved_steps(project.input_dir) if k < n):
            values = outputs.load(project.input_dir, self.taskname, self._step_digest(step),
                                  specs)
            if values is None:  # incomplete or unreadable: try an earlier step
                continue
            links = outputs.link_paths(project.input_dir, self.taskname,
                                       self._step_digest(step), specs)
            files = [p.resolve() for p in links]
            note = f"Resumed from step {step} of {n}"
            if record:
                from . import provenance

                label = provenance.record_of_output(project, files[0])
                note += f" (the result of record {label})" if label else ""
            logger.info("%s: %s", self.taskname, note.lower())
            self.resumed_from = step
            resumed = {inp: values[out] for out, inp in self.iteration_map.items()}
            return {**kwargs, **resumed}, [note], files
        return kwargs, [], []


class Memoized(Task):
    """Results kept in memory only; never written, never recorded."""

    cache: ClassVar[bool] = True


class UnpureMemoized(Memoized):
    """A memoized task whose digest is computed from its output (outside state)."""

    def _compute_digest(self) -> str | None:
        return None  # known once the task has run

    @property
    def digest(self) -> str:
        if self._digest is None:
            self.run()
        return self._digest  # type: ignore[return-value]

    def run(self, recompute: bool = False, cache: bool | None = None,
            record: bool | None = None) -> Any:
        if cache is False:
            raise ValueError(f"{self.taskname} is an UnpureMemoizedTask: it is always cached")
        self.result_source = "memory"
        if recompute or self._digest is None:
            self.result_source = "run"
            result = self._obtain(recompute, config.record if record is None else record)
            new = _digest.compute(self.taskname, {"output": result}, self.version)
            if self._digest is not None and new != self._digest:
                logger.warning("%s: digest changed from %s to %s", self.taskname,
                               self._digest, new)
            self._result, self._digest = result, new
        return self._result

    def clear(self) -> None:
        self._digest = None
