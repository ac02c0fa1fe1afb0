"""Chapter 2's embeddings experiment on its own: a GRU encoder–decoder with additive attention
trained for 200 updates on the English–German corpus, its source embedding initialised at random
or from skip-gram vectors (`nmt embeddings train`), dev perplexity every 50 updates.

    cd course && ../.venv/bin/python measure_embeddings.py
"""

from __future__ import annotations

import time

import kit
import torch

from nmt.embeddings.options import EmbeddingOptions
from nmt.embeddings.train import train_embeddings
from nmt.training.metrics import METRICS_FILE, read_metrics


def main() -> None:
    torch.set_num_threads(1)
    work = kit.ROOT / "runs" / "course" / "embeddings-effect"
    work.mkdir(parents=True, exist_ok=True)
    data = kit.real_corpus()
    vectors = work / "en.skipgram.txt"
    options = EmbeddingOptions(method="skipgram", dim=128, epochs=3)
    print(train_embeddings([data / "train.en"], vectors, options), flush=True)
    gru = {"arch": "rnn", "cell": "gru", "attention": "additive", "embed_dim": 128}
    gru |= {"hidden_size": 128, "share_embeddings": False, "dropout": 0.2}
    for name, extra in (("random-init", {}), ("skip-gram-init", {"src_vectors": str(vectors)})):
        started = time.time()
        model_dir = kit.train_model(
            work / name,
            data,
            gru | extra,
            steps=200,
            vocab_size=8000,
            max_tokens=1500,
            training={"valid_every": 50, "valid_max_sentences": 20},
            tokenizer_from=None if name == "random-init" else work / "random-init",
        )
        curve = [r for r in read_metrics(model_dir.parent / METRICS_FILE) if r["split"] == "dev"]
        points = " ".join(f"{r['step']}: {r['ppl']:.1f}" for r in curve)
        print(
            f"{name}, {time.time() - started:.0f} s; dev perplexity by update {points}", flush=True
        )


if __name__ == "__main__":
    main()
