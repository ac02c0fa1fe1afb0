"""Paragraphs against pre-split sentences: is every sentence back, the same, and as fast?

The test set's sentences (one a line) are joined into paragraphs of 2 to 6 (seeded), then
translated twice with the same model and options, in the same process, alternating:

- pre-split: ``translator.translate(lines)``, what ``nmt translate --format lines`` does;
- paragraphs: ``nmt.text.translate_text(translator, paragraphs)``, what ``nmt translate`` does
  with a paragraph a line: split by sentencex, all sentences in one batch, rejoined.

With ``--documents``, the same sentences also go through the document formats, each timed
against the pre-split sentences in the same loop (what ``nmt translate -i FILE`` does, less
reading and writing the file):

- html: the paragraphs as ``<p>`` elements of a page, every third sentence with a word in
  ``<b>`` and every fifth ending in a link: tags placed by the model's attention;
- po: a catalogue with a message a sentence (polib);
- srt: a subtitle cue a sentence.

It prints the sentences/s of each (median of --repeats runs; the machine is shared, so the
ratio of medians measured side by side is the figure to read), their ratio, and the checks:
how many sentences the splitter found against the lines joined (a test line that holds two
sentences, or two lines it reads as one, shows here), and how many paragraphs came back exactly
as their lines' pre-split translations joined with a space, in all and among the paragraphs the
splitter cut exactly at their lines.

    python benchmarks/documents.py MODEL_DIR [--data data/de-en] [--repeats 3] [--beam-size 4]
        [--documents html,po,srt]
"""

from __future__ import annotations

import argparse
import html
import random
import statistics
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import polib
import srt

from nmt.data.parallel import iter_lines
from nmt.decoding.translator import Translation, Translator
from nmt.machine import describe
from nmt.text import translate_text
from nmt.text.documents import Job
from nmt.text.documents import html as html_format
from nmt.text.documents import po as po_format
from nmt.text.documents import subtitles as subtitle_format
from nmt.text.translate import prepare_texts


def paragraphs_of(lines: list[str], *, seed: int) -> list[list[str]]:
    rng, groups, at = random.Random(seed), [], 0
    while at < len(lines):
        size = rng.randint(2, 6)
        groups.append(lines[at : at + size])
        at += size
    return groups


def marked_up(sentence: str, index: int) -> str:
    """The sentence as HTML text: every third with its second word bold, every fifth ending in
    a link."""
    words = [html.escape(word, quote=False) for word in sentence.split()]
    if index % 3 == 0 and len(words) > 2:
        words[1] = f"<b>{words[1]}</b>"
    if index % 5 == 0 and len(words) > 1:
        words[-1] = f'<a href="https://example.org/{index}">{words[-1]}</a>'
    return " ".join(words)


