"""Hostile input, each case as a user would meet it: a task file that tries to run project
scripts, loaders fed crafted files, a smttask.toml that points somewhere unsafe.

docs/security.md names these tests in its threat table. Secrets (passwords of a
PostgreSQL store) are tested in tests/test_secrets.py.
"""

from __future__ import annotations

import base64
import io
import json
import os
import struct
import sys

import numpy as np
import pytest

from smttask import ConfigError, TaskFileError, config, taskfile
from smttask.task import Task

TASKS = """
import numpy as np
from smttask import RecordedTask
from smttask.typing import Array, DType, RNGenerator

@RecordedTask
def scale(arr: Array, factor: float = 1.0) -> Array:
    return arr * factor

@RecordedTask
def typed(dt: DType, n: int) -> int:
    return n

@RecordedTask
def noisy(rng: RNGenerator, n: int) -> float:
    return float(rng.normal(size=n).sum())

@RecordedTask
def count(n: int, label: str = "") -> int:
    return n
"""

SCRIPT = """
import pathlib
pathlib.Path("SCRIPT-RAN").write_text("imported")
"""


def desc(module: str, taskname: str = "count", **inputs) -> dict:
    return {"smttask": "taskdesc/1", "taskname": taskname, "module": module,
            "inputs": inputs, "reason": None}


