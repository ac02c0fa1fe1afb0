"""The vocabulary shortlist (``--shortlist``): its speed-up and its BLEU cost, against the full
output layer, on the same model and sentences in one process.

Both translators share one loaded model; they differ only in the shortlist. For each batch size
(sentences a batch, beam 4 and the model's α by default) it prints the median seconds of the
repeats, sentences/s, the ratio, BLEU and chrF against the reference, how many outputs are
identical, and the mean shortlist size a batch. Build the shortlist first (``nmt shortlist``).

    nmt shortlist runs/quickstart/averaged
    python benchmarks/shortlist.py --model runs/quickstart/averaged --sentences 1000
    nmt shortlist /tmp/opus/shape/nmt --corpus data/de-en    # benchmarks/opus_mt_shape.py
    python benchmarks/shortlist.py --opus-mt /tmp/opus/shape --sentences 64 --length-penalty 0

With ``--opus-mt OUT`` (the OPUS-MT-shaped model of benchmarks/opus_mt_shape.py, random weights)
every output is the references' mean length, as in benchmarks/engines.py: the speed is
comparable, the BLEU means nothing (it needs a trained model).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from pathlib import Path

import sacrebleu
import torch

from nmt.data.parallel import iter_lines
from nmt.decoding.translator import Translator
from nmt.machine import describe


def timed(translator: Translator, sentences: list[str], options, repeats: int):
    seconds, outputs = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        outputs = [best[0] for best in translator.translate_nbest(sentences, options)]
        seconds.append(time.perf_counter() - start)
    return outputs, statistics.median(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path)
    parser.add_argument("--opus-mt", type=Path, metavar="OUT", help="benchmarks/opus_mt_shape.py")
    parser.add_argument("--src", type=Path, default=Path("data/de-en/test.en"))
    parser.add_argument("--ref", type=Path, default=Path("data/de-en/test.de"))
    parser.add_argument("--sentences", type=int, default=1000)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 1])
    parser.add_argument("--beam-size", type=int, default=4)
    parser.add_argument("--length-penalty", type=float, help="default: the model's")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--int8", action="store_true")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    sources = list(iter_lines(args.src))[: args.sentences]
    references = list(iter_lines(args.ref))[: len(sources)]
    changes: dict = {"beam_size": args.beam_size, "max_tokens": 10**9}
    if args.length_penalty is not None:
        changes["length_penalty"] = args.length_penalty
    if args.opus_mt is not None:
        from opus_mt_shape import mean_reference_length

        args.model = args.opus_mt / "nmt"
        changes["max_len_a"] = 0.0
        changes["max_len_b"] = mean_reference_length(args.opus_mt / "marian", references)
    if args.model is None:
        parser.error("give --model or --opus-mt")
    full = Translator.load(args.model, int8=args.int8, shortlist=False)
    listed = copy.copy(full)
    listed.shortlist = Translator.load(args.model, shortlist=True).shortlist
    print(describe())
    print(f"{args.model}: {len(sources)} sentences, beam {args.beam_size}, int8 {args.int8}")
    for batch_size in args.batch_sizes:
        options = full.default_options.updated(**changes)
        # Batches of batch_size sentences: one call per batch, as a client would send them.
        chunks = [sources[i : i + batch_size] for i in range(0, len(sources), batch_size)]
        results = {}
        for name, translator in (("full", full), ("shortlist", listed)):
            outputs, seconds, pieces = [], 0.0, 0
            for chunk in chunks:
                found, chunk_seconds = timed(translator, chunk, options, args.repeats)
                outputs += [t.text for t in found]
                pieces += sum(len(t.tokens) for t in found)  # different lengths: different work
                seconds += chunk_seconds
            bleu = sacrebleu.corpus_bleu(outputs, [references]).score
            chrf = sacrebleu.corpus_chrf(outputs, [references]).score
            results[name] = (outputs, seconds)
            print(
                f"batch {batch_size:3d} {name:9s} {seconds:7.2f} s  "
                f"{len(sources) / seconds:6.1f} sent/s  {pieces / seconds:6.1f} pieces/s  "
                f"({pieces} pieces)  BLEU {bleu:5.2f}  chrF {chrf:5.2f}"
            )
        same = sum(a == b for a, b in zip(results["full"][0], results["shortlist"][0], strict=True))
        shortlist = listed.shortlist
        assert shortlist is not None
        sizes = [  # the pieces each batch's output layer scores
            shortlist.candidates(
                torch.tensor([i for s in chunk for i in full.tokenizer.encode(s)])
            ).numel()
            for chunk in chunks
        ]
        speedup = results["full"][1] / results["shortlist"][1]
        print(
            f"batch {batch_size:3d} shortlist {speedup:.2f}x the full layer's speed, "
            f"{same}/{len(sources)} outputs identical, a batch's list: median "
            f"{statistics.median(sizes):.0f} of {full.tokenizer.vocab_size} pieces"
        )


if __name__ == "__main__":
    main()
