"""The public API: a sorted __all__ that matches what the package exports."""

import subprocess
import sys

import smttask
import smttask.typing


def test_all_is_sorted_and_complete():
    assert smttask.__all__ == sorted(smttask.__all__)
    public = {n for n in dir(smttask) if not n.startswith("_")}
    modules = {n for n in public if type(getattr(smttask, n)).__name__ == "module"}
    assert set(smttask.__all__) == (public - modules) | {"config"}
    for name in smttask.__all__:
        assert getattr(smttask, name) is not None
    for name in ("RecordedTask", "MemoizedTask", "UnpureMemoizedTask", "Task", "TaskOutput",
                 "config", "SmttaskError", "TaskExecutionError"):
        assert name in smttask.__all__


def test_errors_form_one_tree():
    for name in smttask.__all__:
        obj = getattr(smttask, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, smttask.SmttaskError)
    assert issubclass(smttask.TaskDefinitionError, TypeError)


def test_typing_exports():
    assert smttask.typing.__all__ == sorted(smttask.typing.__all__)
    assert {"Array", "DType", "RNGenerator"} <= set(smttask.typing.__all__)


def test_library_never_imports_click():
    code = "import smttask, smttask.task, smttask.taskfile, sys; print('click' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "False"


def test_cli_entry_points():
    for cmd in (["smttask", "--help"], [sys.executable, "-m", "smttask", "--help"]):
        if cmd[0] == "smttask":
            cmd[0] = str(__import__("pathlib").Path(sys.executable).with_name("smttask"))
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        assert "Usage:" in out


def test_import_and_help_stay_light():
    code = ("import sys, smttask.cli; heavy = {'numpy', 'pydantic', 'sumatra', 'django', "
            "'copier', 'questionary', 'git'}; print(sorted(heavy & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
