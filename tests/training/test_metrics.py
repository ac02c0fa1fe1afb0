import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from nmt.training.metrics import plot_metrics_apart

# Draws the curves as training does, then says whether matplotlib entered this interpreter.
DRAW = """
import sys
from pathlib import Path
from nmt.training.metrics import plot_metrics_apart
plot_metrics_apart(Path(sys.argv[1]), Path(sys.argv[2]))
print(int("matplotlib" in sys.modules))
"""


def write_metrics(path: Path) -> None:
    records = [
        {"split": "train", "step": 25, "nll": 6.1},
        {"split": "train", "step": 50, "nll": 5.2},
        {"split": "dev", "step": 50, "nll": 5.5, "bleu": 1.2},
    ]
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")


def test_curves_are_drawn_outside_the_training_process(tmp_path: Path) -> None:
    metrics, plot = tmp_path / "metrics.jsonl", tmp_path / "curves.png"
    write_metrics(metrics)
    done = subprocess.run(
        [sys.executable, "-c", DRAW, str(metrics), str(plot)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "0"
    assert plot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_curves_that_cannot_be_drawn_are_a_warning_naming_the_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    metrics, plot = tmp_path / "metrics.jsonl", tmp_path / "curves.png"
    write_metrics(metrics)
    metrics.write_text("{damaged\n" + metrics.read_text(encoding="utf-8"), encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="nmt.training.metrics"):
        plot_metrics_apart(metrics, plot)
    assert f"{plot} not drawn: {metrics}:1: not a JSON record" in caplog.text
    assert "Traceback" not in caplog.text
    assert not plot.exists()
