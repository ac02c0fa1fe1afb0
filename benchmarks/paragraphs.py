"""Paragraphs through every entry point: every sentence comes back, as it translates alone.

Issue 21's check on real text. The test set's sentences are joined into paragraphs of 2 to 6
(seeded, as in benchmarks/documents.py) and translated with the model's own options through

- Python: ``nmt.text.translate_text(translator, paragraphs)``;
- the CLI: ``nmt translate MODEL -i paragraphs.txt -o out.txt``, a paragraph a line, the
  default ``--format text``;
- the API: a real ``nmt serve`` on a loopback port, ``POST /v1/translate`` with the paragraphs
  as ``texts`` (in requests of --per-request).

Each is compared with every sentence translated alone: the sentences the splitter finds in the
paragraph (which is where a test line without a final stop runs on into the next, or a line
holding two sentences is cut in two), each translated as its own text in a call of its own,
and put back in the paragraph's whitespace. Printed: the sentences the splitter finds in the
paragraphs against the sentence results that came back (the API's), and per entry point the
paragraphs identical to their sentences alone.

    python benchmarks/paragraphs.py MODEL_DIR [--data data/de-en] [--limit N]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from documents import paragraphs_of
from serve_load import start_server, stop_server

from nmt.data.parallel import iter_lines
from nmt.decoding.translator import Translator
from nmt.machine import describe
from nmt.text import translate_text
from nmt.text.segment import sentence_spans


def through_cli(model_dir: Path, paragraphs: list[str], work: Path) -> list[str]:
    source, target = work / "paragraphs.txt", work / "out.txt"
    source.write_text("".join(f"{p}\n" for p in paragraphs), encoding="utf-8")
    command = [sys.executable, "-m", "nmt.cli", "translate", str(model_dir)]
    subprocess.run([*command, "-i", str(source), "-o", str(target)], check=True)
    return target.read_text(encoding="utf-8").splitlines()


def through_api(
    model_dir: Path, paragraphs: list[str], work: Path, per_request: int
) -> tuple[list[str], int]:
    """The paragraphs' translations and how many sentence results came back."""
    process, url = start_server(model_dir, [], work / "serve.log")
    texts: list[str] = []
    sentences = 0
    try:
        with httpx.Client(base_url=url, timeout=600) as client:
            for at in range(0, len(paragraphs), per_request):
                reply = client.post(
                    "/v1/translate", json={"texts": paragraphs[at : at + per_request]}
                )
                reply.raise_for_status()
                for translation in reply.json()["translations"]:
                    texts.append(translation["text"])
                    sentences += len(translation["sentences"])
    finally:
        stop_server(process)
    return texts, sentences


def alone(translator: Translator, paragraph: str, spans: list[tuple[int, int]]) -> str:
    """The paragraph with each of its sentences replaced by its translation alone."""
    out, at = [], 0
    for start, end in spans:
        out += [paragraph[at:start], translate_text(translator, [paragraph[start:end]])[0]]
        at = end
    return "".join([*out, paragraph[at:]])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--data", type=Path, default=Path("data/de-en"))
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int, help="only the first N sentences")
    parser.add_argument("--per-request", type=int, default=16, help="paragraphs per API request")
    args = parser.parse_args()
    print(describe())

    translator = Translator.load(args.model_dir)
    lines = [line for line in iter_lines(args.data / f"{args.split}.en") if line.strip()]
    lines = lines[: args.limit] if args.limit else lines
    groups = paragraphs_of(lines, seed=0)
    paragraphs = [" ".join(group) for group in groups]
    spans = [sentence_spans(p, language="en", split_lines=True) for p in paragraphs]
    sentences_in = sum(len(found) for found in spans)
    cut_at_lines = sum(len(found) == len(group) for found, group in zip(spans, groups, strict=True))
    print(
        f"{len(lines)} test lines in {len(paragraphs)} paragraphs; the splitter finds "
        f"{sentences_in} sentences in them ({cut_at_lines} paragraphs cut at their lines)"
    )

    start = time.perf_counter()
    expected = [alone(translator, p, found) for p, found in zip(paragraphs, spans, strict=True)]
    print(f"each sentence alone: {time.perf_counter() - start:.0f} s")

    with tempfile.TemporaryDirectory() as work:
        api, sentences_out = through_api(args.model_dir, paragraphs, Path(work), args.per_request)
        outputs = {
            "Python": translate_text(translator, paragraphs),
            "CLI": through_cli(args.model_dir, paragraphs, Path(work)),
            "API": api,
        }
    print(f"sentences in: {sentences_in}, sentences out (the API's results): {sentences_out}")
    for entry, texts in outputs.items():
        same = sum(a == b for a, b in zip(texts, expected, strict=True))
        print(
            f"{entry:6s} {len(texts)} paragraphs back, identical to their sentences alone: "
            f"{same} of {len(paragraphs)}"
        )


if __name__ == "__main__":
    main()
