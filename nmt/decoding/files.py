"""Translating a file (or stdin) line by line, in chunks, into a file (or stdout).

Chunks of ``chunk_size`` lines are read, translated (sorted by length inside the chunk for
dense batches) and written in input order, so a huge file never sits in memory; typed at a
terminal, each line is translated as soon as it is entered. A file output
is written to a temporary sibling and renamed into place at the end: a failed run leaves no
half-written file behind. n-best output follows fairseq/Moses: ``line ||| text ||| score`` with
0-based line numbers.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from tqdm import tqdm

from nmt.config import DecodingConfig
from nmt.data.parallel import count_lines, iter_lines
from nmt.decoding.translator import Translator
from nmt.durable import text_file_atomically
from nmt.errors import NmtError


def translate_file(
    translator: Translator,
    *,
    input_path: Path | None,
    output_path: Path | None,
    options: DecodingConfig | None = None,
    progress: bool = True,
    chunk_size: int = 5_000,
    interactive: bool | None = None,
) -> int:
    """Translate ``input_path`` (None: stdin) into ``output_path`` (None: stdout); lines done.

    One output line per input line, or ``options.nbest`` lines per input line when it is above
    1 (options None: the translator's defaults). A progress bar goes to stderr when reading a
    file. ``interactive`` translates and writes each line as soon as it is read, for a person
    typing at a terminal; None: when stdin is one.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, not {chunk_size}")
    options = options if options is not None else translator.default_options
    if input_path is None:
        lines, total = _stdin_lines(), None
        if interactive is None:
            interactive = sys.stdin.isatty()
    else:
        total = count_lines(input_path)  # also a clear error for a missing file, before any work
        lines = iter_lines(input_path)
    bar = tqdm(
        total=total,
        unit="line",
        desc="translating",
        disable=input_path is None or not progress,
        file=sys.stderr,
    )
    done = 0
    # The bar ends its line even when translating fails, so an error message starts a line.
    with bar, _open_output(output_path) as out:
        for chunk in _chunks(lines, 1 if interactive else chunk_size):
            if options.nbest == 1:
                texts = translator.translate(chunk, options, first_line=done + 1)
                out.writelines(text + "\n" for text in texts)
            else:
                results = translator.translate_nbest(chunk, options, first_line=done + 1)
                out.writelines(
                    f"{done + i} ||| {t.text} ||| {t.score:.6f}\n"
                    for i, translations in enumerate(results)
                    for t in translations
                )
            out.flush()
            done += len(chunk)
            bar.update(len(chunk))
    return done


def _chunks(lines: Iterable[str], size: int) -> Iterator[list[str]]:
    iterator = iter(lines)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def _stdin_lines() -> Iterator[str]:
    """stdin's lines as UTF-8 whatever the locale; invalid bytes fail with the line number."""
    stream = getattr(sys.stdin, "buffer", None)
    if stream is None:  # a text stream without bytes underneath (a test's StringIO)
        yield from (line.rstrip("\r\n") for line in sys.stdin)
        return
    for number, raw in enumerate(stream, start=1):
        try:
            yield raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError as exc:
            raise NmtError(
                f"<stdin>:{number}: not valid UTF-8 (byte {exc.start + 1} of the line)"
            ) from None


@contextmanager
def _open_output(path: Path | None) -> Iterator[TextIO]:
    """stdout, or a file published as ``path`` by nmt.durable once everything is written."""
    if path is None:
        yield sys.stdout
        sys.stdout.flush()
        return
    with text_file_atomically(path) as f:
        yield f
