"""Training speed and memory: nmt against fairseq, the quickstart's shape, data and schedule.

fairseq is not one of nmt's dependencies: install it in a virtual environment of its own (it
pins old libraries), with the same torch, and point ``--fairseq`` at its ``bin`` folder:

    python3 -m venv /tmp/fsvenv && /tmp/fsvenv/bin/pip install torch==2.13.0 cython numpy \\
        setuptools wheel && /tmp/fsvenv/bin/pip install --no-build-isolation fairseq-fixed==0.12.3.1
    .venv/bin/python benchmarks/train_fairseq.py --fairseq /tmp/fsvenv/bin --updates 200

One run does, in order: ``nmt data prepare`` (the quickstart's joint SentencePiece model and
encoded data); the same training pairs, cut into those pieces and filtered to 100 pieces a side
as nmt filters them, through ``fairseq-preprocess`` (joined dictionary); then, ``--rounds``
times, ``fairseq-train`` and ``nmt train`` for ``--updates`` updates each, alternating. Both
train the quickstart's model (3 + 3 pre-LN layers, d_model 256, d_ff 1024, 4 heads, all
embeddings shared, dropout 0.1), label smoothing 0.1, Adam (0.9, 0.98, 1e-9), inverse-square-root
warm-up of 300 updates to 3e-3, 3,000 tokens a batch, seed 1, two threads; no validation, no
checkpoints. fairseq in float32 (its CPU path), nmt in the quickstart's precision, bfloat16
autocast (``--nmt-precision float32`` for the other).

Printed per run: the median of the logged target tokens/s over the runs' 25-update intervals,
leaving out the first (warm-up; fairseq's ``wps`` is wall-clock over the interval, data loading
included; nmt's ``tokens_per_second`` counts the update steps' own time, its batch assembly
excluded), the process's peak resident memory (``wait4``'s ``ru_maxrss``) and its wall time;
then the ratio nmt / fairseq of the medians over rounds. The machine and its float32 matmul speed
come first.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import sentencepiece as spm

from nmt.machine import describe

MAX_LEN = 100  # the quickstart's data.max_len
NMT = str(Path(sys.executable).parent / "nmt")  # the CLI of the environment running this


def run(command: list[str], log: Path, env: dict[str, str]) -> tuple[float, float]:
    """Run ``command`` with its output in ``log``; (peak resident MiB, wall seconds)."""
    started = time.perf_counter()
    with log.open("w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{command[0]} failed; its output: {log}")
    return usage.ru_maxrss / 1024, time.perf_counter() - started


def write_pieces(sp: spm.SentencePieceProcessor, data: Path, out: Path, split: str) -> int:
    """``split``'s pairs as space-separated pieces, pairs over MAX_LEN pieces a side left out."""
    src = (data / f"{split}.en").read_text(encoding="utf-8").splitlines()
    tgt = (data / f"{split}.de").read_text(encoding="utf-8").splitlines()
    kept = 0
    with (out / f"{split}.en").open("w") as src_out, (out / f"{split}.de").open("w") as tgt_out:
        for s, t in zip(sp.Encode(src, out_type=str), sp.Encode(tgt, out_type=str), strict=True):
            if 0 < len(s) <= MAX_LEN and 0 < len(t) <= MAX_LEN:
                src_out.write(" ".join(s) + "\n")
                tgt_out.write(" ".join(t) + "\n")
                kept += 1
    return kept


def fairseq_command(bin_dir: Path, data_bin: Path, updates: int) -> list[str]:
    return [
        str(bin_dir / "fairseq-train"), str(data_bin), "--cpu", "--seed", "1",
        "--arch", "transformer", "--share-all-embeddings",
        "--encoder-layers", "3", "--decoder-layers", "3",
        "--encoder-embed-dim", "256", "--decoder-embed-dim", "256",
        "--encoder-ffn-embed-dim", "1024", "--decoder-ffn-embed-dim", "1024",
        "--encoder-attention-heads", "4", "--decoder-attention-heads", "4",
        "--encoder-normalize-before", "--decoder-normalize-before", "--dropout", "0.1",
        "--criterion", "label_smoothed_cross_entropy", "--label-smoothing", "0.1",
        "--optimizer", "adam", "--adam-betas", "(0.9, 0.98)", "--adam-eps", "1e-9",
        "--lr", "3e-3", "--lr-scheduler", "inverse_sqrt", "--warmup-updates", "300",
        "--max-tokens", "3000", "--max-update", str(updates), "--num-workers", "0",
        "--no-save", "--disable-validation", "--log-format", "json", "--log-interval", "25",
    ]  # fmt: skip


