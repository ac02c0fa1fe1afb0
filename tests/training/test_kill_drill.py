"""The kill drill: SIGKILL a real training process again and again, resume it each time, and
require the losses, dev scores and weights of a run never interrupted, digit for digit.

Kills come at random moments of training (an update, a validation, an append to
metrics.jsonl, a save) and, every time, inside the two windows of a save that matter most: right
after its temporary directory appears, and while the weights file is half written. Those two are
hit deterministically: nmt.training.checkpoint pauses there when NMT_DRILL_PAUSE_AT names them
(as POINT@STEP: the first save at or after STEP; the weights file is left cut to half its size),
prints a line, and waits to be killed. Targets lie 1 to 6 updates (random kills) or 1 to 3
checkpoints (save windows) past the checkpoint resumed from, so the run moves on between kills.

The default suite runs a short drill (each kind of kill once); ``pytest -m slow -s`` runs the
20-kill drill and prints its figures (docs/reliability.md).
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from safetensors.torch import load_file

from nmt.training.checkpoint import DRILL_PAUSE_ENV, checkpoint_dirs

from .helpers import write_config
from .test_resume import environment, logged_steps, train_command

PAUSE_POINTS = ("temporary-created", "weights-half-written")
KINDS = ("random", *PAUSE_POINTS)
SAVE_EVERY = 3
ATTEMPT_SECONDS = 180  # a generous bound on one start-to-kill, on a busy machine


@dataclass
class Kill:
    kind: str
    resumed_from: int  # the checkpoint step the killed process started from
    logged: int  # the last training step in metrics.jsonl at the kill
    seconds: float  # from the start of the process to the kill


def drill_config(folder: Path, toy_corpus: Path, run: Path, *, max_steps: int) -> Path:
    # Dropout (RNG states), several epochs (data position), warm-up (schedule), Adam (moments),
    # validations (dev records, best/): everything resume must restore.
    training = {
        "max_steps": max_steps,
        "save_every": SAVE_EVERY,
        "max_tokens": 300,
        "valid_every": 7,
        "valid_max_sentences": 10,
    }
    return write_config(folder / f"{run.name}.yaml", toy_corpus, run, training=training)


def newest_step(run: Path) -> int:
    dirs = checkpoint_dirs(run)
    return int(dirs[-1].name.removeprefix("step-")) if dirs else 0


def kill_once(config: Path, run: Path, kind: str, rng: random.Random) -> Kill | None:
    """Start training, SIGKILL it at a moment of ``kind``; None if it finished first."""
    resumed_from = newest_step(run)
    metrics = run / "metrics.jsonl"
    stale = metrics.stat().st_ino if metrics.is_file() else None
    if kind == "random":
        target, extra = resumed_from + rng.randint(1, 2 * SAVE_EVERY), {}
    else:
        target = (resumed_from // SAVE_EVERY + rng.randint(1, 3)) * SAVE_EVERY
        extra = {DRILL_PAUSE_ENV: f"{kind}@{target}"}
    started = time.monotonic()
    process = subprocess.Popen(
        train_command(config),
        env=environment(**extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    if kind == "random":
        # Some updates past the checkpoint resumed from, then a random fraction of a second. The
        # killed process's records count only once resume has rewritten the file (a new inode).
        def progressed() -> bool:
            fresh = metrics.is_file() and metrics.stat().st_ino != stale
            return fresh and logged_steps(run) >= target

        while not progressed() and process.poll() is None:
            assert time.monotonic() - started < ATTEMPT_SECONDS, "no progress"
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.3))
    else:
        line = process.stdout.readline()  # blocks until the pause (or the end of the run)
        if not line.startswith("nmt-drill: "):
            process.wait()  # the run finished: no save was left to pause in
            return None
        assert line.startswith(f"nmt-drill: paused at {kind}"), line
    if process.poll() is not None:
        return None
    process.send_signal(signal.SIGKILL)
    process.wait()
    kill = Kill(kind, resumed_from, logged_steps(run), time.monotonic() - started)
    if kind != "random":  # killed inside the window: the save's temporary directory is there
        assert [p for p in (run / "checkpoints").iterdir() if p.name.startswith(".step-")]
    return kill


def records(run: Path) -> list[tuple[object, ...]]:
    """metrics.jsonl without its timings: what must be identical."""
    lines = (run / "metrics.jsonl").read_text().splitlines()
    kept = []
    for r in map(json.loads, lines):
        if r["split"] == "train":
            kept.append(("train", r["step"], r["epoch"], r["loss"], r["nll"], r["lr"]))
        else:
            kept.append(("dev", r["step"], r["nll"], r["bleu"], r["chrf"]))
    return kept


def tensors_equal(a: Path, b: Path) -> bool:
    x, y = load_file(str(a)), load_file(str(b))
    return x.keys() == y.keys() and all(bool((x[k] == y[k]).all()) for k in x)


def run_drill(toy_corpus: Path, folder: Path, *, kills: int, seed: int) -> list[Kill]:
    max_steps = 12 + 4 * kills  # enough that the run outlasts the kills
    whole = folder / "whole"
    config = drill_config(folder, toy_corpus, whole, max_steps=max_steps)
    subprocess.run(train_command(config), check=True, env=environment(), capture_output=True)

    run = folder / "killed"
    config = drill_config(folder, toy_corpus, run, max_steps=max_steps)
    rng = random.Random(seed)
    done: list[Kill] = []
    while len(done) < kills:
        kind = KINDS[len(done)] if len(done) < len(KINDS) else rng.choice(KINDS)
        kill = kill_once(config, run, kind, rng)
        assert kill is not None, f"the run finished after {len(done)} kills; raise max_steps"
        done.append(kill)
    subprocess.run(train_command(config), check=True, env=environment(), capture_output=True)

    assert records(run) == records(whole)
    final = f"checkpoints/step-{max_steps:08d}"
    for name in ("model.safetensors", "optimizer.safetensors"):
        assert tensors_equal(run / final / name, whole / final / name), name
    assert tensors_equal(run / "best" / "model.safetensors", whole / "best" / "model.safetensors")
    # What the kills left half-written is gone; no checkpoint was ever set aside as unreadable.
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == sorted(
        p.name for p in (whole / "checkpoints").iterdir()
    )
    assert not [p for p in run.iterdir() if p.name.startswith(".")]
    return done


def report(kills: list[Kill]) -> str:
    by_kind = {kind: sum(k.kind == kind for k in kills) for kind in KINDS}
    redone = sum(k.logged - k.resumed_from for k in kills)
    lines = [
        f"{len(kills)} kills ({', '.join(f'{n} {kind}' for kind, n in by_kind.items())}); "
        f"identical losses, dev scores and weights; {redone} logged updates redone in all",
        "kind                  resumed from  last logged  seconds",
    ]
    lines += [f"{k.kind:<21} {k.resumed_from:>12} {k.logged:>12} {k.seconds:>8.1f}" for k in kills]
    return "\n".join(lines)


def test_kill_drill_short(toy_corpus: Path, tmp_path: Path) -> None:
    kills = run_drill(toy_corpus, tmp_path, kills=len(KINDS), seed=0)
    assert [k.kind for k in kills] == list(KINDS)


@pytest.mark.slow
def test_kill_drill_20_kills(toy_corpus: Path, tmp_path: Path) -> None:
    kills = run_drill(toy_corpus, tmp_path, kills=20, seed=2026)
    print("\n" + report(kills))
    assert len(kills) == 20
