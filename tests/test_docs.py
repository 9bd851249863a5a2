"""The documentation runs: every python, sh and console block of README.md and docs/*.md,
in order, one test per block, in a fresh project per document (tests/docblocks.py says
how blocks are read and where they run; docs/contributing.md says it for authors)."""

from __future__ import annotations

import re

import docblocks
import pytest

DOCS = docblocks.documents()
EXAMPLES = {docblocks.rel(path): docblocks.examples(path) for path in DOCS}


def _params() -> list:
    return [pytest.param(doc, i, id=f"{doc}:{ex.line}",
                         marks=pytest.mark.xdist_group(f"docs:{doc}"))
            for doc, examples in EXAMPLES.items() for i, ex in enumerate(examples)]


@pytest.fixture(scope="session")
def docs_home(tmp_path_factory):
    root = tmp_path_factory.mktemp("docs")
    docblocks.SESSIONS_ROOT[:] = [root.resolve()]
    yield root
    docblocks.forget_modules(outside=root / "none")


@pytest.mark.parametrize(("doc", "index"), _params())
def test_block(doc, index, docs_home, record_property):
    """One block, after the blocks before it in its document (each runs once)."""
    record_property("doc_block", doc)
    session = docblocks.SESSIONS.get(doc)
    if session is None:
        name = re.sub(r"\W", "_", doc)
        session = docblocks.SESSIONS[doc] = docblocks.Session(doc, docs_home / name)
        session.start()
    examples = EXAMPLES[doc]
    while session.next <= index:
        example = examples[session.next]
        session.next += 1
        example.evaluate()


def test_blocks_are_labelled(record_property):
    """Every block that does not run says why: an illustration has a reason, and an
    unlabelled block is plain text, never a command or Python session."""
    illustrations = 0
    for path in DOCS:
        for block in docblocks.all_blocks(path):
            where = f"{block.doc}:{block.line}"
            if block.illustration is not None:
                illustrations += 1
                assert block.language in docblocks.RUNNABLE or block.title, (
                    f"{where}: only python, sh and console blocks need marking")
            if not block.language:
                first = block.source.lstrip().split("\n", 1)[0]
                assert not first.startswith(("$ ", ">>> ")), (
                    f"{where}: label this block console (or mark it illustration)")
    record_property("doc_illustrations", illustrations)
