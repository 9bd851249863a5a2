"""The docs site builds (mkdocs.yml, `make docs`): strict, so a broken link, a missing
page or a docstring the API reference cannot read fails it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_site_builds_with_api_and_command_reference(tmp_path):
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q",
                           "-f", str(REPO / "mkdocs.yml"), "-d", str(site)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    quick_start = (site / "index.html").read_text(encoding="utf-8")
    assert "smttask project init" in quick_start
    api = (site / "api" / "index.html").read_text(encoding="utf-8")
    for name in ("RecordedTask", "RecordStoreView", "ParamColl", "BatchResult"):
        assert f'id="smttask.{name}"' in api or f'id="smttask.batch.{name}"' in api, name
    cli = (site / "cli" / "index.html").read_text(encoding="utf-8")
    for command in ("smttask run", "smttask store list", "smttask project init"):
        assert command in cli, command
    for page in ("tasks", "running", "records", "contributing"):
        assert (site / page / "index.html").is_file(), page
