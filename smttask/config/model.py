"""smttask.toml's model: the rules for each key (shared with the project wizard) and the
sections they make up, validated by pydantic."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import PurePosixPath
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from .. import safeload, store_url
from ..errors import ConfigError, UsageError

CONFIG_FILE = "smttask.toml"
#: The largest smttask.toml read, in bytes, and how deep its arrays may nest.
MAX_BYTES = 1 << 20
MAX_DEPTH = 32

NAME_PATTERN = re.compile(r"^\w[\w\- ]*$")  # Sumatra's project-name rule


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- the rules, shared by smttask.toml and the project wizard -------------------------------

def check_name(value: str) -> str:
    """A Sumatra project name, or ValueError saying what is allowed."""
    if not NAME_PATTERN.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a valid project name: use letters, digits, '_', '-' and "
            "spaces, starting with a letter or digit"
        )
    return value


def check_store_url(value: str) -> str:
    """A record store: a SQLite file path or a postgresql:// URL without a password;
    ValueError otherwise (see :mod:`smttask.store_url`)."""
    return store_url.check(value)


def is_module_name(name: str) -> bool:
    """True for a dotted module name (``pkg.tasks``) with no dunder part (``__main__``)."""
    parts = name.split(".")
    return 0 < len(name) <= 200 and all(
        p.isidentifier() and not (p.startswith("__") and p.endswith("__")) for p in parts)


def check_output(output: str, input: str) -> str:
    """The output datastore, normalised; ValueError unless it is inside ``input``."""
    out = normalise_relpath(output)
    if out == input or not PurePosixPath(out).is_relative_to(input):
        raise ValueError(
            f"the output datastore {out!r} must be a subfolder of the input datastore "
            f"{input!r}, e.g. '{input}/run_dump'"
        )
    return out


class ProjectSection(_Section):
    name: str
    #: Packages or modules whose task files may be loaded, besides those found on disk.
    packages: list[str] | None = None

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        return check_name(value)

    @field_validator("packages")
    @classmethod
    def _module_names(cls, value: list[str] | None) -> list[str] | None:
        for name in value or ():
            if not is_module_name(name):
                raise ValueError(f"{name[:80]!r} is not a module name (e.g. mylab or "
                                 "mylab.tasks; no path, no .py, no __main__)")
        return value


def normalise_relpath(value: str) -> str:
    """A clean, relative POSIX path ('./data/' -> 'data'); raises ValueError otherwise."""
    bad = safeload.control_character(value)
    if bad is not None:
        raise ValueError(f"{value!r} holds a control character ({bad})")
    path = PurePosixPath(value.replace("\\", "/"))
    if path.is_absolute():
        raise ValueError(f"{value!r} must be relative to the project folder")
    parts = [p for p in path.parts if p not in ("", ".")]
    if ".." in parts:
        raise ValueError(f"{value!r} must stay inside the project folder")
    if not parts:
        raise ValueError(f"{value!r} is the project folder itself")
    return "/".join(parts)


class PathsSection(_Section):
    input: str = "data"
    output: str = "data/run_dump"
    tasks: str = "tasks"

    @field_validator("input", "output", "tasks")
    @classmethod
    def _relative(cls, value: str) -> str:
        return normalise_relpath(value)

    @model_validator(mode="after")
    def _output_inside_input(self) -> PathsSection:
        check_output(self.output, self.input)
        return self


class RepoSection(_Section):
    on_changed: Literal["error", "store-diff"] = "error"
    dirty_directories: list[str] = []

    @field_validator("dirty_directories")
    @classmethod
    def _relative(cls, value: list[str]) -> list[str]:
        return [normalise_relpath(v) for v in value]


def hours(value: str) -> float:
    """Hours in a duration such as '90m', '12h', '3d' or '2w'; ValueError otherwise."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([mhdw])\s*", value)
    if m is None:
        raise ValueError(f"{value!r} is not a duration: use e.g. 90m, 12h, 3d or 2w")
    return float(m[1]) * {"m": 1 / 60, "h": 1, "d": 24, "w": 168}[m[2]]


