"""The Python examples in docs/ run: each page's ```python blocks execute in order,
in one namespace, as a reader would paste them. A ```python block directly followed
by a ```text block must print exactly that text (trailing spaces aside)."""

import contextlib
import io
import re
import warnings
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
BLOCK = re.compile(r"```python\n(.*?)```", re.S)
# a python block and, when one follows it directly, the text block of its output
BLOCK_AND_OUTPUT = re.compile(r"```python\n(.*?)```(?:\s*```text\n(.*?)```)?", re.S)


def _normal(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.strip("\n").splitlines())
# examples that read ../shared/data skip, with the reason, where it is absent
READS_REFERENCE_DATA = re.compile(r"load_(cdnow|rossi|telco|donations|charity)|reference_data_dir")


def _pages():
    return sorted(p.name for p in DOCS.glob("*.md") if BLOCK.search(p.read_text()))


@pytest.mark.parametrize("page", _pages())
def test_doc_examples_run(page, request, tmp_path, monkeypatch):
    if READS_REFERENCE_DATA.search((DOCS / page).read_text()):
        request.getfixturevalue("reference_dir")
    monkeypatch.chdir(tmp_path)  # examples that write files write here
    namespace = {"__name__": f"docs_{page}"}
    for i, (block, expected) in enumerate(BLOCK_AND_OUTPUT.findall((DOCS / page).read_text())):
        printed = io.StringIO()
        try:
            with contextlib.redirect_stdout(printed), warnings.catch_warnings():
                # the docs teach the current names: a deprecated one is an error here
                warnings.simplefilter("error", FutureWarning)
                exec(compile(block, f"{page}[block {i}]", "exec"), namespace)
        except Exception as err:  # pragma: no cover - the message is the point
            raise AssertionError(f"docs/{page} block {i} failed: {err!r}\n{block}") from err
        if expected:
            assert _normal(printed.getvalue()) == _normal(expected), (
                f"docs/{page} block {i} printed\n{printed.getvalue()}\ninstead of\n{expected}")


def test_output_blocks_are_compared():
    """The rule above holds at least on the pages that promise it."""
    pages = {p: len([m for m in BLOCK_AND_OUTPUT.findall((DOCS / p).read_text()) if m[1]])
             for p in _pages()}
    assert pages["migrating.md"] >= 10 and pages["clv.md"] >= 2
