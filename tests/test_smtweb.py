"""Records as people read them in Sumatra's own tools: smtweb's record page, parameter view
and data view (fetched over HTTP from a real smtweb), `smt list -l` and `smt diff`."""

from __future__ import annotations

import html
import os
import re
import subprocess
import time
import urllib.error
import urllib.request

import pytest
from conftest import GIT_ENV, new_proj
from services import free_port

from smttask import TaskExecutionError
from smttask.view import RecordStoreView

TASKS = """
import numpy as np
from smttask import RecordedTask
from smttask.typing import Array

@RecordedTask
def normalise(samples: Array[float, 1]) -> Array[float, 1]:
    return (samples - samples.mean()) / samples.std()

@RecordedTask
def analyze(arr: Array[float, 1], dt: float, nbins: int) -> float:
    if nbins < 0:
        raise ValueError(f"bad nbins {nbins}")
    return float(np.histogram(arr, bins=nbins)[0].max() * dt)
"""


# The four tests read one project and one smtweb server, on one xdist worker.
pytestmark = pytest.mark.xdist_group("smtweb")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A project with a composed run and a failed one, and smtweb serving it."""
    import numpy as np

    with pytest.MonkeyPatch.context() as mp:
        for key, value in GIT_ENV.items():
            mp.setenv(key, value)
        with new_proj(tmp_path_factory.mktemp("web") / "proj", mp) as proj:
            tasks = proj.module(TASKS)
            samples = np.random.default_rng(1).normal(size=1000)  # the template's 1,000
            prepared = tasks.normalise(samples=samples)
            tasks.analyze(arr=prepared, dt=0.3, nbins=2).run()
            with pytest.raises(TaskExecutionError):
                tasks.analyze(arr=prepared, dt=0.3, nbins=-1).run()
            port = free_port()
            server = subprocess.Popen(
                [str(os.path.join(os.path.dirname(os.sys.executable), "smtweb")), "-n", "-p",
                 str(port)], cwd=proj.root, env={**os.environ, **GIT_ENV},
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            base = f"http://127.0.0.1:{port}"
            deadline = time.time() + 60
            while True:
                try:
                    urllib.request.urlopen(base + "/", timeout=5).read()
                    break
                except (urllib.error.URLError, ConnectionError):
                    if time.time() > deadline or server.poll() is not None:
                        server.kill()
                        pytest.fail("smtweb did not start")
                    time.sleep(0.3)

            def get(path: str) -> str:
                return urllib.request.urlopen(base + path, timeout=30).read().decode()

            yield proj, tasks, get
            server.terminate()
            server.wait(timeout=30)


@pytest.fixture
def web(served, monkeypatch):
    """The served project, as the working directory of a test."""
    monkeypatch.chdir(served[0].root)
    monkeypatch.syspath_prepend(str(served[0].root))
    return served


def test_record_page_reads_well(web):
    proj, tasks, get = web
    view = RecordStoreView()
    done = view.filter.status("finished").filter.task("analyze").latest
    page = html.unescape(get(f"/testproj/{done.label}/"))
    # The command at the top runs the task again.
    command = re.search(r"<code>\$ (.*?)</code>", page, re.S)[1]
    assert re.fullmatch(r"\S*smttask run " + re.escape(f"{proj.pkg}/tasks.py ") + done.label,
                        command.strip()), command
    # Arrays are summarised, never base64: no word longer than 100 characters on the page.
    assert "dtype" in page and "shape" in page and "xxh3" in page
    assert max(len(w) for w in re.findall(r"[A-Za-z0-9+/=]+", page)) < 100
    assert "_smttask" in page and '"npy"' not in page
    failed = view.filter.status("crashed").latest
    page = html.unescape(get(f"/testproj/{failed.label}/"))
    assert "ValueError: bad nbins -1" in page and "Traceback (most recent call last)" in page
    assert 'raise ValueError(f"bad nbins {nbins}")' in page


def test_parameter_view_shows_inputs_as_columns(web):
    proj, tasks, get = web
    page = html.unescape(get(f"/testproj/parameter?main_file={proj.pkg}/tasks.py"))
    headers = re.findall(r"<th[^>]*>\s*(.*?)\s*</th>", page, re.S)
    for column in ("dt", "nbins", "arr.samples.dtype", "arr.samples.shape",
                   "arr.samples.mean", "arr._smttask.task", "_smttask.digest"):
        assert column in headers, headers
    assert not [h for h in headers if h.endswith(".npy")]
    assert len(page) < 60_000  # the 1,000-sample array does not fill the page


def test_a_result_links_its_producer_and_its_consumer(web):
    proj, tasks, get = web
    view = RecordStoreView()
    producer = view.filter.task("normalise").latest
    consumers = [r.label for r in view.filter.task("analyze")]
    page = html.unescape(get("/testproj/data/"))
    rows = [row for row in re.findall(r"<tr.*?</tr>", page, re.S) if "normalise/" in row]
    assert len(rows) == 1, "the result is listed once"
    assert producer.label in rows[0]  # "Output of"
    assert all(label in rows[0] for label in consumers)  # "Input to"


def test_smt_list_and_diff_read_the_inputs(web):
    proj, tasks, get = web
    done = RecordStoreView().filter.status("finished").filter.task("analyze").latest
    failed = RecordStoreView().filter.status("crashed").latest
    long = proj.cli("smt", "list", "-l", process=True).stdout
    assert '"nbins": 2' in long and '"dtype": "<f8"' in long and '"npy"' not in long
    diff = proj.cli("smt", "diff", "--long", done.label, failed.label, process=True).stdout
    assert "nbins" in diff and "dt" not in re.findall(r"^\s*(\w+)\s*[:=]", diff, re.M)
