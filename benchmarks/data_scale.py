"""Data at the paper's scale: a 4.5 M-pair corpus (the real one repeated), encoded once, mapped.

Builds ``WORK/data`` = the corpus's training pairs repeated ``--repeat`` times (57 × 79k ≈ WMT'14
en-de's 4.5 M), then measures with the quickstart config and a given tokenizer:

- a fresh start (no encoded cache): seconds from launching `nmt train` to its first update;
- a restart (the cache and a checkpoint exist): the same;
- the encoded data: its size on disk, the resident memory of all of it once every page has been
  read (a full epoch touches every page), and the resident memory of the training process at
  its first update; the seconds one epoch's batch order takes at this size.

    .venv/bin/python benchmarks/data_scale.py --data data/de-en \\
        --tokenizer runs/quickstart/tokenizer.model --work /tmp/scale
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from nmt.data.batching import TokenBudgetSampler
from nmt.data.cache import default_cache_root, load_or_encode, tokenizer_fingerprint
from nmt.data.tokenizer import TOKENIZER_FILE, Tokenizer

QUICKSTART = Path(__file__).resolve().parent.parent / "configs" / "quickstart.yaml"


def build_corpus(source: Path, target: Path, repeat: int) -> int:
    """target/train.* = source/train.* repeated; dev and test copied. Returns training pairs."""
    target.mkdir(parents=True, exist_ok=True)
    for lang in ("en", "de"):
        for split in ("dev", "test"):
            shutil.copyfile(source / f"{split}.{lang}", target / f"{split}.{lang}")
        text = (source / f"train.{lang}").read_bytes()
        out = target / f"train.{lang}"
        if not out.is_file() or out.stat().st_size != len(text) * repeat:
            with out.open("wb") as f:
                for _ in range(repeat):
                    f.write(text)
    with (target / "train.en").open("rb") as f:
        return sum(block.count(b"\n") for block in iter(lambda: f.read(1 << 24), b""))


def memory_kib(pid: int | str = "self") -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "RssAnon", "RssFile"):
            fields[name] = int(value.split()[0])
    return fields


def train_until_update(command: list[str], metrics: Path, step: int) -> tuple[float, dict, str]:
    """Launch `nmt train`, wait for the metrics line of update ``step``: seconds, the process's
    memory at that moment, and its log."""
    started = time.perf_counter()
    print(f"  launched at {time.strftime('%H:%M:%S')}", flush=True)
    log_path = metrics.parent.parent / f"train-{step}.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(command, stderr=log, stdout=log)
        seconds, memory = None, {}
        while process.poll() is None:
            if metrics.is_file():
                records = [json.loads(line) for line in metrics.read_text().splitlines() if line]
                if any(r["split"] == "train" and r["step"] == step for r in records):
                    seconds = time.perf_counter() - started
                    memory = memory_kib(process.pid)
                    break
            time.sleep(0.05)
        process.wait()
    text = log_path.read_text()
    if seconds is None or process.returncode != 0:
        sys.exit(f"training failed (status {process.returncode}):\n{text[-3000:]}")
    return seconds, memory, text


def log_clock(text: str) -> list[str]:
    """The log's timed lines about data, for the breakdown."""
    keep = ("encoding", "memory-mapped", "resumed", "training pairs", "kept")
    return [line for line in text.splitlines() if any(k in line for k in keep)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--data", type=Path, required=True, help="the real corpus")
    parser.add_argument("--tokenizer", type=Path, required=True, help="a trained tokenizer.model")
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--repeat", type=int, default=57)
    parser.add_argument(
        "--restart-only", action="store_true", help="one more restart of the run WORK left"
    )
    args = parser.parse_args()

    data, run_dir = args.work / "data", args.work / "run"
    command = [sys.executable, "-m", "nmt.cli", "train", str(QUICKSTART)]
    command += [f"--data.dir={data}", f"--training.run_dir={run_dir}", "--training.progress=false"]
    command += ["--training.log_every=1", "--training.save_every=1", "--training.valid_every=10000"]
    command += ["--training.valid_max_sentences=10"]
    metrics = run_dir / "metrics.jsonl"
    if args.restart_only:
        step = 1 + int(sorted((run_dir / "checkpoints").glob("step-*"))[-1].name.split("-")[1])
        seconds, memory, text = train_until_update(
            [*command, f"--training.max_steps={step}"], metrics, step
        )
        print(f"restart: first update after {seconds:.1f} s; process memory {memory} KiB")
        print("\n".join("  " + line for line in log_clock(text)))
        return

    started = time.perf_counter()
    pairs = build_corpus(args.data, data, args.repeat)
    print(f"corpus: {pairs:,} training pairs ({time.perf_counter() - started:.0f} s to write)")
    shutil.rmtree(run_dir, ignore_errors=True)
    shutil.rmtree(data / ".nmt-cache", ignore_errors=True)
    run_dir.mkdir(parents=True)
    shutil.copyfile(args.tokenizer, run_dir / TOKENIZER_FILE)

    fresh, fresh_memory, fresh_log = train_until_update(
        [*command, "--training.max_steps=1"], metrics, 1
    )
    print(f"fresh start: first update after {fresh:.1f} s; process memory {fresh_memory} KiB")
    print("\n".join("  " + line for line in log_clock(fresh_log)))
    restart, restart_memory, restart_log = train_until_update(
        [*command, "--training.max_steps=2"], metrics, 2
    )
    print(f"restart: first update after {restart:.1f} s; process memory {restart_memory} KiB")
    print("\n".join("  " + line for line in log_clock(restart_log)))

    tokenizer = Tokenizer.load(run_dir / TOKENIZER_FILE)
    before = memory_kib()
    encoded = load_or_encode(
        tokenizer,
        data / "train.en",
        data / "train.de",
        max_len=100,
        tokenizer_sha256=tokenizer_fingerprint(run_dir / TOKENIZER_FILE),
        cache_root=default_cache_root(data, run_dir),
    )
    disk = sum(
        f.stat().st_size
        for f in Path(str(getattr(encoded.src_offsets, "filename", ""))).parent.iterdir()
    )
    mapped = memory_kib()
    # Read every token and offset, as an epoch does: every page of the cache becomes resident.
    checksum = sum(
        int(np.asarray(a, dtype=np.int64).sum())
        for a in (encoded.src_ids, encoded.tgt_ids, encoded.src_offsets, encoded.tgt_offsets)
    )
    touched = memory_kib()
    print(
        f"encoded: {len(encoded):,} pairs, {len(encoded.src_ids) + len(encoded.tgt_ids):,} tokens "
        f"({encoded.src_ids.dtype}), {disk / 2**20:.0f} MiB on disk; resident after mapping "
        f"+{(mapped['RssFile'] - before['RssFile']) / 1024:.0f} MiB (file pages), after reading "
        f"all of it +{(touched['RssFile'] - before['RssFile']) / 1024:.0f} MiB file pages, "
        f"+{(touched['RssAnon'] - before['RssAnon']) / 1024:.0f} MiB anonymous "
        f"(checksum {checksum})"
    )
    started = time.perf_counter()
    sampler = TokenBudgetSampler(encoded.src_lengths, encoded.tgt_lengths, max_tokens=3000, seed=1)
    batches = sampler.epoch_batches(0)
    order_seconds = time.perf_counter() - started
    print(f"one epoch's batch order: {len(batches):,} batches in {order_seconds:.1f} s")
    summary = {
        "pairs": len(encoded),
        "fresh_first_update_s": round(fresh, 1),
        "restart_first_update_s": round(restart, 1),
        "cache_mib_on_disk": round(disk / 2**20),
        "resident_encoded_mib": round((touched["RssFile"] - before["RssFile"]) / 1024),
        "train_process_rss_mib_at_first_update": {
            "fresh": round(fresh_memory.get("VmRSS", 0) / 1024),
            "restart": round(restart_memory.get("VmRSS", 0) / 1024),
        },
        "epoch_order_s": round(order_seconds, 1),
    }
    print(json.dumps(summary))
    if re.search(r"encoding .* into", restart_log):
        sys.exit("the restart encoded the corpus again")


if __name__ == "__main__":
    main()