def nmt_command(data: Path, run_dir: Path, updates: int, precision: str) -> list[str]:
    return [
        NMT, "train", "configs/quickstart.yaml",
        f"--data.dir={data}", f"--training.run_dir={run_dir}",
        f"--training.max_steps={updates}", f"--training.precision={precision}",
        "--training.valid_every=1000000", f"--training.save_every={updates}",
        "--training.progress=false",
    ]  # fmt: skip


def fairseq_rates(log: Path) -> list[float]:
    rates = []
    for line in log.read_text().splitlines():
        start = line.find("{")
        if start < 0 or "train_inner" not in line:  # the 25-update lines, not epoch summaries
            continue
        try:
            record = json.loads(line[start:])
        except json.JSONDecodeError:
            continue
        if "wps" in record:
            rates.append(float(record["wps"]))
    return rates[1:]  # the first interval holds the warm-up


def nmt_rates(run_dir: Path) -> list[float]:
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r["tokens_per_second"] for r in records if r.get("split") == "train"][1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fairseq", type=Path, required=True, help="bin folder of fairseq-train")
    parser.add_argument("--data", type=Path, default=Path("data/de-en"))
    parser.add_argument("--updates", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--nmt-precision", choices=["bfloat16", "float32"], default="bfloat16")
    parser.add_argument("--work", type=Path, help="keep the runs here (default: a temporary dir)")
    args = parser.parse_args()
    for tool in ("fairseq-train", "fairseq-preprocess"):
        if not (args.fairseq / tool).is_file():
            sys.exit(f"{args.fairseq / tool}: not found (see this script's docstring)")

    work = args.work or Path(tempfile.mkdtemp(prefix="nmt-fairseq-"))
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    print(describe())
    prepared = work / "prepared"
    subprocess.run(
        [NMT, "data", "prepare", "configs/quickstart.yaml",
         f"--data.dir={args.data}", f"--training.run_dir={prepared}"],
        check=True, env=env, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    sp = spm.SentencePieceProcessor(model_file=str(prepared / "tokenizer.model"))
    pieces = work / "pieces"
    pieces.mkdir(exist_ok=True)
    kept = {split: write_pieces(sp, args.data, pieces, split) for split in ("train", "dev")}
    data_bin = work / "fairseq-bin"
    if not data_bin.is_dir():
        subprocess.run(
            [str(args.fairseq / "fairseq-preprocess"), "--source-lang", "en", "--target-lang",
             "de", "--trainpref", str(pieces / "train"), "--validpref", str(pieces / "dev"),
             "--destdir", str(data_bin), "--joined-dictionary", "--workers", str(args.threads)],
            check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
    print(f"training pairs: {kept['train']:,} (≤ {MAX_LEN} pieces a side); {args.updates} "
          f"updates each, {args.rounds} round(s), {args.threads} threads")  # fmt: skip

    medians: dict[str, list[float]] = {"fairseq": [], "nmt": []}
    for round_ in range(args.rounds):
        for name in ("fairseq", "nmt"):
            log = work / f"{name}-{round_}.log"
            run_dir = work / f"nmt-run-{round_}"
            if name == "fairseq":
                command = fairseq_command(args.fairseq, data_bin, args.updates)
            else:
                shutil.rmtree(run_dir, ignore_errors=True)
                run_dir.mkdir(parents=True)
                for file in ("tokenizer.model", "tokenizer.data.json"):
                    shutil.copy(prepared / file, run_dir / file)
                command = nmt_command(args.data, run_dir, args.updates, args.nmt_precision)
            peak, seconds = run(command, log, env)
            rates = fairseq_rates(log) if name == "fairseq" else nmt_rates(run_dir)
            if not rates:
                sys.exit(f"{name}: no throughput logged; its output: {log}")
            medians[name].append(statistics.median(rates))
            precision = "float32" if name == "fairseq" else args.nmt_precision
            print(
                f"round {round_ + 1} {name:8s} {precision:8s} {medians[name][-1]:7.0f} target "
                f"tokens/s (median of {len(rates)} intervals)  peak RSS {peak:6.0f} MiB  "
                f"wall {seconds:5.0f} s"
            )
    ratio = statistics.median(medians["nmt"]) / statistics.median(medians["fairseq"])
    print(f"nmt / fairseq target tokens/s: {ratio:.2f}x (runs in {work})")


if __name__ == "__main__":
    main()
