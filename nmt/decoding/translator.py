"""Text in, text out: tokenization, token-budget batches and search behind one object.

Search (nmt.decoding.search) knows only ids; this module turns sentences into padded id batches
(shortest first, at most ``max_tokens`` source tokens each, padding and EOS included), runs the
search the options ask for and puts the detokenized outputs back in input order.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import cast

import numpy as np
import torch
from torch import Tensor

from nmt.config import DecodingConfig
from nmt.data.batching import group_by_length, pad_sequences
from nmt.data.tokenizer import Tokenizer
from nmt.decoding.constraints import word_continuations
from nmt.decoding.glossary import (
    SentenceTerms,
    glossary_selector,
    glossary_terms,
    warn_missing,
)
from nmt.decoding.search import (
    BeamStep,
    Hypothesis,
    SentenceDone,
    beam_search,
    special_ids,
)
from nmt.decoding.shortlist import Shortlist
from nmt.errors import NmtError
from nmt.models.interface import Seq2SeqModel

log = logging.getLogger(__name__)


@dataclass
class Translation:
    """One output: detokenized text, its ids (no BOS/EOS), its search score, the pieces behind
    them and, if asked for, the attention that produced it and the word alignment it gives.

    ``attention`` (L, H, T, S) holds the cross-attention weights the model computed while
    decoding this output, per layer L and head H: T = len(tgt_pieces) + 1, the last row being
    the step that produced EOS (T = len(tgt_pieces) for an output stopped at the length limit,
    ``ended`` false); S = len(src_pieces) + 1, the last column being the EOS appended to every
    source. None for a model without attention, for CTranslate2, or when not asked for.
    """

    text: str
    tokens: list[int]
    score: float
    src_pieces: list[str] = field(default_factory=list)
    """The source's pieces as the model saw them (after any truncation), without the EOS."""
    tgt_pieces: list[str] = field(default_factory=list)
    """The output's pieces, one per id in ``tokens``."""
    truncated: bool = False
    """The source was longer than the model takes and was cut to its limit."""
    attention: Tensor | None = None
    log_prob: float = 0.0
    """log P of the output (its EOS included if it has one): ``score`` before the length
    penalty."""
    token_log_probs: list[float] = field(default_factory=list)
    """log P of each output piece, then of the EOS if it has one (both engines)."""
    ended: bool = True
    """The output ended with EOS; False: it stopped at the length limit."""
    alignment: list[tuple[int, int]] | None = None
    """With ``return_alignment``: (source piece, target piece) pairs, each target piece linked
    to the source piece it attended to most (nmt.decoding.alignment)."""


# Called with a sentence's index in the call and its n-best list, as soon as it is known.
TranslationDone = Callable[[int, list[Translation]], None]


@dataclass
class _Source:
    ids: list[int]  # [] for a blank line
    truncated: bool


Observe = Callable[[BeamStep], None]  # a BeamStep whose ``sentence`` is the call's index
Wanted = Callable[[int], bool]  # is the call's sentence i still wanted?


@dataclass(frozen=True)
class NbestCall:
    """One translate_nbest call's arguments beside its sentences (see there), as the engines'
    searches (``Translator._translate_call``) receive them."""

    options: DecodingConfig
    prefixes: Sequence[str | None] | None
    first_line: int
    on_done: TranslationDone | None
    observer: Observe | None
    wanted: Wanted | None
    attention: bool  # return_attention
    alignment: bool  # return_alignment
    scores: bool  # return_scores


def model_positions(model: object) -> int | None:
    """The longest sequence ``model`` takes, if it says: its ``max_positions`` or its config's."""
    for owner in (model, getattr(model, "config", None)):
        value = getattr(owner, "max_positions", None)
        if isinstance(value, int):
            return value
    return None


