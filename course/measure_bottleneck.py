"""Chapter 4's bottleneck experiment run longer than the chapter can afford: 1,000 updates per
model instead of 600, the same toy reversal task, models and scoring, by the same nmt calls.

    cd course && ../.venv/bin/python measure_bottleneck.py

Prints test BLEU (greedy) per source-length bucket for a GRU with a fixed context vector and
a GRU with additive attention (Bahdanau et al. 2015, Figure 2, at a CPU's scale).
"""

from __future__ import annotations

import itertools
import time
from collections import defaultdict

import kit
import torch

from nmt.config import DecodingConfig
from nmt.data.parallel import iter_lines
from nmt.decoding.translator import Translator
from nmt.evaluation.scoring import score

STEPS = 1000


def main() -> None:
    torch.set_num_threads(1)
    work = kit.ROOT / "runs" / "course" / f"bottleneck-{STEPS}"
    work.mkdir(parents=True, exist_ok=True)
    reverse = kit.toy_corpus(
        work / "reverse",
        sizes={"train": 6000, "dev": 30, "test": 600},
        lengths=(2, 30),
        reverse=True,
        seed=4,
    )
    gru = {"arch": "rnn", "cell": "gru", "dropout": 0.0, "share_embeddings": True}
    gru |= {"embed_dim": 64, "hidden_size": 128}
    sources = list(iter_lines(reverse / "test.en"))
    references = list(iter_lines(reverse / "test.de"))
    buckets = list(itertools.pairwise([2, 6, 10, 14, 18, 22, 26, 31]))
    greedy = DecodingConfig(beam_size=1, max_len_a=1.0, max_len_b=2)
    for attention in ("none", "additive"):
        started = time.time()
        model_dir = kit.train_model(
            work / f"gru-{attention}",
            reverse,
            gru | {"attention": attention},
            steps=STEPS,
            vocab_size=150,
            max_tokens=1500,
            peak_lr=3e-3,
            warmup=50,
        )
        hyps = Translator.load(model_dir).translate(sources, greedy)
        by_bucket: dict[int, tuple[list[str], list[str]]] = defaultdict(lambda: ([], []))
        for src, hyp, ref in zip(sources, hyps, references, strict=True):
            for low, high in buckets:
                if low <= len(src.split()) < high:
                    by_bucket[low][0].append(hyp)
                    by_bucket[low][1].append(ref)
        bleu = {f"{low}-{high - 1}": round(score(*by_bucket[low]).bleu, 1) for low, high in buckets}
        print(
            f"attention {attention}, {STEPS} updates, {time.time() - started:.0f} s: "
            f"BLEU by source length {bleu}, all {score(hyps, references).bleu:.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