def write_file(proj, name: str, content: str | bytes):
    path = proj.root / "tasks" / name
    path.parent.mkdir(exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


# --- 1. task files import only task modules ----------------------------------------------

@pytest.mark.parametrize("script", ["run", "setup", "conftest", "analysis"])
def test_a_task_file_never_imports_a_top_level_script(proj, script):
    proj.write(f"{script}.py", SCRIPT)
    proj.commit("a script")
    with pytest.raises(TaskFileError) as info:
        taskfile.load(desc(script))
    message = str(info.value)
    assert f"module {script!r} is not" in message
    assert proj.pkg in message  # the allowed packages are named
    assert "--import" in message and "packages" in message  # how to allow another
    assert not (proj.root / "SCRIPT-RAN").exists()


def test_a_package_main_module_is_never_imported(proj):
    proj.module("", name="helpers")
    proj.write(f"{proj.pkg}/__main__.py", SCRIPT)
    proj.commit("a __main__")
    with pytest.raises(TaskFileError, match=r"__main__"):
        taskfile.load(desc(f"{proj.pkg}.__main__"))
    assert not (proj.root / "SCRIPT-RAN").exists()


@pytest.mark.parametrize("module", ["os", "subprocess", "builtins", "json", f"{'x' * 5}..y",
                                    ".relative", "a b", ""])
def test_modules_outside_the_project_are_refused_before_import(proj, module):
    with pytest.raises(TaskFileError, match="module"):
        taskfile.load(desc(module, taskname="system"))


def test_packages_in_smttask_toml_are_allowed_too(proj):
    proj.write("helpers.py", "from smttask import MemoizedTask\n\n@MemoizedTask\n"
                             "def twice(x: int) -> int:\n    return 2 * x\n")
    text = (proj.root / "smttask.toml").read_text().replace(
        'name = "testproj"', 'name = "testproj"\npackages = ["helpers"]')
    proj.write("smttask.toml", text)
    proj.commit("list helpers")
    assert "helpers" in proj.project.packages and proj.pkg in proj.project.packages
    assert taskfile.load(desc("helpers", "twice", x=2)).run() == 4
    del sys.modules["helpers"]


def test_import_option_allows_one_more_module_explicitly(proj):
    proj.write("run.py", "from smttask import MemoizedTask\n\n@MemoizedTask\n"
                         "def one(x: int) -> int:\n    return x\n")
    proj.commit("run.py")
    path = write_file(proj, "one.taskdesc.json", json.dumps(desc("run", "one", x=1)))
    refused = proj.cli("run", "--no-record", str(path))
    assert refused.returncode == 1 and "module 'run' is not" in refused.stdout + refused.stderr
    allowed = proj.cli("run", "--no-record", "--import", "run", str(path))
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    sys.modules.pop("run", None)


def test_an_import_option_must_name_a_module(proj):
    proj.module(TASKS)
    path = write_file(proj, "one.taskdesc.json", json.dumps(desc(f"{proj.pkg}.tasks", n=1)))
    proc = proj.cli("run", "--no-record", "--import", "../evil", str(path))
    assert proc.returncode == 2
    assert proc.stderr.startswith("Error: --import") and proc.stderr.count("\n") == 1


# --- 2. loaders fail one way ------------------------------------------------------------

def npy(arr: np.ndarray) -> str:
    buf = io.BytesIO()
    np.save(buf, arr)
    return base64.b64encode(buf.getvalue()).decode()


def huge_npy() -> str:
    """A valid .npy header claiming 10**12 float64 values, followed by 8 bytes."""
    header = "{'descr': '<f8', 'fortran_order': False, 'shape': (1000000000000,), }"
    header = header.ljust(117) + "\n"
    raw = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + b"\0" * 8
    return base64.b64encode(raw).decode()


def nested(depth: int, leaf) -> object:
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


BAD_INPUTS = {
    "dtype a list": ("scale", {"arr": {"dtype": [1, 2], "shape": [1], "npy": npy(np.ones(1))}}),
    "dtype a number": ("typed", {"dt": 5, "n": 1}),
    "dtype record, bad names": ("typed", {"dt": {"names": [1, 2], "formats": ["<f8", "<f8"],
                                                 "offsets": [0, 8], "itemsize": 16}, "n": 1}),
    "dtype record, same names": ("typed", {"dt": {"names": ["a", "a"], "formats": ["<f8", "<f8"],
                                                  "offsets": [0, 8], "itemsize": 16}, "n": 1}),
    "dtype subarray, bad shape": ("typed", {"dt": {"subdtype": "<f8", "shape": 3}, "n": 1}),
    "dtype huge subarray": ("typed", {"dt": {"subdtype": "<f8", "shape": [10**12, 10**12]},
                                      "n": 1}),
    "shape not a list": ("scale", {"arr": {"dtype": "<f8", "shape": 1, "npy": npy(np.ones(1))}}),
    "npy not a string": ("scale", {"arr": {"npy": 12}}),
    "npy claims 8 TB": ("scale", {"arr": {"npy": huge_npy()}}),
    "rng state not a dict": ("noisy", {"rng": {"bit_generator": 5}, "n": 1}),
    "rng abstract bit generator": ("noisy", {"rng": {"bit_generator": "BitGenerator"}, "n": 1}),
    "reason as an input": ("count", {"n": 1, "reason": "x"}),
    "self as an input": ("count", {"n": 1, "self": "x"}),
    "lone surrogate": ("count", {"n": 1, "label": "\ud800"}),
    "huge float": ("scale", {"arr": [1.0], "factor": 10**400}),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_crafted_inputs_give_one_line_task_file_errors(proj, case):
    proj.module(TASKS)
    taskname, inputs = BAD_INPUTS[case]
    text = json.dumps(desc(f"{proj.pkg}.tasks", taskname, **inputs))
    path = write_file(proj, "bad.taskdesc.json", text)
    with pytest.raises(TaskFileError) as info:
        taskfile.load(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "\n" not in message


def test_reason_is_a_reserved_input_name_at_decoration_time(proj):
    from smttask import TaskDefinitionError

    with pytest.raises(TaskDefinitionError, match="'reason' cannot be an input name"):
        proj.module("from smttask import RecordedTask\n\n@RecordedTask\n"
                    "def f(reason: str) -> int:\n    return 1\n", name="reserved")


@pytest.mark.parametrize("case, text", [
    ("100k nested lists", '{"smttask": "taskdesc/1", "inputs": ' + "[" * 100_000 + "]" * 100_000
     + "}"),
    ("5000-digit integer", '{"smttask": "taskdesc/1", "inputs": {"n": ' + "9" * 5000 + "}}"),
    ("not JSON", "{nope"),
    ("a list", "[1, 2]"),
])
def test_malformed_task_files_give_one_line_errors(proj, case, text):
    path = write_file(proj, "bad.taskdesc.json", text)
    with pytest.raises(TaskFileError) as info:
        taskfile.load(path)
    assert str(info.value).startswith(f"{path}: ") and "\n" not in str(info.value)


def test_500_nested_tasks_are_refused_by_the_depth_limit(proj):
    tasks = proj.module(TASKS)
    text = json.dumps(tasks.count(n=1).desc)
    head = ('{"smttask": "taskdesc/1", "taskname": "scale", "module": "' + proj.pkg
            + '.tasks", "inputs": {"arr": [1.0], "factor": ')
    for _ in range(500):  # built as text: json.dumps itself cannot nest this deep
        text = head + text + "}}"
    path = write_file(proj, "deep.taskdesc.json", text)
    with pytest.raises(TaskFileError, match="nested more than 100 levels deep"):
        taskfile.load(path)


def test_non_utf8_task_file(proj):
    path = write_file(proj, "latin1.taskdesc.json", b'{"reason": "caf\xe9"}')
    with pytest.raises(TaskFileError, match=r"not UTF-8 text \(byte 0xe9 at offset 15\)"):
        taskfile.load(path)


def test_a_folder_a_fifo_and_a_huge_file_where_a_task_file_should_be(proj):
    folder = proj.root / "tasks" / "folder.taskdesc.json"
    folder.mkdir(parents=True)
    with pytest.raises(TaskFileError, match="is a folder, not a file"):
        taskfile.load(folder)
    fifo = proj.root / "tasks" / "fifo.taskdesc.json"
    os.mkfifo(fifo)
    with pytest.raises(TaskFileError, match="not a regular file"):
        taskfile.load(fifo)  # would block forever if it were opened
    huge = proj.root / "tasks" / "huge.taskdesc.json"
    with open(huge, "wb") as fh:
        fh.truncate(taskfile.MAX_BYTES + 1)  # sparse: no disk space used
    with pytest.raises(TaskFileError, match="larger than the limit of 512 MiB"):
        taskfile.load(huge)


def test_smttask_run_reports_crafted_files_without_a_traceback(proj):
    proj.module(TASKS)
    good = write_file(proj, "good.taskdesc.json", json.dumps(desc(f"{proj.pkg}.tasks", n=2)))
    for i, case in enumerate(BAD_INPUTS):
        taskname, inputs = BAD_INPUTS[case]
        write_file(proj, f"bad{i}.taskdesc.json",
                   json.dumps(desc(f"{proj.pkg}.tasks", taskname, **inputs)))
    (proj.root / "tasks" / "folder.taskdesc.json").mkdir()
    proc = proj.cli("run", "--no-record", "-n", "1", str(proj.root / "tasks"))
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out
    assert proc.returncode == 1
    assert f"{len(BAD_INPUTS) + 1} invalid" in out and "1 ran" in out
    assert good.exists()


# --- 2b. smttask.toml loader --------------------------------------------------------------

def write_config(tmp_path, content: str | bytes):
    path = tmp_path / "smttask.toml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return tmp_path


@pytest.mark.parametrize("content, message", [
    (b'[project]\nname = "caf\xe9"\n', r"not UTF-8 text \(byte 0xe9 at offset 21\)"),
    ('[project]\nname = "x"\n[x]\na = ' + "[" * 5000 + "]" * 5000 + "\n",
     "nested more than 32 levels deep"),
    ('[project]\nname = "x"\n[executor.slurm]\ncpus = ' + "9" * 5000 + "\n",
     r"\(syntax\).*digits"),
    ('[project]\nname = "x"\npackages = ["../evil"]\n', "project.packages: '../evil' is not"),
    ('[project]\nname = "x"\npackages = ["lab-tasks"]\n', "project.packages: 'lab-tasks' is not"),
])
def test_malformed_config_files_give_one_line_errors(tmp_path, content, message):
    root = write_config(tmp_path, content)
    with pytest.raises(ConfigError, match=message) as info:
        config.load_project(root)
    assert str(info.value).startswith("smttask.toml: ") and "\n" not in str(info.value)


def test_smttask_toml_as_a_folder_or_fifo(tmp_path):
    (tmp_path / "smttask.toml").mkdir()
    with pytest.raises(ConfigError, match="smttask.toml: is a folder, not a file"):
        config.load_project(tmp_path)
    with pytest.raises(ConfigError, match="is a folder"):
        config.find_project(tmp_path / "smttask.toml")
    other = tmp_path / "other"
    other.mkdir()
    os.mkfifo(other / "smttask.toml")
    with pytest.raises(ConfigError, match="not a regular file"):
        config.load_project(other)


def test_the_cli_reports_a_broken_config_in_one_line(proj):
    (proj.root / "smttask.toml").write_bytes(b'[project]\nname = "\xff"\n')
    proc = proj.cli("project", "info")
    assert proc.returncode == ConfigError.exit_code
    assert proc.stderr.startswith("Error: smttask.toml: not UTF-8") and \
        proc.stderr.count("\n") == 1


def test_out_of_range_cli_dates_are_usage_errors(proj):
    for since in ("99999999999999999999d", "1" * 5000 + "w"):
        proc = proj.cli("store", "list", "--since", since)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.startswith("Error: cannot read") and proc.stderr.count("\n") == 1


# --- 3. smttask.toml refuses the unsafe ---------------------------------------------------

BASE = '[project]\nname = "x"\n'


@pytest.mark.parametrize("url, message", [
    ("http://example.invalid/records", "a SQLite file path or a postgresql:// URL"),
    ("://", "a SQLite file path or a postgresql:// URL"),
    ("sqlite:///tmp/x", "a SQLite file path or a postgresql:// URL"),
    ("postgresql://", "names no database"),
    ("postgresql://host:99999/db", "port"),
    ("../records", "must stay inside the project folder"),
    (".git/records", "inside .git"),
    ("rec\\u0000ords", "control character"),
    ("rec\\nords", "control character"),
    ("   ", "give a file path"),
])
def test_record_store_url_refuses_other_forms(tmp_path, url, message):
    root = write_config(tmp_path, BASE + f'[record_store]\nurl = "{url}"\n')
    with pytest.raises(ConfigError, match=f"record_store.url: .*{message}") as info:
        config.load_project(root)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("url", ["records.sqlite", ".smt/records", "/srv/shared/records",
                                 "postgresql://scientist@db.example.org:5433/lab",
                                 "postgresql:///lab"])
def test_record_store_url_accepts_sqlite_paths_and_postgresql(tmp_path, url):
    root = write_config(tmp_path, BASE + f'[record_store]\nurl = "{url}"\n')
    project = config.load_project(root)
    if "://" not in url:
        assert project.record_store_url == str((root.resolve() / url).resolve())
    else:
        assert project.record_store_url == url


@pytest.mark.parametrize("paths, message", [
    ('input = ".git"\noutput = ".git/objects"\n', r"paths.input: '.git' is inside .git"),
    ('input = ".GIT"\noutput = ".GIT/objects"\n', r"is inside .git"),
    ('tasks = ".git/hooks"\n', r"paths.tasks: '.git/hooks' is inside .git"),
    ('input = ".smt"\noutput = ".smt/out"\n', r"paths.input: '.smt' is inside .smt"),
    ('input = "da\\u0000ta"\noutput = "da\\u0000ta/out"\n', "control character"),
    ('tasks = "t\\u001bsks"\n', "control character"),
])
def test_datastores_and_task_folder_stay_out_of_git_and_smt(tmp_path, paths, message):
    root = write_config(tmp_path, BASE + "[paths]\n" + paths)
    with pytest.raises(ConfigError, match=message) as info:
        config.load_project(root)
    assert "\n" not in str(info.value)


def test_datastores_and_task_folder_stay_out_of_code_packages(proj):
    for paths in (f'input = "{proj.pkg}"\noutput = "{proj.pkg}/out"\n',
                  f'tasks = "{proj.pkg}/tasks"\n',
                  'input = "src/lib/data"\noutput = "src/lib/data/out"\n'):
        proj.write("src/lib/__init__.py", "")
        proj.write("smttask.toml", BASE + "[paths]\n" + paths)
        with pytest.raises(ConfigError, match="inside the code package") as info:
            config.load_project(proj.root)
        assert "\n" not in str(info.value)


def test_a_datastore_linked_into_git_is_refused(proj):
    os.symlink(proj.root / ".git", proj.root / "data")
    with pytest.raises(ConfigError, match=r"paths.input: 'data' is inside .git"):
        config.load_project(proj.root)


def test_a_datastore_linked_elsewhere_is_fine(proj, tmp_path):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    os.symlink(scratch, proj.root / "data")
    assert config.load_project(proj.root).input_dir == proj.root / "data"


@pytest.mark.parametrize("text, message", [
    ('[project]\nname = "x\\u0000"\n', "project.name"),
    ('[project]\nname = "x"\n[repo]\ndirty_directories = ["re\\u0007ports"]\n',
     "control character"),
])
def test_control_characters_are_refused_everywhere(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        config.load_project(write_config(tmp_path, text))


def test_loaded_tasks_still_round_trip(proj):
    """The checks refuse the hostile, not the ordinary."""
    tasks = proj.module(TASKS)
    for task in (tasks.scale(arr=np.arange(3.0), factor=2.0),
                 tasks.typed(dt=np.dtype([("a", "<f8"), ("b", "<i4", (2,))]), n=1),
                 tasks.noisy(rng=np.random.default_rng(1), n=3),
                 tasks.scale(arr=tasks.scale(arr=[1.0]), factor=3.0)):
        path = task.save(proj.root / "tasks")
        assert Task.from_desc(path).digest == task.digest
