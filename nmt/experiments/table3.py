"""`nmt experiment table3`: the paper's Table 3 (section 6.2) rerun at this machine's scale.

Every cell (nmt.experiments.cells) trains for the same training time (validation excluded),
from the same seed, on the same data with one joint BPE vocabulary, and is scored as the paper
scores the table: perplexity per subword token of the dev set's references, and dev sacreBLEU of
beam search (beam 4, α 0.6) with the last checkpoint (no averaging).

Resumable: a cell's result is written atomically when it is scored, so a rerun skips finished
cells, and an interrupted cell continues from its last checkpoint (nmt train's own resume).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

from nmt.config import Config, config_from_dict
from nmt.data.parallel import iter_lines
from nmt.data.splits import load_split
from nmt.data.tokenizer import TOKENIZER_FILE, Tokenizer
from nmt.decoding.translator import Translator
from nmt.device import resolve_device
from nmt.durable import atomic_write_text, copy_file_atomically
from nmt.errors import NmtError
from nmt.evaluation.perplexity import reference_loss
from nmt.evaluation.scoring import score
from nmt.experiments.cells import Cell, CellResult, describe, select_cells, variations
from nmt.experiments.report import plot_table, table_markdown
from nmt.models.build import count_parameters
from nmt.models.store import TRAINER_FILE, load_model_dir
from nmt.training.checkpoint import checkpoint_dirs
from nmt.training.train import train

log = logging.getLogger(__name__)

MANIFEST_FILE = "table3.json"
RESULT_FILE = "result.json"
HYPOTHESES_FILE = "dev.hyp"
TABLE_FILE = "table3.md"
PLOT_FILE = "table3.png"
BEAM_SIZE, LENGTH_PENALTY = 4, 0.6  # the paper's search, as in its Table 3


def cell_config(
    base: Config, cell: Cell, *, out_dir: Path, data_dir: Path, minutes: float, progress: bool
) -> Config:
    """The base config with the cell's changes, trained for ``minutes`` in its own run folder."""
    tree = base.model_dump(mode="json")
    model = tree["model"]
    model["preset"] = None  # every size is written out
    model.update(cell.model)
    if "num_layers" in cell.model:  # N is the depth of both stacks
        model["encoder_layers"] = model["decoder_layers"] = None
    tree["data"]["dir"] = str(data_dir)
    tree["training"].update(
        cell.training,
        run_dir=str(out_dir / "cells" / cell.name),
        max_minutes=minutes,
        max_steps=None,
        # No validation while training: each cell's dev set is decoded once, when it is scored.
        valid_every=None,
        valid_every_minutes=None,
        patience=None,
        # Checkpoints only to resume an interrupted cell: one kept, ten per budget.
        save_every=None,
        save_every_minutes=minutes / 10,
        keep_last=1,
        progress=progress,
    )
    return config_from_dict(tree, source=f"Table 3 cell {cell.name} ({describe(cell)})")


def check_manifest(out_dir: Path, base_config: Config, minutes: float) -> None:
    """Write what this table is (base config, budget) once; refuse to mix it with another."""
    record = base_config.model_dump(mode="json")
    for key in ("progress", "run_dir"):  # how it shows progress, and where, may change
        record["training"].pop(key)
    manifest = {"minutes": minutes, "base": record}
    path = out_dir / MANIFEST_FILE
    if path.is_file():
        stored = json.loads(path.read_text(encoding="utf-8"))
        if stored != json.loads(json.dumps(manifest)):
            raise NmtError(
                f"{out_dir} holds a Table 3 run with another base config, data or --minutes "
                f"({stored['minutes']:g} minutes); choose another --out or remove {out_dir}"
            )
        return
    atomic_write_text(path, json.dumps(manifest, indent=1) + "\n")


def shared_tokenizer(base: Config, data_dir: Path, out_dir: Path) -> Path:
    """One joint BPE model for every cell (trained once), so that perplexities compare."""
    path = out_dir / TOKENIZER_FILE
    if not path.is_file():
        src, tgt = base.data.src_lang, base.data.tgt_lang
        files = [data_dir / f"train.{src}", data_dir / f"train.{tgt}"]
        for f in files:
            if not f.is_file():
                raise NmtError(f"{f}: training file not found (see --data)")
        Tokenizer.train(files, path, vocab_size=base.data.vocab_size)
    return path


