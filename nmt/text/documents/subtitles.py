"""SubRip (srt) and WebVTT (webvtt-py) subtitles: cue count, numbers and timings unchanged.

A sentence often runs over several cues ("I think that" / "we should go."). The cues' text is
joined, split into sentences, and each sentence translated once, whole; its translation is
then shared back out over the cues it came from, in proportion to how much of the sentence
each held, cut between words. A cue's line break is not kept where the text is cut anew: a cue
of two lines gets its translation in two lines again, broken at the space nearest its middle.
WebVTT cue identifiers and settings (``align:start``…) are kept; its NOTE and STYLE blocks are
not (webvtt-py does not read them back out).
"""

from __future__ import annotations

import bisect
import io
import itertools
import re

import srt
import webvtt

from nmt.decoding.translator import Translator
from nmt.errors import NmtError
from nmt.text.documents import Job, Report, translate_all
from nmt.text.segment import sentence_spans
from nmt.text.translate import prepare_texts


def translate_srt(translator: Translator, text: str, job: Job) -> tuple[str, Report]:
    try:
        cues = list(srt.parse(text))
    except srt.SRTParseError as exc:
        line, content = _srt_error(text, exc)
        raise NmtError(
            f"{job.name}:{line}: not valid SubRip: cannot read {content[:60]!r}"
        ) from None
    if not cues and text.strip():
        raise NmtError(f"{job.name}:1: not valid SubRip (no cues)")
    translated, report = _translate_cues(translator, [c.content for c in cues], job)
    for cue, content in zip(cues, translated, strict=True):
        cue.content = content
    return srt.compose(cues, reindex=False), report


def translate_vtt(translator: Translator, text: str, job: Job) -> tuple[str, Report]:
    try:
        captions = webvtt.from_buffer(io.StringIO(text))
    except (webvtt.errors.MalformedFileError, webvtt.errors.MalformedCaptionError) as exc:
        raise NmtError(f"{job.name}: not valid WebVTT ({exc})") from None
    translated, report = _translate_cues(translator, [c.raw_text for c in captions.captions], job)
    for caption, content in zip(captions.captions, translated, strict=True):
        caption.text = content
    return captions.content, report


def _translate_cues(
    translator: Translator, contents: list[str], job: Job
) -> tuple[list[str], Report]:
    """Each cue's translated text (see the module docstring)."""
    joined, cue_starts = "", []
    for content in contents:
        cue_starts.append(len(joined))
        joined += " ".join(content.split()) + " "
    spans = sentence_spans(joined, language=job.source_language, split_lines=False)
    sentences = [joined[s:e] for s, e in spans]
    prepared = prepare_texts(translator, sentences, format="text", language=job.source_language)
    translations = translate_all(translator, prepared, job)
    pieces: list[list[str]] = [[] for _ in contents]
    for (start, end), p, t in zip(spans, prepared, translations, strict=True):
        words = p.restore(t).split()
        # The cues the sentence spans, and how many of its characters each holds (from the
        # cue it starts in: a scan of every cue per sentence is quadratic in a film's length).
        shares = []
        for i in range(max(bisect.bisect_right(cue_starts, start) - 1, 0), len(cue_starts)):
            if cue_starts[i] >= end:
                break
            cue_end = cue_starts[i + 1] if i + 1 < len(cue_starts) else len(joined)
            overlap = min(end, cue_end) - max(start, cue_starts[i])
            if overlap > 0:
                shares.append((i, overlap))
        for (i, _), cue_words in zip(
            shares, _share_out(words, [n for _, n in shares]), strict=True
        ):
            pieces[i] += cue_words
    out = []
    for content, words in zip(contents, pieces, strict=True):
        line = " ".join(words)
        out.append(_break_like(content, line))
    return out, Report(sentences=len(sentences), counts={"cues": len(contents)})


def _share_out(words: list[str], sizes: list[int]) -> list[list[str]]:
    """``words`` cut into ``len(sizes)`` runs in proportion to ``sizes``, each run holding at
    least one word while there are words enough (so that no cue is left empty)."""
    total, held, cuts = sum(sizes), 0, list[int]()
    for k, size in enumerate(sizes[:-1]):
        held += size
        cut = round(len(words) * held / total)
        lowest = (cuts[-1] if cuts else 0) + 1
        highest = len(words) - (len(sizes) - 1 - k)
        cuts.append(max(min(cut, highest), min(lowest, highest)))
    bounds = [0, *cuts, len(words)]
    return [words[a:b] for a, b in itertools.pairwise(bounds)]


def _break_like(source: str, text: str) -> str:
    """``text`` in as many lines as ``source`` had, at most two, broken near the middle."""
    if source.count("\n") == 0 or " " not in text:
        return text
    middle = len(text) // 2
    spaces = [m.start() for m in re.finditer(" ", text)]
    at = min(spaces, key=lambda i: abs(i - middle))
    return text[:at] + "\n" + text[at + 1 :]


def _srt_error(text: str, exc: srt.SRTParseError) -> tuple[int, str]:
    """The line srt could not read (its timing line where there is one), and that line."""
    line = text[: exc.expected_start].count("\n") + 1
    lines = exc.unmatched_content.splitlines()
    for offset, content in enumerate(lines):
        if "-->" in content:
            return line + offset, content.strip()
    first = next((i for i, c in enumerate(lines) if c.strip()), 0)
    return line + first, lines[first].strip() if lines else ""
