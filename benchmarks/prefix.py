"""Target prefixes on the test set: every output starts with its prefix, and nmt's search and
CTranslate2's (``target_prefix``) agree token for token.

Each sentence's prefix is the first two words of its reference (issue 25's check). Both engines
translate the same sentences with the same options (beam 4 and α 0 by default, where the two
engines' length penalties agree); reported: outputs that start with their prefix, for each
engine, outputs identical between the engines (their ids), and each engine's seconds.

    python benchmarks/prefix.py --model runs/quickstart/averaged \\
        --src data/de-en/test.en --ref data/de-en/test.de --sentences 200
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from nmt.data.parallel import iter_lines
from nmt.decoding.translator import Translation, Translator
from nmt.machine import describe


def first_words(line: str, count: int) -> str:
    return " ".join(line.split()[:count])


def run(translator: Translator, sentences: list[str], prefixes: list[str], options_changes: dict):
    options = translator.default_options.updated(**options_changes)
    start = time.perf_counter()
    found = translator.translate_nbest(sentences, options, prefixes=prefixes)
    return [best[0] for best in found], time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--src", type=Path, default=Path("data/de-en/test.en"))
    parser.add_argument("--ref", type=Path, default=Path("data/de-en/test.de"))
    parser.add_argument("--sentences", type=int, default=200)
    parser.add_argument("--words", type=int, default=2, help="prefix: the reference's first words")
    parser.add_argument("--beam-size", type=int, default=4)
    parser.add_argument("--length-penalty", type=float, default=0.0)
    args = parser.parse_args()

    sources = list(iter_lines(args.src))[: args.sentences]
    prefixes = [first_words(line, args.words) for line in list(iter_lines(args.ref))]
    prefixes = prefixes[: len(sources)]
    changes = {"beam_size": args.beam_size, "length_penalty": args.length_penalty}
    print(describe())
    outputs: dict[str, list[Translation]] = {}
    for engine in ("nmt", "ctranslate2"):
        translator = Translator.load(args.model, engine=engine)
        outputs[engine], seconds = run(translator, sources, prefixes, changes)
        starts = sum(t.text.startswith(p) for t, p in zip(outputs[engine], prefixes, strict=True))
        print(
            f"{engine:12s} {starts}/{len(sources)} outputs start with their prefix, {seconds:.1f} s"
        )
    same = sum(
        a.tokens == b.tokens for a, b in zip(outputs["nmt"], outputs["ctranslate2"], strict=True)
    )
    print(f"identical ids, nmt vs CTranslate2: {same}/{len(sources)}")


if __name__ == "__main__":
    main()
