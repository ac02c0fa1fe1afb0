"""Build the course's static site: execute the chapters, then render them with mkdocs.

The chapters (``course/NN_*.py``, jupytext percent scripts) are executed by nbclient in a fresh
kernel each, in the course folder, and written as notebooks with their outputs into the site's
source folder beside the course's home page, the paper map and the site's scripts; mkdocs
(mkdocs-material with mkdocs-jupyter, ``mkdocs.yml``) renders them into static HTML that works
offline: no web fonts, no CDN, KaTeX from Debian's libjs-katex served with the site.

    python -m course.site [--fast] [--out build/course-site]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import jupytext
import nbformat
from nbclient import NotebookClient

COURSE = Path(__file__).resolve().parent
ROOT = COURSE.parent
CHAPTERS = sorted(COURSE.glob("[0-9][0-9]_*.py"))
SITE_SOURCES = COURSE / "site"
PAPER_MAP = ROOT / "docs" / "paper-map.md"
KATEX = Path("/usr/share/javascript/katex")  # Debian's libjs-katex
KATEX_FONTS = Path("/usr/share/fonts/truetype/katex")  # its fonts-katex
CELL_TIMEOUT_S = 600


def execute(chapter: Path, *, fast: bool) -> nbformat.NotebookNode:
    """Run ``chapter`` in a fresh kernel in the course folder; return the executed notebook.
    Fast mode (``NMT_COURSE_FAST=1`` in the kernel's environment): a toy corpus, few updates."""
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


def katex_files() -> list[tuple[Path, str]]:
    """(file, its path in the site) of KaTeX's script, auto-render, stylesheet and fonts."""
    wanted = [
        KATEX / "katex.min.js",
        KATEX / "contrib" / "auto-render.js",
        KATEX / "katex.min.css",
    ]
    missing = [path for path in wanted if not path.is_file()]
    if missing:
        raise SystemExit(
            f"{missing[0]}: missing; install Debian's KaTeX: apt-get install libjs-katex"
        )
    files = [(path, f"katex/{path.relative_to(KATEX)}") for path in wanted]
    fonts = KATEX / "fonts" if (KATEX / "fonts").is_dir() else KATEX_FONTS
    files += [(font, f"katex/fonts/{font.name}") for font in sorted(fonts.glob("*.woff2"))]
    return files


def write_sources(notebooks: dict[str, nbformat.NotebookNode], src_dir: Path) -> None:
    """The site's source folder: the executed notebooks, the home page, the paper map, the
    scripts and KaTeX."""
    shutil.rmtree(src_dir, ignore_errors=True)
    shutil.copytree(SITE_SOURCES, src_dir)
    if PAPER_MAP.is_file():
        shutil.copy(PAPER_MAP, src_dir / "paper-map.md")
    for name, notebook in notebooks.items():
        nbformat.write(notebook, src_dir / f"{name}.ipynb")
    for path, target in katex_files():
        (src_dir / target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, src_dir / target)


def build_site(src_dir: Path, site_dir: Path) -> None:
    """mkdocs build of ``src_dir`` into ``site_dir`` with the repository's mkdocs.yml."""
    command = [
        sys.executable,
        "-m",
        "mkdocs",
        "build",
        "--strict",
        "--quiet",
        "--config-file",
        str(ROOT / "mkdocs.yml"),
        "--site-dir",
        str(site_dir),
    ]
    env = {**os.environ, "NMT_COURSE_SRC": str(src_dir), "NO_MKDOCS_2_WARNING": "1"}
    subprocess.run(command, check=True, cwd=ROOT, env=env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="NMT_COURSE_FAST=1: seconds a chapter")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "course-site")
    args = parser.parse_args()
    notebooks = {}
    for chapter in CHAPTERS:
        started = time.perf_counter()
        notebooks[chapter.stem] = execute(chapter, fast=args.fast)
        print(f"{chapter.name}: executed in {time.perf_counter() - started:.0f} s", flush=True)
    src_dir = args.out.parent / f"{args.out.name}-src"
    write_sources(notebooks, src_dir)
    build_site(src_dir, args.out)
    print(f"site: {args.out / 'index.html'}")


if __name__ == "__main__":
    main()
