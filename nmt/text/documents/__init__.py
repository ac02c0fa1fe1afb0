"""Translating documents: the format from the file's extension (or ``--format``), the text read
strictly (UTF-8, no binary, within limits), the output written under a temporary name and
renamed into place (nmt.durable), with a progress bar over the sentences.

Each format is a module with ``translate(translator, text, job) -> (output, report)``:
gettext catalogues (po), HTML pages (html), SubRip and WebVTT subtitles (subtitles), Markdown
(markdown); plain text and one-sentence-a-line files are streamed line by line (plain).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from nmt.config import DecodingConfig
from nmt.decoding.translator import Translation, Translator
from nmt.durable import write_file_atomically
from nmt.errors import NmtError
from nmt.text.prepare import Prepared
from nmt.text.translate import translate_prepared

DOCUMENT_FORMATS = ("text", "lines", "html", "xml", "po", "srt", "vtt", "markdown")
BY_SUFFIX = {
    ".po": "po",
    ".pot": "po",
    ".html": "html",
    ".htm": "html",
    ".xhtml": "html",
    ".xml": "xml",
    ".srt": "srt",
    ".vtt": "vtt",
    ".md": "markdown",
    ".markdown": "markdown",
}
MAX_DOCUMENT_BYTES = 20_000_000
"""A document read whole (all but plain text) larger than this is refused."""
MAX_PARAGRAPH_CHARS = 1_000_000
"""A line of plain text or a paragraph longer than this is refused (break it with newlines)."""
CHUNK_SENTENCES = 2_000


@dataclass
class Job:
    """What a format's translate() needs besides the text."""

    name: str
    """The input's name in messages (its path, or <stdin>)."""
    options: DecodingConfig | None
    source_language: str
    target_language: str
    progress: bool


@dataclass
class Report:
    """What a document's translation did, for one line on stderr."""

    sentences: int = 0
    counts: dict[str, int] = field(default_factory=dict)

    def line(self, name: str) -> str:
        extra = "".join(f", {v} {k}" for k, v in self.counts.items())
        return f"{name}: {self.sentences} sentences translated{extra}"


def document_format(path: Path | None, given: str | None) -> str:
    """``given``, else the format of ``path``'s extension, else plain text."""
    if given is not None:
        if given not in DOCUMENT_FORMATS:
            raise NmtError(f"unknown format {given!r}: use one of {', '.join(DOCUMENT_FORMATS)}")
        return given
    if path is None:
        return "text"
    return BY_SUFFIX.get(path.suffix.lower(), "text")


def read_document(path: Path | None) -> str:
    """A whole document as text: UTF-8 (a BOM dropped), no NUL bytes, at most
    MAX_DOCUMENT_BYTES; otherwise one NmtError naming the file and line."""
    name = str(path) if path is not None else "<stdin>"
    try:
        data = path.read_bytes() if path is not None else sys.stdin.buffer.read()
    except OSError as exc:
        raise NmtError(f"{name}: cannot read ({exc.strerror})") from None
    if len(data) > MAX_DOCUMENT_BYTES:
        raise NmtError(
            f"{name}: {len(data):,} bytes, more than the limit of {MAX_DOCUMENT_BYTES:,} for a "
            "document read whole; split it"
        )
    data = data.removeprefix(b"\xef\xbb\xbf")
    if b"\0" in data:
        line = data[: data.index(b"\0")].count(b"\n") + 1
        raise NmtError(f"{name}:{line}: a NUL byte: a binary file, not text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise NmtError(f"{name}:{line}: not valid UTF-8 (a binary file?)") from None


def write_document(path: Path | None, text: str) -> None:
    """``text`` to stdout, or to ``path`` under a temporary name renamed into place."""
    if path is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    try:
        write_file_atomically(path, lambda tmp: _write(tmp, text))
    except OSError as exc:
        raise NmtError(f"{path}: cannot write ({exc.strerror or exc})") from None


def _write(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


def translate_all(
    translator: Translator, prepared: Sequence[Prepared], job: Job
) -> list[list[Translation]]:
    """The translations of every prepared text, in chunks of about CHUNK_SENTENCES sentences
    (each chunk one batch), with a progress bar over the sentences."""
    total = sum(len(p.sentences) for p in prepared)
    out: list[list[Translation]] = []
    with tqdm(
        total=total, unit="sentence", desc="translating", disable=not job.progress, file=sys.stderr
    ) as bar:
        start = 0
        while start < len(prepared):
            end, size = start, 0
            while end < len(prepared) and (
                size == 0 or size + len(prepared[end].sentences) <= CHUNK_SENTENCES
            ):
                size += len(prepared[end].sentences)
                end += 1
            out += translate_prepared(translator, prepared[start:end], job.options)
            bar.update(size)
            start = end
    return out


def translate_document(
    translator: Translator,
    *,
    input_path: Path | None,
    output_path: Path | None,
    format: str,
    job: Job,
) -> Report:
    """Translate a whole document (every format but plain text and lines) into ``output_path``."""
    from nmt.text.documents import html, markdown, po, subtitles

    handlers = {
        "po": po.translate,
        "html": html.translate,
        "xml": html.translate_xml,
        "srt": subtitles.translate_srt,
        "vtt": subtitles.translate_vtt,
        "markdown": markdown.translate,
    }
    text = read_document(input_path)
    output, report = handlers[format](translator, text, job)
    write_document(output_path, output)
    return report
