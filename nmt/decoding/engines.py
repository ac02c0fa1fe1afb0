"""The engines that can translate an nmt model: nmt's own search, or CTranslate2's.

``Translator.load(path, engine=...)`` gives either behind the same methods (``translate``,
``translate_nbest`` returning nmt.decoding.translator.Translation), so the CLI and the server
need not know which. The CTranslate2 engine converts an nmt model directory on first use
(nmt.interop.ctranslate2) into a cache inside it, ``MODEL_DIR/.ct2-<fingerprint>`` (or the
user's cache folder when the model's is read-only), keyed by the weights, config, tokenizer and
converter: a changed model converts again. The way in resolves the model directory and
fingerprints it once.

How nmt's decoding options map onto CTranslate2's (nmt.config.DecodingConfig):

- beam_size, nbest (num_hypotheses), patience, sampling with temperature / top_k / top_p /
  seed, prefix (target_prefix), no_repeat_ngram_size, repetition_penalty (on the logits in
  both; an nmt ensemble has no logits and applies it to its log-probabilities): the same
  meaning.
- the length limits a·|X| + b (the maximum capped by the model's positions; the minimum at
  least 1 unless allow_empty) are per sentence in nmt and per call in CTranslate2
  (max_decoding_length, min_decoding_length): sentences of a batch are sent in groups of equal
  limits. An output that reaches the maximum stops there without an EOS in both.
- the length penalty: CTranslate2 divides log P by |Y|^α, nmt by GNMT's ((5 + |Y|) / 6)^α
  (|Y| counts the EOS in both, if there is one). At α = 0 both rank by log P; otherwise the two
  searches may pick different outputs. Scores are reported as nmt's: log P / ((5 + |Y|) / 6)^α.
- stopping: at α = 0 CTranslate2 stops a sentence when its most probable candidate has ended,
  nmt's ``early`` rule with patience None; with α > 0 it waits for round(patience · k) ended
  hypotheses. nmt's ``exact`` bound has no CTranslate2 counterpart (a warning says so).
- PAD and BOS: nmt's search never produces them; CTranslate2 can (a model trained with label
  smoothing gives them its floor of probability, which CTranslate2 picks where a guard has
  banned every likelier piece: a few of 100 toy outputs under no_repeat_ngram_size 1). Where
  a guard or the minimum length bans the likely pieces, BOS can also take a beam that nmt
  gives to another hypothesis (3 % for one toy sentence whose EOS a minimum length banned),
  and the outputs may then differ even where CTranslate2's final one holds no BOS: about one
  sentence in 100 under no_repeat_ngram_size 2 or a minimum length, beam 4 (the test traces
  each back to such a beam). Banning them there (``suppress_sequences``) would renormalise its
  log-probabilities over the other tokens at every step: measured, scores moved by up to 0.4
  and more outputs differed (1–4 of 100, against 0–1).
  The guards and the minimum length renormalise in both engines (nmt.decoding.search).
- glossary: nmt only (lexically constrained search, nmt.decoding.constraints); CTranslate2 has
  none, and a glossary given to it is refused with one line rather than silently ignored.
- per-token log-probabilities: CTranslate2's ``return_logits_vocab`` (the step's scores, its
  penalties applied), gathered at the chosen tokens; alignments: its ``return_attention``.

So nmt and CTranslate2 (float32) give identical outputs with α = 0 and stopping ``early``,
length limit, prefix, no_repeat_ngram_size, repetition_penalty and minimum length included
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
from nmt.data.tokenizer import EOS_ID, Tokenizer
from nmt.decoding.alignment import piece_alignment
from nmt.decoding.search import Hypothesis, length_penalty, max_lengths, min_lengths
from nmt.decoding.translator import CallTranslations, NbestCall, Translation, Translator
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


def load_engine(
    model_dirs: Sequence[Path],
    *,
    engine: str = "nmt",
    int8: bool = False,
    device: str = "cpu",
    threads: int | None = None,
    parallel: int = 1,
    shortlist: bool = False,
    packed: bool = True,
) -> Translator:
    """What Translator.load does (see there): the chosen engine for model directories.
    ``packed``: nmt float32 on the CPU with oneDNN-packed linear layers (nmt.models.packed)."""
    if not model_dirs:
        raise NmtError("no model directory given")
    if threads is not None and threads < 1:
        raise NmtError(f"threads: must be at least 1, not {threads}")
    if engine not in ENGINES:
        raise NmtError(f"engine {engine!r}: choose one of {', '.join(ENGINES)}")
    resolved = [resolve_model_dir(Path(d)) for d in model_dirs]
    if engine == "ctranslate2":
        if shortlist:
            raise NmtError("--shortlist: nmt engine only (CTranslate2's vmap is not wired)")
        if len(resolved) != 1:
            raise NmtError("--engine ctranslate2 takes one model; ensembles: --engine nmt")
        return CTranslate2Translator.from_model_dir(
            resolved[0], int8=int8, device=device, threads=threads, replicas=parallel
        )
    if threads is not None:
        torch.set_num_threads(threads)
    if int8 and check_device(device).type != "cpu":
        raise NmtError("--int8 runs on the CPU only (PyTorch's dynamic quantization)")
    translator = Translator.from_loaded(resolved, device=device)
    if shortlist:
        from nmt.decoding.shortlist import load_for_model

        translator.shortlist = load_for_model(resolved[0])
    if int8:
        from nmt.models.quantize import quantize_int8

        # Still the same model class, its nn.Linear layers swapped for quantized ones.
        model = quantize_int8(cast(nn.Module, translator.model))
        translator.model = cast(Seq2SeqModel, model)
    if check_device(device).type == "cpu" and packed:
        from nmt.models.packed import pack_linear_layers

        # float32 linear weights (with --int8, those of the layers it leaves in float32)
        # reordered once for oneDNN (faster from 4 rows up).
        translator.model = cast(Seq2SeqModel, pack_linear_layers(cast(nn.Module, translator.model)))
    return translator


# -- the CTranslate2 model cache ------------------------------------------------------------------


def _user_cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "nmt" / "ctranslate2"


def converted_model(model_dir: Path) -> Path:
    """The CTranslate2 conversion (float32) of ``model_dir`` (a model directory itself, see
    resolve_model_dir), made now if not cached there (or, for a read-only model directory, in
    the user's cache folder)."""
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

    engine_name = "ctranslate2"  # what CTranslate2Translator.load loads (benchmarks call it)

    def __init__(
        self,
        ct2_dir: Path,
        tokenizer: Tokenizer,
        *,
        max_positions: int | None,
        eos_id: int = EOS_ID,
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
        self._eos_id = eos_id
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
    def from_model_dir(
        cls,
        model_dir: Path,
        *,
        device: str = "cpu",
        int8: bool = False,
        threads: int | None = None,
        replicas: int = 1,
    ) -> CTranslate2Translator:
        """The engine for a (resolved) nmt model directory, converted (and cached) first."""
        from nmt.config import load_config
        from nmt.data.tokenizer import load_tokenizer

        ct2_dir = converted_model(model_dir)
        config = load_config(model_dir / CONFIG_FILE)
        return cls(
            ct2_dir,
            load_tokenizer(model_dir),
            max_positions=config.model.max_positions,
            eos_id=EOS_ID if config.model.eos_id is None else config.model.eos_id,
            default_options=config.decoding,
            device=device,
            compute_type="int8" if int8 else "float32",
            threads=threads,
            replicas=replicas,
        )

    # -- the public verbs (translate and translate_nbest come from Translator) --------------

    def score(
        self, src_ids: Sequence[list[int]], tgt_ids: Sequence[list[int]]
    ) -> list[list[float]]:
        """Teacher-forced log P of each target token and of the final EOS, per pair (the
        engine's ``score_batch``)."""
        results = self.engine.score_batch(self._pieces_of(src_ids), self._pieces_of(tgt_ids))
        return [list(r.log_probs) for r in results]

    # -- behind the scenes ------------------------------------------------------------------

    def _translate_call(self, sentences: Sequence[str], call: NbestCall) -> list[list[Translation]]:
        """CTranslate2's search for Translator.translate_nbest: attention None; alignments
        from CTranslate2's attention; ``return_scores``: token log-probabilities, by scoring
        the outputs once more. ``on_done`` is called as each engine call (one length limit of
        a token-budget batch) returns: CTranslate2 hands a batch's results back together.
        There is no beam trace, no glossary and no 'exact' stopping rule."""
        options = call.options
        if call.observer is not None:
            raise NmtError("the beam search trace needs --engine nmt (CTranslate2 shows none)")
        if options.glossary:
            raise NmtError("a glossary needs --engine nmt: CTranslate2 has no constrained search")
        if options.stopping == "exact":
            log.warning("CTranslate2 has no 'exact' stopping rule; it stops by its own")
        if options.sampling and options.seed is not None:
            # The seed is the process's: no other call may draw until this one is done.
            with self._seeded:
                import_ctranslate2().set_random_seed(options.seed)
                return self._search_batches(sentences, call)
        return self._search_batches(sentences, call)

    def _search_batches(self, sentences: Sequence[str], call: NbestCall) -> list[list[Translation]]:
        options = call.options
        sources = self._encode(sentences, call.first_line)
        prefix_ids = self._prefixes(sources, options, call.prefixes, call.first_line)
        results = CallTranslations(
            sources, self._translations, call.on_done, alignment=call.alignment
        )
        for batch in self._wanted_batches(sources, call, results):
            lengths = torch.tensor([len(sources[i].ids) + 1 for i in batch])  # + EOS
            src_mask = torch.arange(int(lengths.max())) < lengths[:, None]
            limits = max_lengths(src_mask, options.max_len_a, options.max_len_b, self._max_len_cap)
            minimums = min_lengths(src_mask, options, limits)
            bounds = list(zip(minimums.tolist(), limits.tolist(), strict=True))
            for bound in sorted(set(bounds)):
                group = [i for i, b in zip(batch, bounds, strict=True) if b == bound]
                found = self._search(
                    [sources[i].ids for i in group],
                    [prefix_ids[i] for i in group],
                    bound,
                    call,
                )
                results.add(group, found)
        return results.all()

    def _pieces_of(self, rows: Sequence[list[int]]) -> list[list[str]]:
        return [[self._pieces[i] for i in row] for row in rows]

    def _search(
        self,
        rows: list[list[int]],
        prefixes: list[list[int]],
        bounds: tuple[int, int],
        call: NbestCall,
    ) -> list[list[Hypothesis]]:
        """Hypotheses per source (ids without EOS) whose outputs hold between ``bounds``
        tokens (minimum, maximum), starting with their ``prefixes``."""
        minimum, limit = bounds
        if limit == 0:  # CTranslate2 takes no zero limit; nmt's search gives the empty output
            return [[Hypothesis([], 0.0, 0.0)] for _ in rows]
        options = call.options
        alpha = options.length_penalty
        kwargs: dict[str, Any] = {
            "max_input_length": 0,  # the Translator has truncated already
            "max_decoding_length": limit,
            "min_decoding_length": minimum,
            "length_penalty": alpha,
            "no_repeat_ngram_size": options.no_repeat_ngram_size,
            "repetition_penalty": options.repetition_penalty,
            "return_scores": True,
            "return_end_token": True,  # tells an ended output from one stopped at the limit
            "return_attention": call.alignment,
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
        target_prefix = [self._pieces_of([p])[0] if p else None for p in prefixes]
        results = self.engine.translate_batch(
            self._pieces_of(rows),
            target_prefix if any(prefixes) else None,
            **kwargs,
        )
        eos = self._pieces[self._eos_id]
        found = []
        for row, result in zip(rows, results, strict=True):
            hyps = []
            attention = result.attention if call.alignment else [None] * len(result.hypotheses)
            for pieces, score, weights in zip(
                result.hypotheses, result.scores, attention, strict=True
            ):
                ended = bool(pieces) and pieces[-1] == eos
                ids = [self._piece_ids[p] for p in pieces]  # EOS last if it ended
                tokens = ids[:-1] if ended else ids
                # CTranslate2's score is log P / |Y|^α (|Y| with EOS if any); nmt's below.
                log_prob = score * len(ids) ** alpha
                alignment = None
                if weights is not None:
                    alignment = piece_alignment(torch.tensor(weights), len(row), len(tokens))
                hyps.append(Hypothesis(tokens, 0.0, log_prob, ended=ended, alignment=alignment))
            found.append(hyps)
        if call.scores or any(prefixes):
            self._add_model_scores(rows, prefixes, found)
        for hyps in found:
            for h in hyps:
                h.score = h.log_prob / length_penalty(len(h.tokens) + h.ended, alpha)
        return found

    def _add_model_scores(
        self, rows: list[list[int]], prefixes: list[list[int]], found: list[list[Hypothesis]]
    ) -> None:
        """Each hypothesis's token log-probabilities, teacher-forced (``score_batch``; the
        model's own, as nmt's search reports them); and since CTranslate2's score leaves a
        target prefix out, its log P added to the hypothesis's (nmt's scores count it)."""
        pairs = [(row, h) for row, hyps in zip(rows, found, strict=True) for h in hyps]
        scored = self.score([row for row, _ in pairs], [h.tokens for _, h in pairs])
        by_row = {id(h): s for (_, h), s in zip(pairs, scored, strict=True)}
        for prefix, hyps in zip(prefixes, found, strict=True):
            for h in hyps:
                token_log_probs = by_row[id(h)]  # the tokens', then the EOS's
                h.token_log_probs = token_log_probs if h.ended else token_log_probs[:-1]
                h.log_prob += sum(token_log_probs[: len(prefix)])
