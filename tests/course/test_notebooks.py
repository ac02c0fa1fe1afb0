"""Every chapter of the course executes (fast mode): a notebook that breaks fails `make test`.

Each ``course/NN_*.py`` (a jupytext percent script) is converted to a notebook and run by
nbclient in a fresh kernel, in the course folder, with ``NMT_COURSE_FAST=1``: a synthetic
corpus and a few updates. The cells assert nothing themselves; what they compute is checked by
nmt's own tests, and here any exception in any cell fails the chapter.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import jupytext
import nbformat
import pytest
from nbclient import NotebookClient

COURSE = Path(__file__).resolve().parents[2] / "course"
CHAPTERS = sorted(COURSE.glob("[0-9][0-9]_*.py"))
CELL_TIMEOUT_S = 300


def execute(chapter: Path, *, fast: bool = True) -> nbformat.NotebookNode:
    """Run ``chapter`` in a fresh kernel in the course folder; return the executed notebook."""
    notebook = jupytext.read(chapter)
    previous = os.environ.get("NMT_COURSE_FAST")
    os.environ["NMT_COURSE_FAST"] = "1" if fast else "0"  # the kernel inherits it
    try:
        NotebookClient(
            notebook,
            timeout=CELL_TIMEOUT_S,
            kernel_name="python3",
            resources={"metadata": {"path": str(COURSE)}},
        ).execute()
    finally:
        if previous is None:
            del os.environ["NMT_COURSE_FAST"]
        else:
            os.environ["NMT_COURSE_FAST"] = previous
    return notebook


def test_there_are_six_chapters() -> None:
    assert [p.name[:2] for p in CHAPTERS] == ["01", "02", "03", "04", "05", "06"]


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_executes_in_fast_mode(chapter: Path) -> None:
    started = time.perf_counter()
    notebook = execute(chapter)
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    # Every chapter shows something it computed: text and at least one figure.
    assert any(o.output_type == "stream" for o in outputs), chapter.name
    assert any("image/png" in o.get("data", {}) for o in outputs), chapter.name
    print(f"{chapter.name}: {time.perf_counter() - started:.1f} s")