class Translator:
    """Translate sentences with a model in eval mode on ``device`` (see :meth:`load`).

    ``max_positions`` is the longest sequence the model accepts (None: the model's own, if it
    says): longer sources are truncated to it (EOS included), with a warning, and outputs are
    capped to fit it too. ``default_options`` serve every call that passes no options (for a
    model directory: its config's ``decoding`` section). ``shortlist``: restrict each batch's
    output layer to the target pieces it makes likely (nmt.decoding.shortlist); None: all.
    """

    engine_name = "nmt"  # what Translator.load loads unless told otherwise

    def __init__(
        self,
        model: Seq2SeqModel,
        tokenizer: Tokenizer,
        *,
        device: str | torch.device = "cpu",
        max_positions: int | None = None,
        default_options: DecodingConfig | None = None,
        shortlist: Shortlist | None = None,
    ) -> None:
        if max_positions is None:
            max_positions = model_positions(model)
        if max_positions is not None and max_positions < 2:
            raise ValueError(f"max_positions must be >= 2 (a token and EOS), not {max_positions}")
        self.model = model
        self.tokenizer = tokenizer
        self.device = torch.device(device)
        self.max_positions = max_positions
        self.default_options = default_options or DecodingConfig()
        self.shortlist = shortlist

    @classmethod
    def load(
        cls,
        model_dir: Path | str | Sequence[Path | str],
        *,
        engine: str | None = None,
        int8: bool = False,
        device: str = "cpu",
        threads: int | None = None,
        parallel: int = 1,
        shortlist: bool = False,
    ) -> Translator:
        """The one way in from Python: a Translator for a model directory (or a run
        directory's best model); given several, for their ensemble (nmt.models.ensemble: the
        mean of their probabilities; nmt engine only).

        ``engine``: who searches, ``nmt`` (``int8``: its linear layers quantized,
        nmt.models.quantize) or ``ctranslate2`` on a cached conversion (``int8``: int8
        weights and matmuls), nmt.decoding.engines; None: this class's own. ``threads``: CPU
        threads for the search (None: the engine's default; for nmt, PyTorch's process-wide
        setting). ``parallel``: how many calls may run at once from different threads
        (CTranslate2 keeps a replica for each; nmt's model is shared, read-only).
        ``shortlist``: use the vocabulary shortlist built beside the model (``nmt shortlist``;
        nmt engine only)."""
        from nmt.decoding.engines import load_engine

        dirs = [model_dir] if isinstance(model_dir, str | Path) else list(model_dir)
        return load_engine(
            [Path(d) for d in dirs],
            engine=engine or cls.engine_name,
            int8=int8,
            device=device,
            threads=threads,
            parallel=parallel,
            shortlist=shortlist,
        )

    @classmethod
    def from_loaded(cls, model_dirs: Sequence[Path], *, device: str = "cpu") -> Translator:
        """nmt's own engine for resolved model directories (see :meth:`load`)."""
        from nmt.models.ensemble import load_models

        loaded = load_models(model_dirs, device=device)
        return cls(
            cast(Seq2SeqModel, loaded.model),  # build_model's models all honour the contract
            loaded.tokenizer,
            device=device,
            max_positions=loaded.config.model.max_positions,
            default_options=loaded.config.decoding,
        )

    # -- the public verbs -------------------------------------------------------------------

    def translate(
        self,
        sentences: Sequence[str],
        options: DecodingConfig | None = None,
        *,
        first_line: int = 1,
    ) -> list[str]:
        """The best translation of each sentence, in input order.

        ``first_line`` is the line number of ``sentences[0]`` in warnings.
        """
        results = self.translate_nbest(sentences, options, first_line=first_line)
        return [translations[0].text for translations in results]

    def translate_nbest(
        self,
        sentences: Sequence[str],
        options: DecodingConfig | None = None,
        *,
        return_attention: bool = False,
        return_alignment: bool = False,
        return_scores: bool = False,
        prefixes: Sequence[str | None] | None = None,
        first_line: int = 1,
        on_done: TranslationDone | None = None,
        observer: Observe | None = None,
        wanted: Wanted | None = None,
    ) -> list[list[Translation]]:
        """Up to ``options.nbest`` translations per sentence, best first.

        A blank sentence gets one empty translation scored 0. With ``return_attention`` each
        translation carries the attention its model computed for it, with
        ``return_alignment`` its piece alignment (see Translation). ``return_scores``: fill
        ``token_log_probs`` (nmt's search always does, at no cost; CTranslate2 needs asking).
        ``prefixes``: per sentence, the text its output must start with (None:
        ``options.prefix``).
        ``on_done(i, translations)`` is called once per sentence with what is returned for it,
        as soon as its search has ended: before the slowest sentence of its batch has.
        ``observer`` receives every step of every sentence's search (nmt.decoding.trace).
        ``wanted(i)`` is asked as each length-sorted batch begins whether sentence i is still
        wanted (a server's client may have hung up); one that is not is never searched and
        gets no translations (an empty list, and no ``on_done``).
        Engines differ only in how they search (``_translate_call``).
        """
        options = options if options is not None else self.default_options
        call = NbestCall(
            options,
            prefixes,
            first_line,
            on_done,
            observer,
            wanted,
            attention=return_attention,
            alignment=return_alignment,
            scores=return_scores,
        )
        return self._translate_call(sentences, call)

    # -- behind the scenes ------------------------------------------------------------------

    def _translate_call(self, sentences: Sequence[str], call: NbestCall) -> list[list[Translation]]:
        """nmt's search: beam search (or sampling) batch by batch."""
        options = call.options
        ids = special_ids(self.model)
        generator = None
        if options.sampling:
            generator = torch.Generator(device=self.device)
            if options.seed is None:
                generator.seed()
            else:
                generator.manual_seed(options.seed)
        sources = self._encode(sentences, call.first_line)
        prefix_ids = self._prefixes(sources, options, call.prefixes, call.first_line)
        terms = glossary_terms(
            sentences,
            [len(s.ids) for s in sources],
            options,
            self.tokenizer,
            max_len_cap=self._max_len_cap,
            first_line=call.first_line,
        )
        results = CallTranslations(
            sources, self._translations, call.on_done, alignment=call.alignment
        )
        observer = call.observer
        for batch in self._wanted_batches(sources, call, results):
            rows = [sources[i].ids for i in batch]
            src = pad_sequences(rows, suffix=ids.eos).to(self.device)
            lengths = torch.tensor([len(row) + 1 for row in rows], device=self.device)
            src_mask = torch.arange(src.size(1), device=self.device) < lengths[:, None]
            src = src.masked_fill(~src_mask, ids.pad)
            found = beam_search(
                self.model,
                src,
                src_mask,
                options,
                prefixes=[prefix_ids[i] for i in batch],
                generator=generator,
                max_len_cap=self._max_len_cap,
                record_attention=call.attention or call.alignment,
                on_done=results.of_batch(batch),
                observer=None if observer is None else _in_call(observer, batch),
                selector=None
                if terms is None
                else glossary_selector(
                    [terms[i] for i in batch], ids.eos, self._word_continuations
                ),
                vocabulary=self._vocabulary(
                    src,
                    [prefix_ids[i] for i in batch],
                    None if terms is None else [terms[i] for i in batch],
                ),
            )
            results.add(batch, found)
        translations = results.all()
        if terms is not None:
            searched = [i for i, t in enumerate(translations) if t]
            outputs = [translations[i][0].tokens for i in searched]
            warn_missing([terms[i] for i in searched], outputs, call.first_line)
        return translations

    def _wanted_batches(
        self, sources: list[_Source], call: NbestCall, results: CallTranslations
    ) -> Iterator[list[int]]:
        """The call's token-budget batches (sentence indices), each less the sentences that
        ``call.wanted`` no longer wants as it begins (given up in ``results``)."""
        for batch in self._batches(sources, call.options.max_tokens):
            if call.wanted is not None:
                keep = [call.wanted(i) for i in batch]
                results.give_up([i for i, k in zip(batch, keep, strict=True) if not k])
                batch = [i for i, k in zip(batch, keep, strict=True) if k]
            if batch:
                yield batch

    def _vocabulary(
        self, src: Tensor, prefixes: list[list[int]], terms: list[SentenceTerms] | None
    ) -> Tensor | None:
        """The shortlist's target ids for a batch ``src``; None (the full vocabulary) without a
        shortlist, or where a token the search must write (a prefix's, a term's) lies outside
        it: the exact fallback."""
        if self.shortlist is None:
            return None
        ids = special_ids(self.model)
        candidates = self.shortlist.candidates(src.cpu(), pad_id=ids.pad)
        forced = [ids.eos, *(t for p in prefixes for t in p)]
        forced += [t for found in terms or [] for phrase in found.phrases for t in phrase]
        if not Shortlist.covers(candidates, torch.tensor(forced, dtype=torch.long)):
            return None
        return candidates.to(self.device)

    @property
    def _max_len_cap(self) -> int | None:
        # The decoder reads BOS + max_len tokens; one more position is fed to score the EOS.
        return None if self.max_positions is None else self.max_positions - 1

    @cached_property
    def _pieces(self) -> list[str]:
        return self.tokenizer.pieces()

    @cached_property
    def _word_continuations(self) -> Tensor:
        return word_continuations(self._pieces).to(self.device)

    def _translations(
        self, source: _Source, hyps: list[Hypothesis], alignment: bool
    ) -> list[Translation]:
        from nmt.decoding.alignment import alignment_of

        src_pieces = [self._pieces[i] for i in source.ids]
        if not hyps:  # a blank line
            return [Translation("", [], 0.0, src_pieces, [], source.truncated)]
        translations = []
        for h in hyps:
            translation = Translation(
                text=self.tokenizer.decode(h.tokens),
                tokens=h.tokens,
                score=h.score,
                src_pieces=src_pieces,
                tgt_pieces=[self._pieces[i] for i in h.tokens],
                truncated=source.truncated,
                attention=h.attention,
                log_prob=h.log_prob,
                token_log_probs=h.token_log_probs,
                ended=h.ended,
            )
            if alignment:
                translation.alignment = (
                    h.alignment if h.alignment is not None else alignment_of(translation)
                )
            translations.append(translation)
        return translations

    def _prefixes(
        self,
        sources: list[_Source],
        options: DecodingConfig,
        prefixes: Sequence[str | None] | None,
        first_line: int,
    ) -> list[list[int]]:
        """The target prefix ids of each sentence, checked against its length limit: a prefix
        that cannot fit is one NmtError naming the option and the line."""
        from nmt.decoding.search import max_lengths

        if prefixes is not None and len(prefixes) != len(sources):
            raise NmtError(f"prefix: {len(prefixes)} prefixes for {len(sources)} sentences")
        texts = prefixes if prefixes is not None else [options.prefix] * len(sources)
        if not any(texts):
            return [[] for _ in sources]
        encode_target = getattr(self.tokenizer, "encode_target", self.tokenizer.encode)
        found = []
        for i, (source, text) in enumerate(zip(sources, texts, strict=True)):
            ids = encode_target(text) if text and source.ids else []
            mask = torch.ones(1, len(source.ids) + 1, dtype=torch.bool)
            limit = int(
                max_lengths(mask, options.max_len_a, options.max_len_b, self._max_len_cap)[0]
            )
            if len(ids) > limit:
                raise NmtError(
                    f"prefix: {len(ids)} tokens, more than the {limit} the output of line "
                    f"{first_line + i} may hold (max_len_a · |X| + max_len_b, the model's "
                    "positions)"
                )
            found.append(ids)
        return found

    def _encode(self, sentences: Sequence[str], first_line: int) -> list[_Source]:
        """Ids per sentence ([] for a blank one), truncated to the model's limit with a warning."""
        sources = [_Source(ids, False) for ids in self._tokenize(sentences)]
        if self.max_positions is None:
            return sources
        limit = self.max_positions - 1  # room for the EOS every source gets
        for i, source in enumerate(sources):
            if len(source.ids) > limit:
                log.warning(
                    "line %d: %d tokens, more than the model's limit of %d; "
                    "translating the first %d only",
                    first_line + i,
                    len(source.ids),
                    limit,
                    limit,
                )
                sources[i] = _Source(source.ids[:limit], True)
        return sources

    def _tokenize(self, sentences: Sequence[str]) -> list[list[int]]:
        """Ids per sentence; a blank sentence gets [] without reaching the tokenizer."""
        nonblank = [s for s in sentences if s.strip()]
        encoded = iter(self.tokenizer.encode_batch(nonblank) if nonblank else [])
        return [next(encoded) if s.strip() else [] for s in sentences]

    def _batches(self, sources: list[_Source], max_tokens: int) -> list[list[int]]:
        """Indices of the non-blank sentences, shortest first, cut within the token budget."""
        lengths = np.array([len(s.ids) + 1 for s in sources], dtype=np.int64)  # + EOS
        order = np.array(
            [i for i in np.argsort(lengths, kind="stable") if sources[i].ids], dtype=np.int64
        )
        # group_by_length budgets source and target; translation has no target yet.
        batches = group_by_length(order, lengths, np.zeros_like(lengths), max_tokens)
        return [[int(i) for i in batch] for batch in batches]