class RecordStoreSection(_Section):
    url: str = ".smt/records"
    #: A running record from another host (or whose job the scheduler cannot tell about)
    #: counts as lost after this long.
    lost_after: str = "2d"

    @field_validator("lost_after")
    @classmethod
    def _duration(cls, value: str) -> str:
        hours(value)
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_store_url(value)


class SlurmSection(_Section):
    """Resources of each SLURM array element: the defaults of ``smttask run --executor
    slurm`` (``[executor.slurm]``), which its options override."""

    partition: str | None = None
    time: str = "1:00:00"  # per task file: HH:MM:SS, MM:SS or minutes
    cpus: int = 1
    mem: str | None = None  # e.g. "4G"
    array_parallelism: int = 64
    #: Task files run one after the other by each array element; "auto" packs short tasks
    #: so that an element's start-up costs at most as much as the tasks it runs.
    tasks_per_job: int | Literal["auto"] = "auto"

    @field_validator("tasks_per_job")
    @classmethod
    def _per_job(cls, value: int | str) -> int | str:
        if value != "auto" and (not isinstance(value, int) or value < 1):
            raise ValueError(f"{value!r}: give a number of task files ≥ 1, or \"auto\"")
        return value

    @field_validator("time")
    @classmethod
    def _time(cls, value: str) -> str:
        minutes(value)
        return value

    def with_overrides(self, **overrides: Any) -> SlurmSection:
        """These options with the given ones replaced (None: keep), validated."""
        data = {**self.model_dump(), **{k: v for k, v in overrides.items() if v is not None}}
        try:
            return SlurmSection.model_validate(data)
        except ValidationError as exc:
            raise UsageError(describe_error(exc).removeprefix(f"{CONFIG_FILE}: ")) from None


def minutes(value: str) -> int:
    """Minutes in a SLURM-style duration: '90', '30:00', '1:30:00' or '1-12:00:00'."""
    days, _, rest = value.strip().rpartition("-")
    parts = rest.split(":")
    try:
        numbers = [int(p) for p in parts]
        day_count = int(days) if days else 0
    except ValueError:
        raise ValueError(f"{value!r} is not a duration: use minutes, MM:SS or HH:MM:SS") \
            from None
    if len(numbers) == 1:
        total = numbers[0]
    elif len(numbers) == 2:
        total = numbers[0] + (numbers[1] > 0)
    elif len(numbers) == 3:
        total = numbers[0] * 60 + numbers[1] + (numbers[2] > 0)
    else:
        raise ValueError(f"{value!r} is not a duration: use minutes, MM:SS or HH:MM:SS")
    return max(1, total + day_count * 24 * 60)


class CacheSection(_Section):
    """What to do with a result on disk whose task's code changed since it was computed."""

    on_code_change: Literal["warn", "recompute", "ignore"] = "warn"


class ExecutorSection(_Section):
    slurm: SlurmSection = SlurmSection()


class ProjectConfig(_Section):
    """The validated content of smttask.toml."""

    project: ProjectSection
    paths: PathsSection = PathsSection()
    repo: RepoSection = RepoSection()
    record_store: RecordStoreSection = RecordStoreSection()
    cache: CacheSection = CacheSection()
    executor: ExecutorSection = ExecutorSection()


def describe_error(err: ValidationError) -> str:
    """The first validation error as one line: ``smttask.toml: key: message``."""
    first = err.errors()[0]
    loc = ".".join(_key(p) for p in first["loc"]) or "(top level)"
    msg = first["msg"].removeprefix("Value error, ").replace("\n", "\\n")
    return f"{CONFIG_FILE}: {loc}: {msg}"


def _key(part: str | int) -> str:
    """A key of the error's location as TOML writes it (quoted when it must be)."""
    text = str(part)
    return text if re.fullmatch(r"[A-Za-z0-9_-]+", text) else json.dumps(text)


def validate_text(text: str) -> ProjectConfig:
    """The configuration in ``text`` (TOML), or a one-line ConfigError."""
    try:
        safeload.check_toml_depth(text, MAX_DEPTH)
        data = tomllib.loads(text)
    except (ValueError, RecursionError) as exc:  # TOMLDecodeError, too deep, too many digits
        raise ConfigError(f"{CONFIG_FILE}: (syntax): {' '.join(str(exc).split())}") from None
    try:
        return ProjectConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe_error(exc)) from None
