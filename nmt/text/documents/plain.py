"""Plain text, streamed: each line split into sentences, translated, and put back together on
its line (``text``); or one sentence a line, as corpora and ``nmt evaluate`` have them
(``lines``), optionally with scores and word alignments.

Lines are read and written in chunks, so a file of any length streams through in bounded
memory; a single line (a paragraph) longer than MAX_PARAGRAPH_CHARS is refused with its line
number rather than held whole. The output is written under a temporary name and renamed into
place at the end (nmt.decoding.files).
"""

from __future__ import annotations

import itertools
import math
import sys
from collections.abc import Iterator
from pathlib import Path

from tqdm import tqdm

from nmt.data.parallel import count_lines, iter_lines
from nmt.decoding.alignment import pharaoh, word_alignment_of
from nmt.decoding.files import _open_output, _stdin_lines
from nmt.decoding.translator import Translation, Translator
from nmt.errors import NmtError
from nmt.text.documents import MAX_PARAGRAPH_CHARS, Job
from nmt.text.translate import prepare_texts, translate_prepared


def translate_lines(
    translator: Translator,
    *,
    input_path: Path | None,
    output_path: Path | None,
    job: Job,
    split_sentences: bool = True,
    scores: bool = False,
    alignments: bool = False,
    interactive: bool = False,
    chunk_size: int = 2_000,
) -> int:
    """Translate a file (None: stdin) line by line into ``output_path`` (None: stdout); the
    number of lines.

    ``split_sentences``: each line may hold several sentences (plain text); else one sentence
    a line. ``scores`` adds `` ||| score ||| p(piece)… p(EOS)`` to each line, ``alignments``
    `` ||| src-tgt …`` (Pharaoh format, word indices); both read one sentence a line.
    """
    lines = checked_lines(input_path)
    total = count_lines(input_path) if input_path is not None else None
    bar = tqdm(
        total=total, unit="line", desc="translating", disable=not job.progress, file=sys.stderr
    )
    done = 0
    with bar, _open_output(output_path) as out:
        for chunk in _chunks(lines, 1 if interactive else chunk_size):
            if split_sentences and not (scores or alignments):
                prepared = prepare_texts(
                    translator, chunk, format="text", language=job.source_language, name=job.name
                )
                found = translate_prepared(translator, prepared, job.options)
                out.writelines(p.restore(t) + "\n" for p, t in zip(prepared, found, strict=True))
            else:
                results = translator.translate_nbest(
                    chunk, job.options, return_alignment=alignments, first_line=done + 1
                )
                out.writelines(
                    columns(translations[0], scores=scores, alignments=alignments) + "\n"
                    for translations in results
                )
            out.flush()
            done += len(chunk)
            bar.update(len(chunk))
    return done


def columns(translation: Translation, *, scores: bool, alignments: bool) -> str:
    """``text [||| score ||| piece probabilities] [||| alignment]``."""
    fields = [translation.text]
    if scores:
        fields.append(f"{translation.score:.4f}")
        fields.append(" ".join(f"{math.exp(p):.4f}" for p in translation.token_log_probs))
    if alignments:
        has_alignment = translation.alignment is not None or translation.attention is not None
        fields.append(pharaoh(word_alignment_of(translation)) if has_alignment else "")
    return " ||| ".join(fields)


def checked_lines(path: Path | None) -> Iterator[str]:
    """The lines of ``path`` (None: stdin), refusing a NUL byte (a binary file) and a line
    longer than MAX_PARAGRAPH_CHARS, each with the file and line."""
    name = str(path) if path is not None else "<stdin>"
    for number, line in enumerate(iter_lines(path) if path is not None else _stdin_lines(), 1):
        if "\0" in line:
            raise NmtError(f"{name}:{number}: a NUL byte: a binary file, not text")
        if len(line) > MAX_PARAGRAPH_CHARS:
            raise NmtError(
                f"{name}:{number}: a paragraph of {len(line):,} characters, more than the limit "
                f"of {MAX_PARAGRAPH_CHARS:,}: break it into lines"
            )
        yield line


def _chunks(lines: Iterator[str], size: int) -> Iterator[list[str]]:
    while chunk := list(itertools.islice(lines, size)):
        yield chunk
