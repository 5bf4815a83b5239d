"""The Python examples in docs/ run: each page's ```python blocks execute in order,
in one namespace, as a reader would paste them."""

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
BLOCK = re.compile(r"```python\n(.*?)```", re.S)
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
    for i, block in enumerate(BLOCK.findall((DOCS / page).read_text())):
        try:
            exec(compile(block, f"{page}[block {i}]", "exec"), namespace)
        except Exception as err:  # pragma: no cover - the message is the point
            raise AssertionError(f"docs/{page} block {i} failed: {err!r}\n{block}") from err
