"""`make gpu-check`: train, kill, resume, translate and score on a GPU machine, in under 5 minutes.

For each of bfloat16 and float16, under ``torchrun --nproc-per-node=1`` (and 2 when the machine
has two GPUs): train the quickstart Transformer for its share of ``--minutes`` of training time,
SIGKILL the whole job once after its first checkpoint, resume it to the end of its budget,
translate the test set with the last checkpoint (beam 4), and print target tokens per second
and test BLEU. Any failure (a crash, a resume that repeats or skips updates, no BLEU) exits
non-zero.

    .venv/bin/nmt data fetch de-en --dir data/de-en     # the corpus, once
    .venv/bin/python scripts/gpu_check.py               # needs CUDA

``--dry-run`` does everything but CUDA, on the CPU with gloo, float32 and bfloat16, a tiny
model and seconds of training: the test suite runs it on a toy corpus.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from nmt.cli import main as nmt_main
from nmt.config import load_config
from nmt.data.parallel import iter_lines
from nmt.data.tokenizer import TOKENIZER_FILE, Tokenizer
from nmt.evaluation.scoring import score

QUICKSTART = Path(__file__).resolve().parent.parent / "configs" / "quickstart.yaml"
# A model small enough to train for a few seconds on a CPU (the dry run's).
TINY_MODEL = [
    "--model.num_layers=1",
    "--model.d_model=32",
    "--model.d_ff=64",
    "--model.num_heads=2",
]


@dataclass
class Run:
    processes: int
    precision: str

    @property
    def name(self) -> str:
        return f"{self.processes}proc-{self.precision}"


@dataclass
class Outcome:
    updates: int
    skipped: int
    tokens_per_second: float
    bleu: float
    chrf: float
    seconds: float


def fail(message: str) -> None:
    print(f"gpu-check: FAILED: {message}", file=sys.stderr)
    sys.exit(1)


def train_command(run: Run, run_dir: Path, args: argparse.Namespace, budget_s: float) -> list[str]:
    device = "cpu" if args.dry_run else "cuda"
    settings = [
        f"--data.dir={args.data}",
        f"--training.run_dir={run_dir}",
        f"--training.device={device}",
        f"--training.precision={run.precision}",
        f"--training.max_minutes={budget_s / 60}",
        "--training.max_steps=null",
        # Checkpoints every third of the budget: the kill comes after the first one.
        "--training.save_every=null",
        f"--training.save_every_minutes={budget_s / 3 / 60}",
        "--training.valid_every=1000000",
        "--training.valid_max_sentences=100",
        "--training.log_every=1",
        "--training.progress=false",
    ]
    if args.dry_run:
        settings += [
            *TINY_MODEL,
            f"--data.vocab_size={args.vocab_size}",
            "--training.max_tokens=400",
        ]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    return [
        *torchrun,
        f"--nproc-per-node={run.processes}",
        "-m",
        "nmt.cli",
        "train",
        str(QUICKSTART),
        *settings,
    ]


def checkpoints(run_dir: Path) -> list[Path]:
    root = run_dir / "checkpoints"
    return sorted(root.glob("step-*")) if root.is_dir() else []


def environment(args: argparse.Namespace) -> dict[str, str]:
    # Dry run: one thread per process, two processes share the CPU.
    return {**os.environ, "OMP_NUM_THREADS": "1"} if args.dry_run else dict(os.environ)


def descendants(pid: int) -> list[int]:
    """The processes below ``pid`` (children, their children, ...), read from /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # ended meanwhile
        children.setdefault(parent, []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        below = children.get(todo.pop(), [])
        found += below
        todo += below
    return found


def wait_until_gone(pids: list[int], timeout_s: float = 30.0) -> None:
    """Until none of ``pids`` runs any more (a zombie no longer runs)."""
    deadline = time.monotonic() + timeout_s
    for pid in pids:
        stat = Path(f"/proc/{pid}/stat")
        while time.monotonic() < deadline:
            try:
                if stat.read_text().rsplit(")", 1)[1].split()[0] == "Z":
                    break
            except (OSError, IndexError):
                break
            time.sleep(0.05)


def train_killed_once(run: Run, run_dir: Path, args: argparse.Namespace, budget_s: float) -> None:
    """Start the job, SIGKILL it (torchrun and every rank) after its first checkpoint, resume."""
    command = train_command(run, run_dir, args, budget_s)
    log = (run_dir.parent / f"{run.name}.log").open("w")
    job = subprocess.Popen(
        command, env=environment(args), stdout=log, stderr=log, start_new_session=True
    )
    deadline = time.monotonic() + budget_s + 120
    while not checkpoints(run_dir) and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    if job.poll() is not None:
        fail(
            f"{run.name}: training ended (status {job.returncode}) before it could be killed; "
            f"see {log.name}"
        )
    # A crashed node: no checkpoint on the way out. torchrun starts each rank in a session of
    # its own, so killing torchrun's process group would leave the ranks training on.
    ranks = descendants(job.pid)
    os.killpg(job.pid, signal.SIGKILL)
    for pid in ranks:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    job.wait()
    wait_until_gone(ranks)
    killed_at = checkpoints(run_dir)[-1].name
    print(f"  {run.name}: killed after {killed_at}, resuming", flush=True)
    resumed = subprocess.run(command, env=environment(args), stdout=log, stderr=log)
    if resumed.returncode != 0:
        fail(f"{run.name}: the resumed run failed (status {resumed.returncode}); see {log.name}")


def check_updates(run: Run, run_dir: Path) -> dict:
    """The last checkpoint's trainer state, after checking the metrics: every update once."""
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").open()]
    steps = [record["step"] for record in records if record["split"] == "train"]
    if steps != list(range(1, len(steps) + 1)):
        fail(f"{run.name}: after the resume the logged updates are not 1..N once each")
    trainer = json.loads((checkpoints(run_dir)[-1] / "trainer.json").read_text())["trainer"]
    if trainer["step"] != steps[-1]:
        fail(f"{run.name}: last checkpoint at step {trainer['step']}, last update {steps[-1]}")
    return trainer


def translate_and_score(run: Run, run_dir: Path, args: argparse.Namespace) -> tuple[float, float]:
    model_dir = checkpoints(run_dir)[-1]
    hyp = run_dir / "test.hyp"
    device = "cpu" if args.dry_run else "cuda"
    # `nmt translate`, in this process: the model's own decoding settings (beam 4).
    command = ["translate", str(model_dir), "-q", "-i", str(args.data / "test.en")]
    if nmt_main([*command, "-o", str(hyp), "--device", device]) != 0:
        fail(f"{run.name}: translating the test set failed")
    scores = score(list(iter_lines(hyp)), list(iter_lines(args.data / "test.de")))
    return scores.bleu, scores.chrf


def check(run: Run, tokenizer: Path, args: argparse.Namespace, budget_s: float) -> Outcome:
    started = time.monotonic()
    run_dir = args.work / run.name
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    shutil.copyfile(tokenizer, run_dir / TOKENIZER_FILE)  # one BPE model for every run
    train_killed_once(run, run_dir, args, budget_s)
    trainer = check_updates(run, run_dir)
    bleu, chrf = translate_and_score(run, run_dir, args)
    return Outcome(
        updates=trainer["step"],
        skipped=trainer.get("skipped_updates", 0),
        tokens_per_second=trainer["target_tokens"] / max(trainer["elapsed_seconds"], 1e-9),
        bleu=bleu,
        chrf=chrf,
        seconds=time.monotonic() - started,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--data", type=Path, default=Path("data/de-en"), help="corpus folder")
    parser.add_argument("--work", type=Path, default=Path("runs/gpu-check"), help="run folders")
    parser.add_argument(
        "--minutes", type=float, default=2.0, help="training time, shared by all runs"
    )
    parser.add_argument("--dry-run", action="store_true", help="CPU, gloo, tiny model")
    parser.add_argument("--vocab-size", type=int, default=60, help="dry run's BPE vocabulary")
    args = parser.parse_args(argv)

    if not (args.data / "train.en").is_file():
        fail(f"{args.data}/train.en not found; run: nmt data fetch de-en --dir {args.data}")
    if args.dry_run:
        gpus, card = 2, "CPU (dry run: gloo, no CUDA)"
        runs = [Run(1, "float32"), Run(2, "bfloat16")]
    else:
        if not torch.cuda.is_available():
            fail("no CUDA device; `--dry-run` checks everything else on the CPU")
        gpus, card = torch.cuda.device_count(), torch.cuda.get_device_name(0)
        runs = [Run(n, p) for n in (1, 2) if n <= gpus for p in ("bfloat16", "float16")]
    budget_s = args.minutes * 60 / len(runs)
    print(
        f"gpu-check on {card} ({gpus} device(s)), torch {torch.__version__}: {len(runs)} runs "
        f"of {budget_s:.0f} s of training each",
        flush=True,
    )

    args.work.mkdir(parents=True, exist_ok=True)
    tokenizer = args.work / TOKENIZER_FILE
    if not tokenizer.is_file():
        vocab_size = args.vocab_size if args.dry_run else load_config(QUICKSTART).data.vocab_size
        files = [args.data / "train.en", args.data / "train.de"]
        Tokenizer.train(files, tokenizer, vocab_size=vocab_size)

    started = time.monotonic()
    outcomes = {run.name: check(run, tokenizer, args, budget_s) for run in runs}
    print()
    print(
        f"{'run':<18} {'updates':>8} {'skipped':>8} {'target tok/s':>13} {'test BLEU':>10} "
        f"{'chrF':>6} {'wall s':>7}"
    )
    for name, o in outcomes.items():
        print(
            f"{name:<18} {o.updates:>8} {o.skipped:>8} {o.tokens_per_second:>13,.0f} "
            f"{o.bleu:>10.2f} {o.chrf:>6.2f} {o.seconds:>7.0f}"
        )
    print(
        f"\ngpu-check passed in {time.monotonic() - started:.0f} s: every run was killed, "
        "resumed without repeating or skipping an update, and translated the test set."
    )


if __name__ == "__main__":
    main()
