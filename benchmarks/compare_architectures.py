"""The paper's comparison rerun: the Transformer against recurrent models, same data, same time.

Trains the quickstart Transformer, LSTM + attention, GRU + attention, GRU without attention and,
for the seed's teacher forcing, the quickstart Transformer with scheduled sampling, on the same
corpus with the same joint BPE, each for the same training-time budget, with the same training,
search and evaluation code. Each model is then judged as `make demo` judges one: the mean of its
last 10 checkpoints (saved every 25 updates, for every model alike), dev perplexity, dev BLEU
and test BLEU and chrF with beam 4 (α 0.6), and sacreBLEU's paired bootstrap of every model
against the Transformer on the test set. Writes a Markdown table, each model's test
translations, the paired tests, and a plot of dev perplexity and dev BLEU (greedy, every
budget / 5) against training time.

    .venv/bin/python benchmarks/compare_architectures.py --data data/de-en --minutes 30

Training runs first for every chosen model (``--models``), then the evaluation: the timed runs
never share the CPU with a search. Rerunning resumes: a finished model is only evaluated again.
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
from nmt.data.splits import load_split
from nmt.data.tokenizer import TOKENIZER_FILE, Tokenizer
from nmt.decoding.translator import Translator
from nmt.durable import write_file_atomically
from nmt.evaluation.perplexity import reference_loss
from nmt.evaluation.scoring import comparison_report, paired_bootstrap, score
from nmt.machine import describe
from nmt.models.build import count_parameters
from nmt.models.store import TRAINER_FILE, load_model_dir
from nmt.training.average import average_checkpoints
from nmt.training.checkpoint import checkpoint_dirs
from nmt.training.metrics import METRICS_FILE, read_metrics
from nmt.training.train import train


class Model:
    """One contestant: a shipped config and the overrides that make it this model."""

    def __init__(self, name: str, config: str, *overrides: str, slug: str | None = None) -> None:
        self.name, self.config, self.overrides = name, config, list(overrides)
        self.slug = slug or config.split("/")[-1].removesuffix(".yaml")


MODELS = [
    Model("Transformer", "configs/quickstart.yaml"),
    Model("GRU + attention", "configs/gru-attention.yaml"),
    Model("GRU, no attention", "configs/gru-noattention.yaml"),
    # The seed's teacher forcing (issue 15): the same Transformer, fed its own argmax for a
    # growing share of the target positions (two-pass scheduled sampling), down to a quarter.
    Model(
        "Transformer, scheduled sampling",
        "configs/quickstart.yaml",
        "--training.teacher_forcing_schedule=linear",
        "--training.teacher_forcing_min=0.75",
        "--training.teacher_forcing_decay_steps=1500",
        slug="quickstart-scheduled-sampling",
    ),
    Model("LSTM + attention", "configs/lstm-attention.yaml"),
]
BASELINE = "Transformer"  # every other model is tested against it
AVERAGE_LAST = 10
SEARCH = DecodingConfig(beam_size=4, length_penalty=0.6)  # the same search for every model


def run_config(model: Model, run_dir: Path, data: Path, minutes: float) -> Config:
    return load_config(
        model.config,
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
            "--training.save_every=25",  # the same averaging window for every model
            f"--training.keep_last={AVERAGE_LAST}",
            *model.overrides,
        ],
    )


def evaluate_averaged(config: Config, data: Path, hyp_path: Path) -> dict[str, float | int]:
    """Scores of the mean of the run's last checkpoints; its test translations to ``hyp_path``."""
    run_dir = config.training.run_dir
    last = checkpoint_dirs(run_dir)[-1]
    trainer = json.loads((last / TRAINER_FILE).read_text())["trainer"]
    averaged = run_dir / "averaged"
    average_checkpoints(run_dir, last=AVERAGE_LAST, out_dir=averaged)
    loaded = load_model_dir(averaged)
    dev = load_split(config, loaded.tokenizer, "dev")
    nll = reference_loss(
        loaded.model, dev, max_tokens=config.training.max_tokens, device=torch.device("cpu")
    ).nll
    translator = Translator(
        loaded.model, loaded.tokenizer, max_positions=config.model.max_positions
    )
    dev_hyps = translator.translate(list(iter_lines(data / "dev.en")), SEARCH)
    dev_scores = score(dev_hyps, list(iter_lines(data / "dev.de")))
    hyps = translator.translate(list(iter_lines(data / "test.en")), SEARCH)

    def write_hyps(tmp: Path) -> None:
        tmp.write_text("".join(h + "\n" for h in hyps), encoding="utf-8")

    write_file_atomically(hyp_path, write_hyps)
    scores = score(hyps, list(iter_lines(data / "test.de")))
    return {
        "parameters": count_parameters(loaded.model),
        "tokens_per_second": trainer["target_tokens"] / trainer["elapsed_seconds"],
        "steps": trainer["step"],
        "dev_ppl": math.exp(nll),
        "dev_bleu": dev_scores.bleu,
        "test_bleu": scores.bleu,
        "test_chrf": scores.chrf,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data/de-en"))
    parser.add_argument("--minutes", type=float, default=10.0, help="training time per model")
    parser.add_argument("--out", type=Path, default=Path("runs/compare"))
    parser.add_argument(
        "--models",
        nargs="+",
        choices=[m.slug for m in MODELS],
        default=[m.slug for m in MODELS],
        help="which models (the Transformer is always trained: the others are tested against it)",
    )
    parser.add_argument("--train-only", action="store_true", help="train; evaluate later")
    args = parser.parse_args()
    chosen = [m for m in MODELS if m.slug in args.models or m.name == BASELINE]

    args.out.mkdir(parents=True, exist_ok=True)
    shared_tokenizer = args.out / TOKENIZER_FILE
    if not shared_tokenizer.is_file():
        files = [args.data / "train.en", args.data / "train.de"]
        Tokenizer.train(files, shared_tokenizer, vocab_size=8000)

    machine = describe()
    print(f"machine: {machine}", flush=True)
    configs = {}
    for model in chosen:
        run_dir = args.out / model.slug
        configs[model.name] = config = run_config(model, run_dir, args.data, args.minutes)
        run_dir.mkdir(parents=True, exist_ok=True)
        if not (run_dir / TOKENIZER_FILE).is_file():  # one vocabulary for all
            shutil.copyfile(shared_tokenizer, run_dir / TOKENIZER_FILE)
        print(f"training {model.name} for {args.minutes:g} minutes → {run_dir}", flush=True)
        train(config)
    if args.train_only:
        return

    results, hyps = {}, {}
    for model in chosen:
        hyp_path = args.out / f"{model.slug}.test.hyp.de"
        results[model.name] = evaluate_averaged(configs[model.name], args.data, hyp_path)
        hyps[model.name] = list(iter_lines(hyp_path))
        print(f"  {model.name}: {results[model.name]}", flush=True)

    refs = list(iter_lines(args.data / "test.de"))
    reports, paired = [], {}
    for name in results:
        if name == BASELINE:
            continue
        paired[name] = {
            c.metric.rstrip("0123456789"): c  # chrF2: chrF with β = 2
            for c in paired_bootstrap(hyps[name], hyps[BASELINE], refs)
        }
        reports.append(
            comparison_report(list(paired[name].values()), system=name, baseline=BASELINE)
        )
    (args.out / "paired.txt").write_text("\n\n".join(reports) + "\n", encoding="utf-8")

    def against_baseline(name: str, metric: str) -> str:
        if name not in paired:
            return "(baseline)"
        c = paired[name][metric]
        return f"{c.difference:+.2f} (p = {c.p_value:.3f})"

    lines = [
        f"Same corpus, joint BPE (8,000), {args.minutes:g} minutes of training each (bfloat16 "
        f"autocast), the mean of the last {AVERAGE_LAST} checkpoints (every 25 updates), beam 4, "
        f"α 0.6; {platform.machine()}: {machine}.",
        "",
        "| model | parameters | train tokens/s | updates | dev perplexity | dev BLEU "
        "| test BLEU (95 % CI) | test chrF (95 % CI) | BLEU vs Transformer | chrF vs Transformer |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        base = paired.get(name)
        bleu_ci = f" ± {base['BLEU'].system.half_width:.2f}" if base else ""
        chrf_ci = f" ± {base['chrF'].system.half_width:.2f}" if base else ""
        lines.append(
            f"| {name} | {r['parameters'] / 1e6:.1f} M | {r['tokens_per_second']:,.0f} | "
            f"{r['steps']:,} | {r['dev_ppl']:.2f} | {r['dev_bleu']:.2f} | "
            f"{r['test_bleu']:.2f}{bleu_ci} | "
            f"{r['test_chrf']:.2f}{chrf_ci} | {against_baseline(name, 'BLEU')} | "
            f"{against_baseline(name, 'chrF')} |"
        )
    if paired:  # the baseline's own interval, from any of its pairings
        some = next(iter(paired.values()))
        lines += [
            "",
            f"Transformer's bootstrap intervals: BLEU ± {some['BLEU'].baseline.half_width:.2f}, "
            f"chrF ± {some['chrF'].baseline.half_width:.2f}. p: sacreBLEU's paired bootstrap "
            "(1,000 resamples), two-sided; the full reports are in paired.txt.",
        ]
    table = "\n".join(lines)
    (args.out / "comparison.md").write_text(table + "\n", encoding="utf-8")
    print(table)
    print("\n\n".join(reports))

    fig, (ppl_ax, bleu_ax) = plt.subplots(1, 2, figsize=(11, 4.5))
    for name in results:
        run_dir = configs[name].training.run_dir
        dev = [m for m in read_metrics(run_dir / METRICS_FILE) if m["split"] == "dev"]
        minutes = [m["elapsed_seconds"] / 60 for m in dev]
        ppl_ax.plot(minutes, [m["ppl"] for m in dev], "o-", label=name)
        bleu_ax.plot(minutes, [m["bleu"] for m in dev], "o-", label=name)
    ppl_ax.set_yscale("log")
    ppl_ax.set_ylabel("dev perplexity (one checkpoint)")
    bleu_ax.set_ylabel("dev BLEU (greedy, first 300 sentences)")
    for ax in (ppl_ax, bleu_ax):
        ax.set_xlabel("training time (minutes, 2-core CPU)")
    bleu_ax.legend()
    fig.suptitle("Same data, same budget: Transformer vs recurrent models")
    fig.tight_layout()
    write_file_atomically(args.out / "comparison.png", lambda tmp: fig.savefig(tmp, dpi=100))
    print(f"table: {args.out / 'comparison.md'}, plot: {args.out / 'comparison.png'}")


if __name__ == "__main__":
    main()