def _in_call(observer: Observe, batch: list[int]) -> Callable[[BeamStep], None]:
    """The search's observer for ``batch``: its steps renumbered to the call's sentences."""
    return lambda step: observer(replace(step, sentence=batch[step.sentence]))


class CallTranslations:
    """The translations of one call as its searches finish them, each passed on (``on_done``)
    the moment it is known: blank sentences at once, the others when their search ends."""

    def __init__(
        self,
        sources: list[_Source],
        make_translations: Callable[[_Source, list[Hypothesis], bool], list[Translation]],
        on_done: TranslationDone | None,
        *,
        alignment: bool = False,
    ) -> None:
        self.sources, self.make_translations, self.on_done = sources, make_translations, on_done
        self.alignment = alignment
        self.done: list[list[Translation] | None] = [None] * len(sources)
        for i, source in enumerate(sources):
            if not source.ids:
                self.finish(i, [])

    def finish(self, i: int, hyps: list[Hypothesis]) -> None:
        if self.done[i] is not None:
            return
        self.done[i] = translations = self.make_translations(self.sources[i], hyps, self.alignment)
        if self.on_done is not None:
            self.on_done(i, translations)

    def of_batch(self, batch: list[int]) -> SentenceDone | None:
        """The search's ``on_done`` for ``batch`` (indices into the call's sentences)."""
        if self.on_done is None:
            return None  # translations are made once, at the end
        return lambda row, hyps: self.finish(batch[row], hyps)

    def add(self, batch: list[int], found: list[list[Hypothesis]]) -> None:
        """A batch's returned hypotheses (the sentences its search did not pass on already)."""
        for i, hyps in zip(batch, found, strict=True):
            self.finish(i, hyps)

    def give_up(self, unwanted: list[int]) -> None:
        """Sentences no one waits for any more: never searched, no translations, no
        ``on_done``."""
        for i in unwanted:
            if self.done[i] is None:
                self.done[i] = []

    def all(self) -> list[list[Translation]]:
        assert all(t is not None for t in self.done), "a sentence was never translated"
        return cast(list[list[Translation]], self.done)
