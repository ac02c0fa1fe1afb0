"""What the paper's Table 3 is: its rows of variations on a base Transformer, at any scale.

The variations apply the paper's ratios to the base: heads ×1/8 (one head), ×1/2, ×2, ×4 with
d_k = d_v = d_model / h (row A); N ×1/3, ×2/3, ×4/3, d_model and d_ff ×1/2 and ×2 (row C);
dropout and label smoothing 0 and 0.2 (row D); the other kind of positions (row E); and "big"
(d_model, d_ff and h doubled, dropout 0.3). A base of the paper's sizes
(configs/transformer-base.yaml) gives exactly the paper's rows. Row B is not run: see ROW_B.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from nmt.config import Config, TransformerConfig
from nmt.errors import NmtError

ROWS = ("base", "A", "C", "D", "E", "big")  # the paper's order; B is not run
ROW_B = (
    "Row (B), a smaller d_k with h and d_model unchanged, is not run: nmt's multi-head attention "
    "ties d_k = d_v = d_model / h (as the paper's base does), so no config can express it. Row "
    "(A) changes d_k through h instead."
)


@dataclass(frozen=True)
class Cell:
    """One line of the table: the fields it changes in the base config's model and training."""

    name: str  # "A1": the row and the line's position in it, as --rows takes it
    row: str
    model: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)


@dataclass
class CellResult:
    """What a cell's last checkpoint scored, and the training that led to it."""

    name: str
    parameters: int
    steps: int  # updates done within the time budget
    train_seconds: float
    target_tokens: int
    dev_ppl: float  # per subword token of the dev references (EOS included)
    dev_bleu: float  # sacreBLEU, beam 4, α 0.6
    bleu_signature: str


def variations(base: Config) -> list[Cell]:
    """The base cell, then rows A, C, D, E and big, the paper's ratios applied to ``base``."""
    model = base.model
    if not isinstance(model, TransformerConfig):
        raise NmtError(f"Table 3 varies a Transformer; the base config's model is {model.arch}")
    h, d, n, ff = model.num_heads, model.d_model, model.num_layers, model.d_ff
    rows: dict[str, list[tuple[dict[str, Any], dict[str, Any]]]] = {row: [] for row in ROWS}
    rows["base"].append(({}, {}))
    # (A) heads, with d_k = d_model / h: the same computation split in more or fewer heads.
    for heads in dict.fromkeys([1, h // 2, 2 * h, 4 * h]):  # the paper: 1, 4, 16, 32 around 8
        if 1 <= heads != h and d % heads == 0:
            rows["A"].append(({"num_heads": heads}, {}))
    # (C) size: N (the paper: 2, 4, 8 around 6), d_model at the same h, d_ff.
    for layers in dict.fromkeys(max(1, round(n * ratio)) for ratio in (1 / 3, 2 / 3, 4 / 3)):
        if layers != n:
            rows["C"].append(({"num_layers": layers}, {}))
    for width in (d // 2, 2 * d):
        if width >= h and width % h == 0:
            rows["C"].append(({"d_model": width}, {}))
    for inner in (ff // 2, 2 * ff):
        if inner >= 1:
            rows["C"].append(({"d_ff": inner}, {}))
    # (D) regularization.
    rows["D"] += [({"dropout": p}, {}) for p in (0.0, 0.2) if p != model.dropout]
    rows["D"] += [
        ({}, {"label_smoothing": e}) for e in (0.0, 0.2) if e != base.training.label_smoothing
    ]
    # (E) learned positional embedding instead of sinusoids (or the other way round).
    other = "learned" if model.positions == "sinusoidal" else "sinusoidal"
    rows["E"].append(({"positions": other}, {}))
    # big: the paper's 1024 / 4096 / 16 heads / dropout 0.3 against 512 / 2048 / 8 / 0.1.
    rows["big"].append(({"d_model": 2 * d, "d_ff": 2 * ff, "num_heads": 2 * h, "dropout": 0.3}, {}))
    cells = []
    for row, changes in rows.items():
        for i, (model_changes, training_changes) in enumerate(changes, start=1):
            name = row if row in ("base", "big") else f"{row}{i}"
            cells.append(Cell(name, row, model_changes, training_changes))
    return cells


def select_cells(cells: list[Cell], rows: str | None) -> list[Cell]:
    """The cells ``rows`` names ("A,C2,E": whole rows or single cells), always with the base."""
    if rows is None:
        return cells
    wanted = {"base"}
    for item in (part.strip() for part in rows.split(",")):
        if item.upper() == "B":
            raise NmtError(ROW_B)
        matching = {c.name for c in cells if item in (c.name, c.row)}
        if not matching:
            raise NmtError(
                f"--rows: no row or cell {item!r}; rows: {', '.join(ROWS)}; "
                f"cells: {', '.join(c.name for c in cells)}"
            )
        wanted |= matching
    return [c for c in cells if c.name in wanted]


def describe(cell: Cell) -> str:
    """The cell's changes in the paper's symbols: "h=1", "N=2", "ε_ls=0.2"."""
    if cell.row == "E":
        return f"{cell.model['positions']} positions"
    symbols = {"num_layers": "N", "num_heads": "h", "dropout": "P_drop", "label_smoothing": "ε_ls"}
    changes = {**cell.model, **cell.training}
    return ", ".join(f"{symbols.get(k, k)}={v}" for k, v in changes.items()) or "base"
