"""smttask.toml: discovery, validation, clear one-line errors."""

from __future__ import annotations

import tomllib

import pytest

from smttask import ConfigError, ProjectNotFoundError, config


def write(tmp_path, text):
    (tmp_path / "smttask.toml").write_text(text)
    return tmp_path


def test_defaults_and_discovery_from_a_subfolder(tmp_path):
    root = write(tmp_path, '[project]\nname = "deathstar"\n')
    sub = root / "a" / "b"
    sub.mkdir(parents=True)
    project = config.find_project(sub)
    assert project.root == root.resolve()
    assert project.input_dir == root.resolve() / "data"
    assert project.output_dir == root.resolve() / "data/run_dump"
    assert project.config.repo.on_changed == "error"
    assert project.record_store_url == str(root.resolve() / ".smt/records")


def test_changes_to_the_file_are_picked_up(tmp_path):
    root = write(tmp_path, '[project]\nname = "one"\n')
    assert config.find_project(root).name == "one"
    import os
    import time

    write(tmp_path, '[project]\nname = "two"\n')
    st = (root / "smttask.toml").stat()
    os.utime(root / "smttask.toml", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    time.sleep(0)
    assert config.find_project(root).name == "two"


@pytest.mark.parametrize("text, message", [
    ('[project]\nname = "x"\n[paths]\noutput = "elsewhere"\n',
     "smttask.toml: paths: Value error|smttask.toml: paths: the output datastore"),
    ('[project]\nname = "x"\n[repo]\non_changed = "ignore"\n',
     "smttask.toml: repo.on_changed: Input should be 'error' or 'store-diff'"),
    ('[project]\nname = "no/slash"\n', "smttask.toml: project.name: 'no/slash' is not a valid"),
    ('[project]\nname = "x"\ncolour = "blue"\n', "smttask.toml: project.colour: Extra inputs"),
    ("[paths]\n", "smttask.toml: project: Field required"),
    ('[project]\nname = "x"\n[repo]\ndirty_directories = ["../up"]\n',
     "smttask.toml: repo.dirty_directories: '../up' must stay inside"),
    ('[project\n', r"smttask.toml: \(syntax\)"),
    # A quoted key holding a line break (found by tests/test_fuzz.py) stays quoted.
    ('[project]\nname = "x"\n[executor.slurm]\n"a\\nb.c" = 1\n',
     r'smttask.toml: executor.slurm."a\\nb.c": Extra inputs'),
])
def test_malformed_file_gives_key_path_and_reason(tmp_path, text, message):
    root = write(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as info:
        config.load_project(root)
    assert "\n" not in str(info.value)


def test_missing_project_says_what_to_do(tmp_path):
    with pytest.raises(ProjectNotFoundError, match="smttask project init"):
        config.find_project(tmp_path)


def test_paths_are_normalised(tmp_path):
    root = write(tmp_path, '[project]\nname = "x"\n[paths]\ninput = "./store/"\n'
                           'output = "store/out"\n[repo]\ndirty_directories = ["reports/"]\n')
    project = config.load_project(root)
    assert project.config.paths.input == "store"
    assert project.config.repo.dirty_directories == ["reports"]


def test_rendered_config_is_valid_and_commented():
    text = config.render_config("deathstar", dirty_directories=["reports", "labnotes"])
    data = tomllib.loads(text)
    assert data["project"]["name"] == "deathstar"
    assert data["repo"]["dirty_directories"] == ["reports", "labnotes"]
    assert data["paths"] == {"input": "data", "output": "data/run_dump", "tasks": "tasks"}
    assert text.count("#") >= 8
    with pytest.raises(ConfigError, match="paths"):
        config.render_config("x", output="outside")