def html_page(groups: list[list[str]]) -> str:
    body, index = [], 0
    for group in groups:
        body.append("<p>" + " ".join(marked_up(s, index + i) for i, s in enumerate(group)) + "</p>")
        index += len(group)
    return (
        "<!DOCTYPE html>\n<html><head><title>Test</title></head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def po_catalogue(lines: list[str]) -> str:
    catalogue = polib.POFile()
    catalogue.metadata = {"Content-Type": "text/plain; charset=UTF-8"}
    for i, line in enumerate(lines):
        catalogue.append(polib.POEntry(msgid=line, msgstr="", occurrences=[("test.en", i + 1)]))
    return str(catalogue)


def srt_file(lines: list[str]) -> str:
    second = timedelta(seconds=1)
    return srt.compose(
        srt.Subtitle(i + 1, 3 * i * second, (3 * i + 2) * second, line)
        for i, line in enumerate(lines)
    )


DOCUMENTS: dict[str, tuple[Callable[..., tuple[str, object]], Callable[..., str], bool]] = {
    # format: (its translate function, the document builder, built from paragraphs?)
    "html": (html_format.translate, html_page, True),
    "po": (po_format.translate, po_catalogue, False),
    "srt": (subtitle_format.translate_srt, srt_file, False),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--data", type=Path, default=Path("data/de-en"))
    parser.add_argument("--split", default="test")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--beam-size", type=int)
    parser.add_argument("--limit", type=int, help="only the first N sentences")
    parser.add_argument("--documents", default="", help="comma-separated: html, po, srt")
    args = parser.parse_args()
    print(describe())  # the machine and its measured matmul speed, with every timed figure

    translator = Translator.load(args.model_dir)
    options = translator.default_options
    if args.beam_size is not None:
        options = options.updated(beam_size=args.beam_size)
    lines = [line for line in iter_lines(args.data / f"{args.split}.en") if line.strip()]
    lines = lines[: args.limit] if args.limit else lines
    groups = paragraphs_of(lines, seed=0)
    paragraphs = [" ".join(group) for group in groups]
    prepared = prepare_texts(translator, paragraphs)
    found = sum(len(p.sentences) for p in prepared)
    # Paragraphs the splitter cut exactly at their lines (not one test line holding two
    # sentences, nor two lines read as one): there each sentence must come back as it was alone.
    split_as_lines = [p.sentences == group for p, group in zip(prepared, groups, strict=True)]
    beam = options.beam_size
    print(f"{len(lines)} sentences in {len(paragraphs)} paragraphs of 2-6; beam {beam}")
    print(f"sentencex found {found} sentences in the paragraphs ({found - len(lines):+d})")

    # nmt.text's own work, without the model: split, protect, rejoin (a stand-in translation).
    own = []
    for _ in range(5):
        start = time.perf_counter()
        for p in prepare_texts(translator, paragraphs):
            p.restore([Translation(s, [], 0.0) for s in p.sentences])
        own.append(time.perf_counter() - start)
    per_sentence = 1000 * statistics.median(own) / len(lines)
    print(f"splitting and rejoining alone: {per_sentence:.3f} ms a sentence")

    pre_split_times, paragraph_times = [], []
    pre_split: list[str] = []
    translated: list[str] = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        pre_split = translator.translate(lines, options)
        pre_split_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        translated = translate_text(translator, paragraphs, options=options)
        paragraph_times.append(time.perf_counter() - start)

    expected, at = [], 0
    for group in groups:
        expected.append(" ".join(pre_split[at : at + len(group)]))
        at += len(group)
    same = [a == b for a, b in zip(translated, expected, strict=True)]
    same_where_split_as_lines = sum(s for s, ok in zip(same, split_as_lines, strict=True) if ok)
    pre_rate = len(lines) / statistics.median(pre_split_times)
    paragraph_rate = len(lines) / statistics.median(paragraph_times)
    print(
        f"paragraphs identical to their pre-split sentences joined: {sum(same)} of {len(groups)}; "
        f"of the {sum(split_as_lines)} split exactly at their lines: {same_where_split_as_lines}"
    )
    print(f"pre-split:  {pre_rate:7.1f} sentences/s  (runs: {_seconds(pre_split_times)})")
    print(f"paragraphs: {paragraph_rate:7.1f} sentences/s  (runs: {_seconds(paragraph_times)})")
    print(f"ratio paragraphs / pre-split: {paragraph_rate / pre_rate:.3f}")

    for name in filter(None, args.documents.split(",")):
        translate, build, from_paragraphs = DOCUMENTS[name]
        document = build(groups if from_paragraphs else lines)
        job = Job(name, options, "en", "de", progress=False)
        pre_split_times, document_times = [], []
        for _ in range(args.repeats):
            start = time.perf_counter()
            translator.translate(lines, options)
            pre_split_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            translate(translator, document, job)
            document_times.append(time.perf_counter() - start)
        pre_rate = len(lines) / statistics.median(pre_split_times)
        rate = len(lines) / statistics.median(document_times)
        print(
            f"{name}: {rate:7.1f} sentences/s against pre-split {pre_rate:7.1f}, ratio "
            f"{rate / pre_rate:.3f} (runs: {_seconds(document_times)})"
        )


def _seconds(times: list[float]) -> str:
    return ", ".join(f"{t:.2f} s" for t in times)


if __name__ == "__main__":
    main()
