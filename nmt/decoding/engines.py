"""The engines that can translate an nmt model: nmt's own search, or CTranslate2's.

``load_translator`` gives either behind the same methods (``translate``, ``translate_nbest``
returning nmt.decoding.translator.Translation), so the CLI and the server need not know which.
The CTranslate2 engine converts an nmt model directory on first use (nmt.interop.ctranslate2)
into a cache inside it, ``MODEL_DIR/.ct2-<fingerprint>`` (or the user's cache folder when the
model's is read-only), keyed by the weights, config, tokenizer and converter: a changed model
converts again.

How nmt's decoding options map onto CTranslate2's (nmt.config.DecodingConfig):

- beam_size, nbest (num_hypotheses), patience, allow_empty (min_decoding_length 0 or 1),
  sampling with temperature / top_k / top_p / seed: the same meaning.
- the length limit a·|X| + b (capped by the model's positions) is per sentence in nmt and per
  call in CTranslate2: sentences of a batch are sent in groups of equal limit.
- the length penalty: CTranslate2 divides log P by |Y|^α, nmt by GNMT's ((5 + |Y|) / 6)^α
  (|Y| counts the EOS in both). At α = 0 both rank by log P; otherwise the two searches may
  pick different outputs. Scores are reported as nmt's: log P / ((5 + |Y|) / 6)^α.
- stopping: at α = 0 CTranslate2 stops a sentence when its most probable candidate has ended,
  nmt's ``early`` rule with patience None; with α > 0 it waits for round(patience · k) ended
  hypotheses. nmt's ``exact`` bound has no CTranslate2 counterpart (a warning says so).
- PAD and BOS: nmt's search never produces them; CTranslate2 could (a trained model gives them
  next to no probability). Banning them there (``suppress_sequences``) would renormalise its
  log-probabilities over the other tokens at every step, and so change its rankings and scores.
  Forbidding an empty output (``allow_empty`` false, CTranslate2's min_decoding_length 1)
  renormalises the first step only, which shifts every hypothesis of a sentence alike.

So nmt and CTranslate2 (float32) give identical outputs with α = 0 and stopping ``early``
(tests/interop/test_ctranslate2.py checks it on a trained model).
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from nmt.config import DecodingConfig
from nmt.data.tokenizer import Tokenizer
from nmt.decoding.search import Hypothesis, length_penalty, max_lengths
from nmt.decoding.translator import CallTranslations, Translation, TranslationDone, Translator
from nmt.device import check_device
from nmt.errors import NmtError
from nmt.interop.ctranslate2 import (
    CT2_WEIGHTS,
    export_ctranslate2,
    import_ctranslate2,
    model_fingerprint,
)
from nmt.models.interface import Seq2SeqModel
from nmt.models.store import CONFIG_FILE, resolve_model_dir

log = logging.getLogger(__name__)

ENGINES = ("nmt", "ctranslate2")
CACHE_PREFIX = ".ct2-"


def load_translator(
    model_dirs: Sequence[Path],
    *,
    engine: str = "nmt",
    int8: bool = False,
    device: str = "cpu",
    threads: int | None = None,
    parallel: int = 1,
) -> Translator:
    """A translator for one model directory, or for the ensemble of several (nmt engine only):
    nmt's own (``int8``: its linear layers quantized, nmt.models.quantize) or CTranslate2's
    (``int8``: int8 weights and matmuls). ``threads``: CPU threads for the search (None: the
    engine's default; for nmt, PyTorch's process-wide setting). ``parallel``: how many calls
    may run at once from different threads (CTranslate2 keeps a replica for each; nmt's model
    is shared, read-only)."""
    if not model_dirs:
        raise NmtError("no model directory given")
    if threads is not None and threads < 1:
        raise NmtError(f"threads: must be at least 1, not {threads}")
    if engine == "ctranslate2":
        return CTranslate2Translator.load(
            model_dirs, int8=int8, device=device, threads=threads, replicas=parallel
        )
    if engine != "nmt":
        raise NmtError(f"engine {engine!r}: choose one of {', '.join(ENGINES)}")
    if threads is not None:
        torch.set_num_threads(threads)
    if int8 and check_device(device).type != "cpu":
        raise NmtError("--int8 runs on the CPU only (PyTorch's dynamic quantization)")
    translator = Translator.load(model_dirs, device=device)
    if int8:
        from nmt.models.quantize import quantize_int8

        # Still the same model class, its nn.Linear layers swapped for quantized ones.
        model = quantize_int8(cast(nn.Module, translator.model))
        translator.model = cast(Seq2SeqModel, model)
    return translator


# -- the CTranslate2 model cache ------------------------------------------------------------------


def _user_cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "nmt" / "ctranslate2"


def converted_model(model_dir: Path) -> Path:
    """The CTranslate2 conversion (float32) of ``model_dir``, made now if not cached there (or,
    for a read-only model directory, in the user's cache folder)."""
    model_dir = resolve_model_dir(model_dir)
    name = CACHE_PREFIX + model_fingerprint(model_dir)
    root = model_dir if os.access(model_dir, os.W_OK) else _user_cache_root()
    cached = root / name
    if (cached / CT2_WEIGHTS).is_file():
        return cached
    log.info("converting %s for CTranslate2 into %s", model_dir, cached)
    export_ctranslate2(model_dir, cached)
    # Conversions of earlier versions of this model are stale.
    if root == model_dir:
        for old in root.glob(CACHE_PREFIX + "*"):
            if old != cached:
                shutil.rmtree(old, ignore_errors=True)
    return cached


# -- the translator -------------------------------------------------------------------------------


class CTranslate2Translator(Translator):
    """nmt's Translator with CTranslate2 doing the search (see the module docstring).

    Tokenization, truncation to the model's positions, token-budget batches and the returned
    Translations are the Translator's own; only the search differs. There is no torch model
    (``model`` is absent) and no attention (``return_attention`` gives None).
    """

    def __init__(
        self,
        ct2_dir: Path,
        tokenizer: Tokenizer,
        *,
        max_positions: int | None,
        default_options: DecodingConfig | None = None,
        device: str = "cpu",
        compute_type: str = "default",
        threads: int | None = None,
        replicas: int = 1,
    ) -> None:
        # Not Translator.__init__: there is no torch model to hold.
        ctranslate2 = import_ctranslate2()
        target = check_device(device)
        self.tokenizer = tokenizer
        self.device = target
        self.max_positions = max_positions
        self.default_options = default_options or DecodingConfig()
        self._piece_ids = {piece: i for i, piece in enumerate(tokenizer.pieces())}
        self._seeded = threading.Lock()  # seeded sampling calls, one at a time
        try:
            self.engine = ctranslate2.Translator(
                str(ct2_dir),
                device=target.type,
                device_index=target.index or 0,
                compute_type=compute_type,
                inter_threads=replicas,  # calls it runs at once, from different threads
                # As many threads as torch uses, so that the engines compare fairly.
                intra_threads=threads if threads is not None else torch.get_num_threads(),
            )
        except (RuntimeError, ValueError) as exc:
            raise NmtError(f"{ct2_dir}: CTranslate2 cannot load it ({exc})") from None

    @classmethod
    def load(
        cls,
        model_dir: Path | Sequence[Path],
        *,
        device: str = "cpu",
        int8: bool = False,
        threads: int | None = None,
        replicas: int = 1,
    ) -> CTranslate2Translator:
        """The CTranslate2 engine for an nmt model directory, converted (and cached) first."""
        from nmt.config import load_config
        from nmt.data.tokenizer import load_tokenizer

        if not isinstance(model_dir, str | Path):  # a list, as Translator.load takes for ensembles
            if len(model_dir) != 1:
                raise NmtError("--engine ctranslate2 takes one model; ensembles: --engine nmt")
            model_dir = model_dir[0]
        model_dir = resolve_model_dir(Path(model_dir))
        ct2_dir = converted_model(model_dir)
        config = load_config(model_dir / CONFIG_FILE)
        tokenizer = load_tokenizer(model_dir)
        return cls(
            ct2_dir,
            tokenizer,
            max_positions=config.model.max_positions,
            default_options=config.decoding,
            device=device,
            compute_type="int8" if int8 else "float32",
            threads=threads,
            replicas=replicas,
        )

    # -- the public verbs (translate comes from Translator) ---------------------------------

    def translate_nbest(
        self,
        sentences: Sequence[str],
        options: DecodingConfig | None = None,
        *,
        return_attention: bool = False,
        first_line: int = 1,
        on_done: TranslationDone | None = None,
    ) -> list[list[Translation]]:
        """Up to ``options.nbest`` translations per sentence, best first (attention: None).
        ``on_done`` as the Translator's, though called as each engine call (one length limit
        of a token-budget batch) returns: CTranslate2 hands a batch's results back together."""
        options = options if options is not None else self.default_options
        if options.stopping == "exact":
            log.warning("CTranslate2 has no 'exact' stopping rule; it stops by its own")
        if options.sampling and options.seed is not None:
            # The seed is the process's: no other call may draw until this one is done.
            with self._seeded:
                import_ctranslate2().set_random_seed(options.seed)
                return self._translate_nbest(sentences, options, first_line, on_done)
        return self._translate_nbest(sentences, options, first_line, on_done)

    def _translate_nbest(
        self,
        sentences: Sequence[str],
        options: DecodingConfig,
        first_line: int,
        on_done: TranslationDone | None,
    ) -> list[list[Translation]]:
        sources = self._encode(sentences, first_line)
        results = CallTranslations(sources, self._translations, on_done)
        for batch in self._batches(sources, options.max_tokens):
            lengths = torch.tensor([len(sources[i].ids) + 1 for i in batch])  # + EOS
            src_mask = torch.arange(int(lengths.max())) < lengths[:, None]
            limits = max_lengths(
                src_mask, options.max_len_a, options.max_len_b, self._max_len_cap
            ).tolist()
            for limit in sorted(set(limits)):
                group = [i for i, n in zip(batch, limits, strict=True) if n == limit]
                found = self._search([sources[i].ids for i in group], limit, options)
                results.add(group, found)
        return results.all()

    def score(
        self, src_ids: Sequence[list[int]], tgt_ids: Sequence[list[int]]
    ) -> list[list[float]]:
        """Teacher-forced log P of each target token and of the final EOS, per pair (the
        engine's ``score_batch``)."""
        results = self.engine.score_batch(self._pieces_of(src_ids), self._pieces_of(tgt_ids))
        return [list(r.log_probs) for r in results]

    # -- behind the scenes ------------------------------------------------------------------

    def _pieces_of(self, rows: Sequence[list[int]]) -> list[list[str]]:
        return [[self._pieces[i] for i in row] for row in rows]

    def _search(
        self, rows: list[list[int]], limit: int, options: DecodingConfig
    ) -> list[list[Hypothesis]]:
        """Hypotheses per source (ids without EOS) whose outputs may hold ``limit`` tokens."""
        if limit == 0:  # CTranslate2 takes no zero limit; nmt's search gives the empty output
            return [[Hypothesis([], 0.0, 0.0)] for _ in rows]
        alpha = options.length_penalty
        kwargs: dict[str, Any] = {
            "max_input_length": 0,  # the Translator has truncated already
            "max_decoding_length": limit,
            "min_decoding_length": 0 if options.allow_empty else 1,
            "length_penalty": alpha,
            "return_scores": True,
        }
        if options.sampling:
            kwargs |= {
                "beam_size": 1,
                "sampling_temperature": options.temperature,
                "sampling_topk": options.top_k or 0,  # 0: the whole vocabulary
                "sampling_topp": options.top_p or 1.0,
            }
        else:
            kwargs |= {
                "beam_size": options.beam_size,
                "num_hypotheses": options.nbest,
                "patience": options.patience or 1.0,
            }
        results = self.engine.translate_batch(self._pieces_of(rows), **kwargs)
        found = []
        for result in results:
            hyps = []
            for pieces, score in zip(result.hypotheses, result.scores, strict=True):
                tokens = [self._piece_ids[p] for p in pieces]
                # CTranslate2's score is log P / |Y|^α (|Y| with EOS); report nmt's.
                log_prob = score * (len(tokens) + 1) ** alpha
                hyps.append(
                    Hypothesis(tokens, log_prob / length_penalty(len(tokens) + 1, alpha), log_prob)
                )
            found.append(hyps)
        return found
