"""The paper's comparison rerun: the Transformer against recurrent models, same data, same time.

Trains the quickstart Transformer, LSTM + attention, GRU + attention and GRU without attention
on the same corpus with the same joint BPE, each for the same training-time budget, with the
same training, search and evaluation code. Then, for each model's state at the end of its
budget: parameters, training target tokens per second, steps, dev perplexity, test BLEU and
chrF with beam 4 (α 0.6). Writes a Markdown table and a plot of dev BLEU (greedy, every
budget / 5) against training time.

    .venv/bin/python benchmarks/compare_architectures.py --data data/de-en --minutes 10

Rerunning resumes: a finished model is only evaluated again.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import shutil
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

from nmt.config import Config, DecodingConfig, load_config
from nmt.data.parallel import iter_lines
from nmt.data.tokenizer import TOKENIZER_FILE, Tokenizer
from nmt.decoding.translator import Translator
from nmt.evaluation.perplexity import reference_loss
from nmt.evaluation.scoring import score
from nmt.models.build import count_parameters
from nmt.models.store import load_model_dir
from nmt.training.checkpoint import TRAINER_FILE, checkpoint_dirs
from nmt.training.metrics import METRICS_FILE, read_metrics
from nmt.training.train import load_split, train

MODELS = {
    "Transformer": "configs/quickstart.yaml",
    "LSTM + attention": "configs/lstm-attention.yaml",
    "GRU + attention": "configs/gru-attention.yaml",
    "GRU, no attention": "configs/gru-noattention.yaml",
}

# Beam 4, α 0.6 with the search that produced the README's figures: the exact stopping bound,
# empty outputs allowed (the defaults since issue 10 stop early and forbid empty outputs).
BEFORE = DecodingConfig(beam_size=4, length_penalty=0.6, stopping="exact", allow_empty=True)


def run_config(path: str, run_dir: Path, data: Path, minutes: float) -> Config:
    return load_config(
        path,
        [
            f"--data.dir={data}",
            f"--training.run_dir={run_dir}",
            f"--training.max_minutes={minutes}",
            "--training.max_steps=null",
            "--training.valid_every=1000000000",
            f"--training.valid_every_minutes={minutes / 5}",
            "--training.valid_max_sentences=300",
            "--training.progress=false",
            "--training.precision=bfloat16",  # the same arithmetic for every model
        ],
    )


def evaluate_last(config: Config, data: Path) -> dict[str, float | int]:
    """Scores of the model as it stood at the end of its budget (its last checkpoint)."""
    last = checkpoint_dirs(config.training.run_dir)[-1]
    trainer = json.loads((last / TRAINER_FILE).read_text())["trainer"]
    loaded = load_model_dir(last)
    dev = load_split(config, loaded.tokenizer, "dev", config.model.max_positions - 1)
    nll = reference_loss(
        loaded.model, dev, max_tokens=config.training.max_tokens, device=torch.device("cpu")
    ).nll
    translator = Translator(
        loaded.model, loaded.tokenizer, max_positions=config.model.max_positions
    )
    hyps = translator.translate(list(iter_lines(data / "test.en")), BEFORE)
    scores = score(hyps, list(iter_lines(data / "test.de")))
    return {
        "parameters": count_parameters(loaded.model),
        "tokens_per_second": trainer["target_tokens"] / trainer["elapsed_seconds"],
        "steps": trainer["step"],
        "dev_ppl": math.exp(nll),
        "test_bleu": scores.bleu,
        "test_chrf": scores.chrf,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data/de-en"))
    parser.add_argument("--minutes", type=float, default=10.0, help="training time per model")
    parser.add_argument("--out", type=Path, default=Path("runs/compare"))
    args = parser.parse_args()

    args.out.mkdir(parents=True, exist_ok=True)
    shared_tokenizer = args.out / TOKENIZER_FILE
    if not shared_tokenizer.is_file():
        files = [args.data / "train.en", args.data / "train.de"]
        Tokenizer.train(files, shared_tokenizer, vocab_size=8000)

    results = {}
    for name, path in MODELS.items():
        run_dir = args.out / path.split("/")[-1].removesuffix(".yaml")
        config = run_config(path, run_dir, args.data, args.minutes)
        run_dir.mkdir(parents=True, exist_ok=True)
        if not (run_dir / TOKENIZER_FILE).is_file():  # one vocabulary for all four
            shutil.copyfile(shared_tokenizer, run_dir / TOKENIZER_FILE)
        print(f"training {name} for {args.minutes} minutes → {run_dir}", flush=True)
        train(config)
        results[name] = {**evaluate_last(config, args.data), "run_dir": run_dir}
        print(f"  {name}: {results[name]}", flush=True)

    lines = [
        f"Same corpus, joint BPE (8,000), {args.minutes:g} minutes of training each (bfloat16 "
        "autocast); "
        f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}.",
        "",
        "| model | parameters | train tokens/s | steps | dev perplexity | test BLEU | test chrF |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} | {r['parameters'] / 1e6:.1f} M | {r['tokens_per_second']:,.0f} | "
            f"{r['steps']:,} | {r['dev_ppl']:.2f} | {r['test_bleu']:.2f} | {r['test_chrf']:.2f} |"
        )
    table = "\n".join(lines)
    (args.out / "comparison.md").write_text(table + "\n", encoding="utf-8")
    print(table)

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, r in results.items():
        dev = [m for m in read_metrics(Path(r["run_dir"]) / METRICS_FILE) if m["split"] == "dev"]
        ax.plot(
            [m["elapsed_seconds"] / 60 for m in dev], [m["bleu"] for m in dev], "o-", label=name
        )
    ax.set_xlabel("training time (minutes, 2-core CPU)")
    ax.set_ylabel("dev BLEU (greedy, first 300 sentences)")
    ax.set_title("Same data, same budget: Transformer vs recurrent models")
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out / "comparison.png", dpi=100)
    print(f"table: {args.out / 'comparison.md'}, plot: {args.out / 'comparison.png'}")


if __name__ == "__main__":
    main()
