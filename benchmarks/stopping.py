"""Beam search's stopping rules against each other: work done, outputs and BLEU, one model.

For each rule (nmt.config.DecodingConfig.stopping and patience; beam 4, α = 0.6) it translates
the same sentences and prints the decoder steps taken, the decoder rows fed (steps × live
beams: the work, independent of the machine's load), the output tokens, the empty outputs,
sacreBLEU, chrF and the CPU seconds. The first row is the search as it was before the rules
became options (the exact bound, empty outputs allowed); the row counts of the others are
ratios against it.

    python benchmarks/stopping.py --model runs/quickstart/averaged \\
        --src data/de-en/test.en --ref data/de-en/test.de
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path
from typing import Any

import torch

from nmt.config import DecodingConfig
from nmt.data.parallel import iter_lines
from nmt.decoding.translator import Translator
from nmt.evaluation.scoring import score


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("runs/quickstart/averaged"))
    parser.add_argument("--src", type=Path, default=Path("data/de-en/test.en"))
    parser.add_argument("--ref", type=Path, default=Path("data/de-en/test.de"))
    parser.add_argument("--sentences", type=int, default=1000, help="the first N (default 1000)")
    args = parser.parse_args()

    src = list(iter_lines(args.src))[: args.sentences]
    ref = list(iter_lines(args.ref))[: args.sentences]
    translator = Translator.load(args.model)
    counts = {"steps": 0, "rows": 0}
    decode_step = translator.model.decode_step

    def counted(prev_tokens: torch.Tensor, state: Any) -> Any:
        counts["steps"] += 1
        counts["rows"] += prev_tokens.numel()
        return decode_step(prev_tokens, state)

    translator.model.decode_step = counted  # type: ignore[method-assign]
    base = DecodingConfig(beam_size=4, length_penalty=0.6)
    rules = {
        "exact, empty allowed (before)": base.updated(stopping="exact", allow_empty=True),
        "exact": base.updated(stopping="exact"),
        "early (the default)": base,
        "early, patience 1": base.updated(patience=1.0),
        "early, patience 2": base.updated(patience=2.0),
    }
    print(f"model: {args.model}, {len(src)} sentences of {args.src}, beam 4, α 0.6")
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}")
    print("| rule | steps | rows fed | × before | output tokens | empty | BLEU | chrF | CPU s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    before = None
    for name, options in rules.items():
        counts.update(steps=0, rows=0)
        started = time.process_time()
        hyps = translator.translate(src, options)
        seconds = time.process_time() - started
        before = before or counts["rows"]
        scores = score(hyps, ref)
        tokens = sum(len(ids) for ids in translator.tokenizer.encode_batch(hyps))
        empty = sum(not h.strip() for h in hyps)
        print(
            f"| {name} | {counts['steps']} | {counts['rows']} | {counts['rows'] / before:.2f} "
            f"| {tokens} | {empty} | {scores.bleu:.2f} | {scores.chrf:.2f} | {seconds:.1f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
