"""Glossaries on the test set: the share of terms that appear, BLEU with and without, the cost.

The terms come from scripts/glossary_terms.py (up to two Ding dictionary terms per sentence,
chosen by rule, never by looking at a translation). Each sentence is translated twice, with its
own terms as the glossary and without any, one call each, one after the other in the same
process (so both see the same load on the machine); sentences without terms are translated
once per setting too, and count in BLEU. A term counts as appearing where the output holds its
target as whole words, case-sensitively (the glossary's promise; a term whose tokens appear
glued to a neighbour would not count). Reported: terms that appear without and with the
glossary, sacreBLEU BLEU and chrF of both, CPU seconds of both and their ratio (over all
sentences, and over those with terms), and the median per-sentence ratio.

    python scripts/glossary_terms.py --data data/de-en -o data/de-en/test.terms.tsv
    python benchmarks/constraints.py --model runs/quickstart/averaged \\
        --src data/de-en/test.en --ref data/de-en/test.de --terms data/de-en/test.terms.tsv
"""

from __future__ import annotations

import argparse
import platform
import re
import statistics
import time
from collections import defaultdict
from pathlib import Path

import torch

from nmt.config import GlossaryTerm
from nmt.data.parallel import iter_lines
from nmt.decoding.glossary import Term, read_glossary
from nmt.decoding.translator import Translator
from nmt.evaluation.scoring import score

NOTE = re.compile(r"line (\d+)\b")


def terms_by_line(path: Path) -> dict[int, list[Term]]:
    """The terms file's terms, by the test line (from 1) its note names."""
    by_line: dict[int, list[Term]] = defaultdict(list)
    for term in read_glossary(path):
        match = NOTE.match(term.note)
        if match is None:
            raise SystemExit(f"{path}: a term without 'line N' in its note: {term}")
        by_line[int(match.group(1))].append(term)
    return by_line


def appears(target: str, text: str) -> bool:
    return re.search(r"(?<!\w)" + re.escape(target) + r"(?!\w)", text) is not None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("runs/quickstart/averaged"))
    parser.add_argument("--src", type=Path, default=Path("data/de-en/test.en"))
    parser.add_argument("--ref", type=Path, default=Path("data/de-en/test.de"))
    parser.add_argument("--terms", type=Path, default=Path("data/de-en/test.terms.tsv"))
    parser.add_argument("--sentences", type=int, default=1000, help="the first N (default 1000)")
    parser.add_argument("--beam-size", type=int, help="default: the model's config.decoding")
    args = parser.parse_args()

    src = list(iter_lines(args.src))[: args.sentences]
    ref = list(iter_lines(args.ref))[: args.sentences]
    by_line = terms_by_line(args.terms)
    translator = Translator.load(args.model)
    base = translator.default_options.updated(beam_size=args.beam_size)
    print(f"model: {args.model}, {len(src)} sentences of {args.src}, terms: {args.terms}")
    print(f"search: beam {base.beam_size}, α {base.length_penalty}, stopping {base.stopping}")
    print(
        f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; CPU seconds of this process (time.process_time)"
    )

    free, steered = [], []
    seconds = {"free": 0.0, "steered": 0.0, "free, with terms": 0.0, "steered, with terms": 0.0}
    ratios = []
    for number, sentence in enumerate(src, start=1):
        terms = by_line.get(number, [])
        glossary = [GlossaryTerm(source=t.source, target=t.target) for t in terms]
        options = base.updated(glossary=glossary) if glossary else base
        started = time.process_time()
        free.append(translator.translate([sentence], base, first_line=number)[0])
        middle = time.process_time()
        steered.append(translator.translate([sentence], options, first_line=number)[0])
        ended = time.process_time()
        seconds["free"] += middle - started
        seconds["steered"] += ended - middle
        if terms:
            seconds["free, with terms"] += middle - started
            seconds["steered, with terms"] += ended - middle
            ratios.append((ended - middle) / max(middle - started, 1e-9))
        if number % 100 == 0:
            print(f"  {number} sentences", flush=True)

    all_terms = [(number, t) for number in range(1, len(src) + 1) for t in by_line.get(number, [])]
    with_terms = sum(1 for number in range(1, len(src) + 1) if by_line.get(number))
    print(f"{len(all_terms)} terms in {with_terms} of {len(src)} sentences")
    print("| | terms that appear | BLEU | chrF | CPU s (all) | CPU s (sentences with terms) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, hyps in (("without glossary", free), ("with glossary", steered)):
        found = sum(appears(t.target, hyps[number - 1]) for number, t in all_terms)
        share = 100 * found / max(len(all_terms), 1)
        scores = score(hyps, ref)
        key = "free" if hyps is free else "steered"
        print(
            f"| {name} | {found}/{len(all_terms)} ({share:.1f} %) | {scores.bleu:.2f} "
            f"| {scores.chrf:.2f} | {seconds[key]:.1f} | {seconds[key + ', with terms']:.1f} |"
        )
    print(
        f"speed cost (with / without): {seconds['steered'] / seconds['free']:.2f}x over all "
        f"sentences, {seconds['steered, with terms'] / max(seconds['free, with terms'], 1e-9):.2f}x"
        f" over those with terms; median per sentence with terms "
        f"{statistics.median(ratios) if ratios else float('nan'):.2f}x"
    )
    print(score(steered, ref).report())


if __name__ == "__main__":
    main()
