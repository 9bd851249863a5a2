"""Notebook displays: RecordView and RecordStoreView HTML (parsed), one-line reprs."""

from __future__ import annotations

import html.parser

import pytest

from smttask import TaskExecutionError
from smttask.display import MAX_ROWS, short
from smttask.view import RSView

TASKS = """
from smttask import RecordedTask


@RecordedTask
def make(n: int) -> float:
    return float(n)


@RecordedTask
def scale(x: float, factor: float) -> float:
    print(f"scaling by {factor}")
    if factor < 0:
        raise ValueError("negative factor")
    return x * factor
"""


class Cells(html.parser.HTMLParser):
    """The text of every table header and cell, in order; fails on unbalanced tags."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.rows: list[list[str]] = []
        self.details: list[str] = []
        self.feed(text)
        self.close()
        assert self.stack == [], f"unclosed tags {self.stack}"

    def handle_starttag(self, tag, attrs):
        if tag in ("br", "input"):
            return
        self.stack.append(tag)
        if tag == "tr":
            self.rows.append([])
        if tag in ("td", "th"):
            self.rows[-1].append("")

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, (self.stack, tag)
        self.stack.pop()

    def handle_data(self, data):
        if any(t in ("td", "th") for t in self.stack) and self.rows and self.rows[-1]:
            self.rows[-1][-1] += data
        if "details" in self.stack:
            self.details.append(data)


@pytest.fixture
def records(proj):
    m = proj.module(TASKS)
    for n in (1, 2):
        m.scale(x=m.make(n=n), factor=2.0, reason=f"n={n}").run()
    with pytest.raises(TaskExecutionError):
        m.scale(x=1.0, factor=-1.0).run()
    return m


def test_record_html_has_fields_inputs_outputs_and_output_foldout(records):
    rec = RSView().filter.task("scale").filter.status("finished").latest
    page = Cells(rec._repr_html_())
    fields = {r[0]: r[1] for r in page.rows if len(r) == 2}
    assert fields["label"] == rec.label and fields["status"] == "finished"
    assert fields["task"].startswith("scale ") and fields["reason"] == "n=2"
    assert fields["code"].endswith(rec.version[:10]) and fields["duration"].endswith(" s")
    assert ["x", "make(" + rec.inputs["x"]["_smttask"]["digest"][:8] + ")"] in page.rows
    assert ["x.n", "2"] in page.rows and ["factor", "2.0"] in page.rows
    text = rec._repr_html_()
    assert str(rec.output_files[0]) in text
    assert "scaling by 2.0" in "".join(page.details)


def test_failed_record_shows_the_failure(records):
    rec = RSView().filter.status("crashed").latest
    text = rec._repr_html_()
    Cells(text)
    assert "<b>failure</b><pre>ValueError: negative factor" in text
    assert "outputs:<ul><li>none</li></ul>" in text


def test_store_view_html_has_input_columns_and_caps_rows(records, proj):
    page = Cells(RSView()._repr_html_())
    head = page.rows[0]
    assert head[:5] == ["label", "task", "status", "duration", "reason"]
    assert {"n", "x", "x.n", "factor"} <= set(head)
    by_label = {r[0]: dict(zip(head, r, strict=True)) for r in page.rows[1:]}
    crashed = RSView().filter.status("crashed").latest
    assert by_label[crashed.label]["factor"] == "-1.0" and by_label[crashed.label]["x"] == "1.0"
    assert len(page.rows) == 1 + len(RSView())
    m = records
    for n in range(3, 3 + MAX_ROWS):
        m.make(n=n).run()
    big = RSView()._repr_html_()
    assert len(Cells(big).rows) == 1 + MAX_ROWS
    assert f"showing the newest {MAX_ROWS} of {len(RSView())} records" in big


def test_plain_reprs_stay_on_one_line(records):
    rs = RSView()
    assert "\n" not in repr(list(rs)) and "\n" not in repr(rs)
    assert repr(rs.latest).startswith("<RecordView ")
    assert short("a\nb" * 40) == repr("a\nb" * 40).replace("\n", " ")[:39] + "…"
    assert short(records.make(n=1)).startswith("make(")