def install_tokenizer(tokenizer: Path, run_dir: Path) -> None:
    """Put the shared tokenizer in a cell's run folder (atomically: a copy cut short by a kill
    would be taken for the run's own)."""
    if (run_dir / TOKENIZER_FILE).is_file():
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    copy_file_atomically(tokenizer, run_dir / TOKENIZER_FILE)


def score_cell(cell: Cell, config: Config) -> CellResult:
    """Dev perplexity and dev BLEU (beam 4) of the cell's last checkpoint."""
    run_dir = config.training.run_dir
    last = checkpoint_dirs(run_dir)[-1]
    trainer = json.loads((last / TRAINER_FILE).read_text(encoding="utf-8"))["trainer"]
    device = resolve_device(config.training.device)
    loaded = load_model_dir(last, device=str(device))
    dev = load_split(config, loaded.tokenizer, "dev")
    loss = reference_loss(loaded.model, dev, max_tokens=config.training.max_tokens, device=device)
    data = config.data
    translator = Translator(
        loaded.model, loaded.tokenizer, device=device, max_positions=config.model.max_positions
    )
    # The base config's search, with the paper's beam and α whatever the base says.
    options = config.decoding.updated(
        beam_size=BEAM_SIZE, length_penalty=LENGTH_PENALTY, nbest=1, sampling=False
    )
    hyps = translator.translate(list(iter_lines(data.dir / f"dev.{data.src_lang}")), options)
    atomic_write_text(run_dir / HYPOTHESES_FILE, "".join(h + "\n" for h in hyps))
    scores = score(hyps, list(iter_lines(data.dir / f"dev.{data.tgt_lang}")))
    return CellResult(
        name=cell.name,
        parameters=count_parameters(loaded.model),
        steps=trainer["step"],
        train_seconds=trainer["elapsed_seconds"],
        target_tokens=trainer["target_tokens"],
        dev_ppl=loss.perplexity,
        dev_bleu=scores.bleu,
        bleu_signature=scores.bleu_signature,
    )


def read_result(path: Path) -> CellResult | None:
    return CellResult(**json.loads(path.read_text(encoding="utf-8"))) if path.is_file() else None


@dataclass
class Table3:
    cells: list[Cell]  # every variation of the base, run or not
    results: dict[str, CellResult]  # by cell name: those scored so far
    markdown: str
    table_path: Path
    plot_path: Path


def run_table3(
    base: Config,
    *,
    out_dir: Path,
    minutes: float,
    data_dir: Path | None = None,
    rows: str | None = None,
    progress: bool = True,
) -> Table3:
    """Train and score the selected cells not scored yet; write the table and plot of all."""
    if minutes <= 0:
        raise NmtError(f"--minutes must be positive, not {minutes:g}")
    data_dir = data_dir or base.data.dir
    cells = variations(base)
    selected = select_cells(cells, rows)

    def config_of(cell: Cell) -> Config:
        return cell_config(
            base, cell, out_dir=out_dir, data_dir=data_dir, minutes=minutes, progress=progress
        )

    out_dir.mkdir(parents=True, exist_ok=True)
    check_manifest(out_dir, config_of(cells[0]), minutes)
    configs = [config_of(cell) for cell in selected]  # all checked before the first trains
    tokenizer = shared_tokenizer(base, data_dir, out_dir)
    for cell, config in zip(selected, configs, strict=True):
        result_path = config.training.run_dir / RESULT_FILE
        if result_path.is_file():
            log.info("cell %s (%s): scored before, not trained again", cell.name, describe(cell))
            continue
        install_tokenizer(tokenizer, config.training.run_dir)
        log.info("cell %s (%s): training for %g minutes", cell.name, describe(cell), minutes)
        train(config)
        result = score_cell(cell, config)
        atomic_write_text(result_path, json.dumps(asdict(result), indent=1) + "\n")
        log.info(
            "cell %s: %d steps, dev perplexity %.2f, dev BLEU %.2f",
            cell.name,
            result.steps,
            result.dev_ppl,
            result.dev_bleu,
        )

    results = {}  # every cell scored in OUT so far, by this run or an earlier one
    for cell in cells:
        if (scored := read_result(out_dir / "cells" / cell.name / RESULT_FILE)) is not None:
            results[cell.name] = scored
    markdown = table_markdown(base, cells, results, minutes=minutes, data_dir=data_dir)
    table_path, plot_path = out_dir / TABLE_FILE, out_dir / PLOT_FILE
    atomic_write_text(table_path, markdown + "\n")
    plot_table(cells, results, plot_path, minutes=minutes)
    return Table3(cells, results, markdown, table_path, plot_path)
