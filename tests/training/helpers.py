"""Configs for training tests: tiny models on the toy corpus."""

from pathlib import Path
from typing import Any

import yaml


def write_config(path: Path, data_dir: Path, run_dir: Path, **sections: dict[str, Any]) -> Path:
    tree: dict[str, Any] = {
        "data": {"dir": str(data_dir), "vocab_size": 60, "max_len": 40},
        "model": {
            "arch": "transformer",
            "num_layers": 2,
            "d_model": 32,
            "d_ff": 64,
            "num_heads": 4,
            "dropout": 0.1,
        },
        "training": {
            "run_dir": str(run_dir),
            "max_tokens": 400,
            "max_steps": 20,
            "log_every": 1,
            "valid_every": 1000,
            "save_every": 5,
            "keep_last": 100,
            "progress": False,
            "valid_max_sentences": 20,
            "schedule": {"kind": "peak", "peak_lr": 0.003, "warmup_steps": 10},
        },
    }
    for section, values in sections.items():
        tree[section] = {**tree.get(section, {}), **values}
    path.write_text(yaml.safe_dump(tree), encoding="utf-8")
    return path
