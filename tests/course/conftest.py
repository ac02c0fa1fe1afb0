"""The course's chapters, executed once a session in fast mode (notebook and site tests).

course/site.py is loaded from its file: the course is a folder of notebooks beside the
package, not part of what nmt installs.
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path
from types import ModuleType

import nbformat
import pytest

SITE_PY = Path(__file__).resolve().parents[2] / "course" / "site.py"


def load_course_site() -> ModuleType:
    spec = importlib.util.spec_from_file_location("course_site", SITE_PY)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def course_site() -> ModuleType:
    return load_course_site()


@pytest.fixture(scope="session")
def executed_chapters(
    course_site: ModuleType,
) -> dict[str, tuple[nbformat.NotebookNode | BaseException, float]]:
    """Each chapter's executed notebook (or the error that stopped it) and its seconds."""
    results: dict[str, tuple[nbformat.NotebookNode | BaseException, float]] = {}
    for chapter in course_site.CHAPTERS:
        started = time.perf_counter()
        try:
            notebook: nbformat.NotebookNode | BaseException = course_site.execute(
                chapter, fast=True
            )
        except Exception as exc:  # reported by the chapter's own test
            notebook = exc
        results[chapter.stem] = (notebook, time.perf_counter() - started)
    return results
