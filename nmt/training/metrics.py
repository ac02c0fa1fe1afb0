"""Learning curves: metrics as JSON lines, and a plot of them next to the file."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

from nmt.durable import atomic_write_text, write_file_atomically
from nmt.errors import NmtError

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.jsonl"
PLOT_FILE = "curves.png"


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The records of a metrics file; a last line cut short (a kill during an append) is left
    out, while damage anywhere else is an error naming the line."""
    if not path.is_file():
        return []
    lines = path.read_bytes().split(b"\n")
    records = []
    for number, line in enumerate(lines, start=1):
        if not line:
            continue
        try:
            records.append(json.loads(line.decode("utf-8")))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            if number == len(lines):  # no newline after it: the append was interrupted
                log.warning("%s: ignoring a last line cut short (%d bytes)", path, len(line))
                continue
            raise NmtError(f"{path}:{number}: not a JSON record ({exc})") from None
    return records


def append_metrics(path: Path, record: dict[str, Any]) -> None:
    """Append one line in place: the one file not rewritten whole (see nmt.durable)."""
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def truncate_metrics(path: Path, *, after_step: int) -> None:
    """On resume, forget records written after the checkpoint resumed from (they are redone)."""
    kept = [record for record in read_metrics(path) if record["step"] <= after_step]
    atomic_write_text(path, "".join(json.dumps(record) + "\n" for record in kept))


def column(records: list[dict[str, Any]], key: str) -> list[float]:
    """One metric of every record (NaN where a record lacks it)."""
    return [record.get(key, float("nan")) for record in records]


def plot_metrics_apart(metrics_path: Path, plot_path: Path) -> None:
    """``plot_metrics`` in a child interpreter, waited for: training draws its curves at every
    validation, and matplotlib, once imported, would stay in the training process's resident
    memory for the rest of the run (36 MiB, docs/performance.md). A plot that cannot be drawn
    is reported, and training goes on."""
    command = [sys.executable, "-m", __name__, str(metrics_path), str(plot_path)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        log.warning("%s not drawn: %s", plot_path, reason)


def plot_metrics(metrics_path: Path, plot_path: Path) -> None:
    """Training and dev loss against steps, and dev BLEU, as a PNG (written atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_metrics(metrics_path)
    train = [record for record in records if record["split"] == "train"]
    dev = [record for record in records if record["split"] == "dev"]
    fig, (ax_loss, ax_bleu) = plt.subplots(1, 2, figsize=(11, 4))
    ax_loss.plot(column(train, "step"), column(train, "nll"), label="train cross-entropy")
    ax_loss.plot(column(dev, "step"), column(dev, "nll"), "o-", label="dev cross-entropy")
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("nats per target token")
    ax_loss.legend()
    ax_bleu.plot(column(dev, "step"), column(dev, "bleu"), "o-")
    ax_bleu.set_xlabel("step")
    ax_bleu.set_ylabel("dev BLEU (greedy, sacreBLEU)")
    fig.tight_layout()
    try:
        write_file_atomically(plot_path, lambda tmp: fig.savefig(tmp, dpi=100))
    finally:
        plt.close(fig)


if __name__ == "__main__":  # plot_metrics_apart's child
    try:
        plot_metrics(Path(sys.argv[1]), Path(sys.argv[2]))
    except NmtError as exc:
        sys.exit(str(exc))
