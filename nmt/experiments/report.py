"""Table 3's results shown as the paper shows them (changed cells only, base row on top), and
as one plot."""

from __future__ import annotations

from pathlib import Path

from nmt import machine
from nmt.config import Config, TransformerConfig
from nmt.durable import write_file_atomically
from nmt.experiments.cells import ROW_B, Cell, CellResult, describe

COLUMNS = ("N", "d_model", "d_ff", "h", "d_k", "d_v", "P_drop", "ε_ls")


def sizes(base: Config, cell: Cell) -> dict[str, str]:
    """The cell's values of the paper's columns (d_k = d_v = d_model / h)."""
    model = base.model.model_copy(update=cell.model)
    assert isinstance(model, TransformerConfig)
    label_smoothing = cell.training.get("label_smoothing", base.training.label_smoothing)
    d_k = str(model.d_model // model.num_heads)
    return dict(
        zip(
            COLUMNS,
            [
                str(model.num_layers),
                str(model.d_model),
                str(model.d_ff),
                str(model.num_heads),
                d_k,
                d_k,
                f"{model.dropout:g}",
                f"{label_smoothing:g}",
            ],
            strict=True,
        )
    )


def table_markdown(
    base: Config,
    cells: list[Cell],
    results: dict[str, CellResult],
    *,
    minutes: float,
    data_dir: Path,
) -> str:
    """The paper's layout: the base row in full, every other row only where it differs."""
    header = ["", *COLUMNS, "train steps", "PPL (dev)", "BLEU (dev)", "params ×10⁶"]
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    base_sizes = sizes(base, cells[0])
    labelled: set[str] = set()
    for cell in cells:
        result = results.get(cell.name)
        if result is None:
            continue
        group = cell.row if cell.row in ("base", "big") else f"({cell.row})"
        label = "" if group in labelled else group  # a row's letter on its first line only
        labelled.add(group)
        if cell.row == "E":
            positions = cell.model["positions"]
            other = "sinusoids" if positions == "learned" else "learned positional embedding"
            used = "positional embedding" if positions == "learned" else "sinusoids"
            shown = [f"{used} instead of {other}", *[""] * (len(COLUMNS) - 1)]
        else:
            cell_sizes = sizes(base, cell)
            shown = [
                v if cell.row == "base" or v != base_sizes[k] else "" for k, v in cell_sizes.items()
            ]
        scores = [
            f"{result.steps:,}",
            f"{result.dev_ppl:.2f}",
            f"{result.dev_bleu:.2f}",
            f"{result.parameters / 1e6:.1f}",
        ]
        lines.append("| " + " | ".join([label, *shown, *scores]) + " |")
    missing = [f"{c.name} ({describe(c)})" for c in cells if c.name not in results]
    signature = next(iter(results.values())).bleu_signature if results else ""
    notes = [
        "",
        f"Each row: {minutes:g} minutes of training time (validation excluded), seed "
        f"{base.training.seed}, data {data_dir} with one joint BPE vocabulary of "
        f"{base.data.vocab_size:,}; train steps are the updates done in that time. PPL: "
        "perplexity per subword token of the dev references; BLEU: sacreBLEU of beam search "
        "(beam 4, α 0.6) on the dev set, last checkpoint, no averaging"
        + (f" ({signature})." if signature else "."),
        f"Machine, measured as this table was written: {machine.describe()}.",
        "",
        ROW_B,
    ]
    if missing:
        notes += ["", "Not run yet: " + ", ".join(missing) + "."]
    return "\n".join(lines + notes)


def plot_table(
    cells: list[Cell], results: dict[str, CellResult], path: Path, *, minutes: float
) -> None:
    """Dev perplexity and dev BLEU of every scored cell against the base's, as a PNG (atomic)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scored = [c for c in cells if c.name in results]
    labels = [c.name if c.row == "base" else f"{c.name}: {describe(c)}" for c in scored]
    fig, (ax_ppl, ax_bleu) = plt.subplots(1, 2, figsize=(11, 1.4 + 0.35 * len(scored)), sharey=True)
    rows = list(range(len(scored)))
    for ax, key, title in (
        (ax_ppl, "dev_ppl", "dev perplexity (lower is better)"),
        (ax_bleu, "dev_bleu", "dev BLEU, beam 4 (higher is better)"),
    ):
        values = [getattr(results[c.name], key) for c in scored]
        if "base" in results:  # each cell drawn as its distance from the base
            reference = getattr(results["base"], key)
            ax.axvline(reference, color="gray", linestyle="--", linewidth=1)
            ax.hlines(rows, reference, values, color="tab:blue", linewidth=2)
        ax.plot(values, rows, "o", color="tab:blue")
        ax.set_xlabel(title)
        ax.grid(axis="x", alpha=0.3)
    ax_ppl.set_yticks(range(len(scored)), labels)
    ax_ppl.invert_yaxis()  # the base on top, as in the table
    fig.suptitle(f"Table 3 at this machine's scale: {minutes:g} minutes of training per row")
    fig.tight_layout()
    try:
        write_file_atomically(path, lambda tmp: fig.savefig(tmp, dpi=100))
    finally:
        plt.close(fig)
