"""Glossaries on the test set: the share of terms that appear, BLEU with and without, the cost.

The terms come from scripts/glossary_terms.py (up to two Ding dictionary terms per sentence,
chosen by rule, never by looking at a translation). Each sentence must be given its own terms
and no other: the sentences with terms are put into groups of up to ``--group`` whose terms
match, by the glossary's own policy, in their own sentences only, and each group is translated
in one call with its terms as the glossary, then in one call without; the sentences without
terms are translated once (a glossary that matches nothing in a sentence leaves its search as
it is) and counted in both. Both settings run one after the other in the same process, so
both see the same load on the machine.

A term counts as appearing where the output holds its target as whole words,
case-sensitively (the glossary's promise). Reported: terms that appear without and with the
glossary, sacreBLEU BLEU and chrF of both, CPU seconds of both and their ratio (over all
sentences, and over those with terms).

    python scripts/glossary_terms.py --data data/de-en -o data/de-en/test.terms.tsv
    python benchmarks/constraints.py --model runs/quickstart/averaged \\
        --src data/de-en/test.en --ref data/de-en/test.de --terms data/de-en/test.terms.tsv
"""

from __future__ import annotations

import argparse
import re
import time
from collections import defaultdict
from pathlib import Path

from nmt.config import GlossaryTerm
from nmt.data.parallel import iter_lines
from nmt.decoding.glossary import Term, find_terms, read_glossary, term_pattern
from nmt.decoding.translator import Translator
from nmt.evaluation.scoring import score
from nmt.machine import describe

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


def groups(src: list[str], by_line: dict[int, list[Term]], size: int) -> list[list[int]]:
    """Lines (from 1) with terms, in groups where every line's terms are exactly the ones the
    group's glossary finds in it."""
    formed: list[list[int]] = []
    for number in sorted(n for n in by_line if n <= len(src)):
        own = by_line[number]
        for group in formed:
            if len(group) >= size:
                continue
            glossary = [t for n in group for t in by_line[n]] + own
            if set(find_terms(src[number - 1], glossary)) != set(own):
                continue
            if any(term_pattern(t.source).search(src[n - 1]) for n in group for t in own):
                continue
            group.append(number)
            break
        else:
            formed.append([number])
    return formed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("runs/quickstart/averaged"))
    parser.add_argument("--src", type=Path, default=Path("data/de-en/test.en"))
    parser.add_argument("--ref", type=Path, default=Path("data/de-en/test.de"))
    parser.add_argument("--terms", type=Path, default=Path("data/de-en/test.terms.tsv"))
    parser.add_argument("--sentences", type=int, default=1000, help="the first N (default 1000)")
    parser.add_argument("--group", type=int, default=32, help="sentences per call (default 32)")
    parser.add_argument("--beam-size", type=int, help="default: the model's config.decoding")
    parser.add_argument("--show-missing", type=int, default=0, help="print N terms missed")
    args = parser.parse_args()

    src = list(iter_lines(args.src))[: args.sentences]
    ref = list(iter_lines(args.ref))[: args.sentences]
    by_line = terms_by_line(args.terms)
    translator = Translator.load(args.model)
    base = translator.default_options.updated(beam_size=args.beam_size)
    print(f"model: {args.model}, {len(src)} sentences of {args.src}, terms: {args.terms}")
    print(f"search: beam {base.beam_size}, α {base.length_penalty}, stopping {base.stopping}")
    print(f"machine: {describe()}; CPU seconds of this process (time.process_time)")

    free, steered = [""] * len(src), [""] * len(src)
    plain = [n for n in range(1, len(src) + 1) if not by_line.get(n)]
    started = time.process_time()
    for n, text in zip(plain, translator.translate([src[n - 1] for n in plain], base), strict=True):
        free[n - 1] = steered[n - 1] = text
    shared = time.process_time() - started
    seconds = {"free": 0.0, "steered": 0.0}
    formed = groups(src, by_line, args.group)
    for done, group in enumerate(formed, start=1):
        glossary = [
            GlossaryTerm(source=t.source, target=t.target) for n in group for t in by_line[n]
        ]
        sentences = [src[n - 1] for n in group]
        for name, options, outputs in (
            ("free", base, free),
            ("steered", base.updated(glossary=glossary), steered),
        ):
            started = time.process_time()
            for n, text in zip(group, translator.translate(sentences, options), strict=True):
                outputs[n - 1] = text
            seconds[name] += time.process_time() - started
        print(f"  group {done}/{len(formed)}", flush=True)

    all_terms = [(n, t) for n in range(1, len(src) + 1) for t in by_line.get(n, [])]
    print(
        f"{len(all_terms)} terms in {len(src) - len(plain)} of {len(src)} sentences "
        f"({len(formed)} calls); {shared:.1f} CPU s for the {len(plain)} sentences without"
    )
    print("| | terms that appear | BLEU | chrF | CPU s (all) | CPU s (sentences with terms) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, key, hyps in (
        ("without glossary", "free", free),
        ("with glossary", "steered", steered),
    ):
        found = sum(appears(t.target, hyps[n - 1]) for n, t in all_terms)
        share = 100 * found / max(len(all_terms), 1)
        scores = score(hyps, ref)
        print(
            f"| {name} | {found}/{len(all_terms)} ({share:.1f} %) | {scores.bleu:.2f} "
            f"| {scores.chrf:.2f} | {seconds[key] + shared:.1f} | {seconds[key]:.1f} |"
        )
    missing = [(n, t) for n, t in all_terms if not appears(t.target, steered[n - 1])]
    for n, t in missing[: args.show_missing]:
        print(f"line {n}: {t.source!r} → {t.target!r} missing from {steered[n - 1]!r}")
    overall = (seconds["steered"] + shared) / (seconds["free"] + shared)
    with_terms = seconds["steered"] / max(seconds["free"], 1e-9)
    print(
        f"speed cost (with / without): {overall:.2f}x over all sentences, "
        f"{with_terms:.2f}x over those with terms"
    )


if __name__ == "__main__":
    main()
