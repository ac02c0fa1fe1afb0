"""How many checkpoints to average: dev scores of the mean of the last k, along a run.

For each end point E and window k, averages the checkpoints of steps E, E - stride, ...,
E - (k - 1)·stride and scores the mean on the dev set: the perplexity of the references
(teacher-forced) and sacreBLEU / chrF of beam-4 translations. k = 1 is the single checkpoint
that `nmt average` has to match. The run must have kept enough checkpoints, for example:

    .venv/bin/nmt train configs/quickstart.yaml --training.max_minutes=18 \\
        --training.keep_last=60 --training.run_dir=runs/windows
    .venv/bin/python benchmarks/averaging_windows.py runs/windows --data data/de-en \\
        --stride 25 --windows 1 5 10 20 --ends 1200 1250 1300 1350 1400 1450 1500
"""

from __future__ import annotations

import argparse
import platform
import statistics
from pathlib import Path

import torch

from nmt.config import DecodingConfig, load_config
from nmt.data.dataset import encode_parallel
from nmt.data.parallel import iter_lines
from nmt.data.tokenizer import TOKENIZER_FILE, Tokenizer
from nmt.decoding.translator import Translator
from nmt.evaluation.perplexity import reference_loss
from nmt.evaluation.scoring import score
from nmt.models.build import build_model
from nmt.models.store import CONFIG_FILE
from nmt.training.average import load_mean, mean_weights
from nmt.training.checkpoint import checkpoint_dirs

# Beam 4, α 0.6 with the search that produced the README's figures: the exact stopping bound,
# empty outputs allowed (the defaults since issue 10 stop early and forbid empty outputs).
BEFORE = DecodingConfig(beam_size=4, length_penalty=0.6, stopping="exact", allow_empty=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--data", type=Path, default=Path("data/de-en"))
    parser.add_argument("--stride", type=int, default=25, help="updates between checkpoints")
    parser.add_argument("--windows", type=int, nargs="+", default=[1, 5, 10, 20])
    parser.add_argument("--ends", type=int, nargs="+", help="end steps (default: the newest)")
    args = parser.parse_args()

    by_step = {int(p.name.split("-")[1]): p for p in checkpoint_dirs(args.run_dir)}
    if not by_step:
        raise SystemExit(f"{args.run_dir}: no checkpoints")
    newest = by_step[max(by_step)]
    config = load_config(newest / CONFIG_FILE)
    tokenizer = Tokenizer.load(newest / TOKENIZER_FILE)
    model = build_model(config.model, tokenizer.vocab_size).eval()
    translator = Translator(model, tokenizer, max_positions=config.model.max_positions)
    src, ref = args.data / "dev.en", args.data / "dev.de"
    dev = encode_parallel(tokenizer, src, ref, max_len=config.model.max_positions - 1)
    src_lines, ref_lines = list(iter_lines(src)), list(iter_lines(ref))

    print(
        f"{args.run_dir}, dev set of {len(src_lines)} sentences, beam 4, α 0.6; "
        f"{platform.machine()}, torch {torch.__version__}"
    )
    print("| end step | k | steps averaged | dev perplexity | dev BLEU | dev chrF |")
    print("|---:|---:|---|---:|---:|---:|")
    results: dict[tuple[int, int], tuple[float, float, float]] = {}
    for end in args.ends or [max(by_step)]:
        for k in args.windows:
            steps = [end - i * args.stride for i in range(k)]
            missing = [s for s in steps if s not in by_step]
            if missing:
                raise SystemExit(f"{args.run_dir}: no checkpoint for steps {missing}")
            load_mean(model, mean_weights([by_step[s] for s in reversed(steps)]))
            perplexity = reference_loss(
                model, dev, max_tokens=config.decoding.max_tokens, device=torch.device("cpu")
            ).perplexity
            hyps = translator.translate(src_lines, BEFORE)
            scores = score(hyps, ref_lines)
            results[end, k] = (perplexity, scores.bleu, scores.chrf)
            print(
                f"| {end} | {k} | {steps[-1]}–{end} | {perplexity:.2f} | {scores.bleu:.2f} | "
                f"{scores.chrf:.2f} |",
                flush=True,
            )

    ends = sorted({end for end, _ in results})
    print("\nagainst the single checkpoint (k = 1) at each end step:")
    for k in args.windows:
        if k == 1 or 1 not in args.windows:
            continue
        pairs = [(results[e, k], results[e, 1]) for e in ends]
        print(
            f"  k = {k}: lower perplexity at {sum(m[0] < s[0] for m, s in pairs)}/{len(ends)}, "
            f"BLEU at least as high at {sum(m[1] >= s[1] for m, s in pairs)}/{len(ends)}, "
            f"chrF at {sum(m[2] >= s[2] for m, s in pairs)}/{len(ends)}; "
            f"mean BLEU {statistics.mean(m[1] for m, _ in pairs):.2f} against "
            f"{statistics.mean(s[1] for _, s in pairs):.2f}"
        )


if __name__ == "__main__":
    main()
