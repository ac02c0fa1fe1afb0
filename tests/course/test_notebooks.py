"""Every chapter of the course executes (fast mode): a notebook that breaks fails `make test`.

Each ``course/NN_*.py`` (a jupytext percent script) is run by nbclient in a fresh kernel, in
the course folder, with ``NMT_COURSE_FAST=1``: a synthetic corpus and a few updates
(course/site.py's ``execute``, the same that builds the site). Any exception in any cell
fails its chapter; what the cells compute is nmt's code, tested by nmt's own tests.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.course.conftest import load_course_site

CHAPTERS = load_course_site().CHAPTERS


def test_there_are_six_chapters() -> None:
    assert [p.name[:2] for p in CHAPTERS] == ["01", "02", "03", "04", "05", "06"]


@pytest.mark.parametrize("name", [chapter.stem for chapter in CHAPTERS])
def test_chapter_executes_in_fast_mode(executed_chapters: dict[str, Any], name: str) -> None:
    notebook, seconds = executed_chapters[name]
    if isinstance(notebook, BaseException):
        raise notebook
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    # Every chapter shows something it computed: text and at least one figure.
    assert any(o.output_type == "stream" for o in outputs), name
    assert any("image/png" in o.get("data", {}) for o in outputs), name
    print(f"{name}: {seconds:.1f} s")
