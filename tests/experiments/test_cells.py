"""Table 3's rows: the paper's exactly from the paper's base, the same ratios from any other;
each row's config; the table in the paper's layout."""

from __future__ import annotations

from pathlib import Path

import pytest

from nmt.config import Config, TransformerConfig, load_config
from nmt.errors import NmtError
from nmt.experiments.cells import ROW_B, Cell, CellResult, select_cells, variations
from nmt.experiments.report import plot_table, table_markdown
from nmt.experiments.table3 import cell_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def sizes(base: Config, cell: Cell) -> dict[str, object]:
    config = cell_config(
        base, cell, out_dir=Path("out"), data_dir=Path("d"), minutes=1, progress=False
    )
    model = config.model
    assert isinstance(model, TransformerConfig)
    return {
        "N": model.num_layers,
        "d_model": model.d_model,
        "d_ff": model.d_ff,
        "h": model.num_heads,
        "d_k": model.d_model // model.num_heads,
        "P_drop": model.dropout,
        "ε_ls": config.training.label_smoothing,
        "positions": model.positions,
    }


def changed(base: Config, cell: Cell) -> dict[str, object]:
    reference = sizes(base, variations(base)[0])
    return {k: v for k, v in sizes(base, cell).items() if v != reference[k]}


def test_the_papers_base_gives_the_papers_rows() -> None:
    base = load_config(CONFIGS / "transformer-base.yaml")
    cells = variations(base)
    assert sizes(base, cells[0]) == {
        "N": 6, "d_model": 512, "d_ff": 2048, "h": 8, "d_k": 64, "P_drop": 0.1, "ε_ls": 0.1,
        "positions": "sinusoidal",
    }  # fmt: skip
    rows = {c.name: changed(base, c) for c in cells[1:]}
    assert rows == {
        "A1": {"h": 1, "d_k": 512},
        "A2": {"h": 4, "d_k": 128},
        "A3": {"h": 16, "d_k": 32},
        "A4": {"h": 32, "d_k": 16},
        "C1": {"N": 2},
        "C2": {"N": 4},
        "C3": {"N": 8},
        "C4": {"d_model": 256, "d_k": 32},
        "C5": {"d_model": 1024, "d_k": 128},
        "C6": {"d_ff": 1024},
        "C7": {"d_ff": 4096},
        "D1": {"P_drop": 0.0},
        "D2": {"P_drop": 0.2},
        "D3": {"ε_ls": 0.0},
        "D4": {"ε_ls": 0.2},
        "E1": {"positions": "learned"},
        "big": {"d_model": 1024, "d_ff": 4096, "h": 16, "P_drop": 0.3},
    }


def test_the_quickstart_base_gives_the_same_ratios() -> None:
    base = load_config(CONFIGS / "quickstart.yaml")
    cells = variations(base)
    assert sizes(base, cells[0])["d_k"] == 64  # the paper's d_k
    rows = {c.name: changed(base, c) for c in cells[1:]}
    assert [rows[f"A{i}"]["h"] for i in range(1, 5)] == [1, 2, 8, 16]
    assert [rows[f"A{i}"]["d_k"] for i in range(1, 5)] == [256, 128, 32, 16]
    assert [rows[f"C{i}"] for i in range(1, 8)] == [
        {"N": 1}, {"N": 2}, {"N": 4},
        {"d_model": 128, "d_k": 32}, {"d_model": 512, "d_k": 128},
        {"d_ff": 512}, {"d_ff": 2048},
    ]  # fmt: skip
    assert rows["big"] == {"d_model": 512, "d_ff": 2048, "h": 8, "P_drop": 0.3}


def test_a_cell_config_trains_for_the_budget_in_its_own_folder(tmp_path: Path) -> None:
    base = load_config(CONFIGS / "quickstart.yaml")
    cell = next(c for c in variations(base) if c.name == "C1")
    config = cell_config(
        base, cell, out_dir=tmp_path, data_dir=Path("corpus"), minutes=7, progress=False
    )
    assert config.training.run_dir == tmp_path / "cells" / "C1"
    assert config.training.max_minutes == 7 and config.training.max_steps is None
    assert config.data.dir == Path("corpus")
    assert isinstance(config.model, TransformerConfig)
    assert config.model.num_encoder_layers == config.model.num_decoder_layers == 1
    # everything else is the base's
    assert config.training.seed == base.training.seed
    assert config.training.schedule == base.training.schedule
    assert config.data.vocab_size == base.data.vocab_size


def test_rows_select_whole_rows_or_cells_and_always_the_base() -> None:
    cells = variations(load_config(CONFIGS / "quickstart.yaml"))
    names = [c.name for c in select_cells(cells, "A, C2,E")]
    assert names == ["base", "A1", "A2", "A3", "A4", "C2", "E1"]
    assert [c.name for c in select_cells(cells, None)] == [c.name for c in cells]
    assert [c.name for c in select_cells(cells, "big")] == ["base", "big"]
    with pytest.raises(NmtError, match="d_k = d_v = d_model / h"):
        select_cells(cells, "A,B")
    with pytest.raises(NmtError, match="no row or cell 'Z9'"):
        select_cells(cells, "Z9")


def test_a_recurrent_base_is_refused() -> None:
    with pytest.raises(NmtError, match="varies a Transformer"):
        variations(load_config(CONFIGS / "gru-attention.yaml"))


def result(name: str, ppl: float) -> CellResult:
    return CellResult(name, 7_600_000, 800, 600.0, 2_000_000, ppl, 30.0 - ppl, "nrefs:1|tok:13a")


def test_the_table_shows_changed_cells_only(tmp_path: Path) -> None:
    base = load_config(CONFIGS / "quickstart.yaml")
    cells = variations(base)
    scored = [("base", 9.5), ("A1", 11.25), ("A3", 9.75), ("E1", 9.0)]
    results = {name: result(name, ppl) for name, ppl in scored}
    text = table_markdown(base, cells, results, minutes=10, data_dir=Path("data/de-en"))
    table = [line for line in text.splitlines() if line.startswith("|")]
    header, _, *rows = [[cell.strip() for cell in line.split("|")[1:-1]] for line in table]
    column = {name: header.index(name) for name in header}
    assert [row[0] for row in rows] == ["base", "(A)", "", "(E)"]  # the row letter once
    base_row, a1, a3, e1 = rows
    assert [base_row[column[n]] for n in ("N", "d_model", "h", "d_k", "P_drop", "ε_ls")] == [
        "3", "256", "4", "64", "0.1", "0.1",
    ]  # fmt: skip
    assert a1[column["h"]] == "1" and a1[column["d_k"]] == a1[column["d_v"]] == "256"
    assert a3[column["h"]] == "8" and a3[column["d_k"]] == "32"
    for row in (a1, a3):  # unchanged sizes are left blank
        assert [row[column[n]] for n in ("N", "d_model", "d_ff", "P_drop", "ε_ls")] == [""] * 5
    assert e1[1] == "positional embedding instead of sinusoids"
    assert [row[column["PPL (dev)"]] for row in rows] == ["9.50", "11.25", "9.75", "9.00"]
    assert [row[column["BLEU (dev)"]] for row in rows] == ["20.50", "18.75", "20.25", "21.00"]
    assert base_row[column["train steps"]] == "800" and base_row[column["params ×10⁶"]] == "7.6"
    assert ROW_B in text
    assert "Not run yet: A2 (h=2), A4 (h=16), C1 (N=1)," in text
    assert "10 minutes of training time" in text and "nrefs:1|tok:13a" in text

    plot_table(cells, results, tmp_path / "table3.png", minutes=10)
    assert (tmp_path / "table3.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
