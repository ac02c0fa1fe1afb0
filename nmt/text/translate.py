"""Translating whole texts: every sentence of every text of a call in one batch.

The one Python entry for paragraphs and markup: ``translate_text(translator, texts)``. The
sentences of all texts go to the translator together (so its token-budget batching sees them
all at once, as it sees the lines of a pre-split file), and each text is put back together
(nmt.text.prepare).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from nmt.config import DecodingConfig
from nmt.decoding.translator import Translation, Translator
from nmt.text.markup import Format
from nmt.text.prepare import Prepared, prepare

DEFAULT_LANGUAGE = "en"


def source_language(translator: Translator) -> str:
    """The model's source language (``data.src_lang`` of its config) where the translator knows
    it, else English."""
    return getattr(translator, "source_language", None) or DEFAULT_LANGUAGE


def model_languages(model_dir: Path) -> tuple[str, str]:
    """``data.src_lang`` and ``data.tgt_lang`` of a model directory's (or a run's best model's)
    config."""
    from nmt.config import load_config
    from nmt.models.store import CONFIG_FILE, resolve_model_dir

    data = load_config(resolve_model_dir(model_dir) / CONFIG_FILE).data
    return data.src_lang, data.tgt_lang


def fits_model(translator: Translator) -> Callable[[str], bool] | None:
    """Does a sentence fit the model's positions (its ids and the EOS)? None: no limit known."""
    max_positions = getattr(translator, "max_positions", None)
    if max_positions is None:
        return None
    tokenizer = translator.tokenizer

    def fits(sentence: str) -> bool:
        # SentencePiece gives at most one piece per UTF-8 byte, plus the word-start piece:
        # most sentences fit by that bound without being tokenized twice.
        if len(sentence.encode("utf-8")) + 2 <= max_positions:
            return True
        return len(tokenizer.encode(sentence)) + 1 <= max_positions

    return fits


def prepare_texts(
    translator: Translator,
    texts: Sequence[str],
    *,
    format: Format = "text",
    language: str | None = None,
    accelerator: str | None = None,
    split_lines: bool | None = None,
    name: str = "<text>",
) -> list[Prepared]:
    """``prepare`` each text for this translator's model (its language and positions)."""
    language = language or source_language(translator)
    fits = fits_model(translator)
    return [
        prepare(
            text,
            format=format,
            language=language,
            fits=fits,
            accelerator=accelerator,
            split_lines=split_lines,
            name=name,
        )
        for text in texts
    ]


def translate_prepared(
    translator: Translator,
    prepared: Sequence[Prepared],
    options: DecodingConfig | None = None,
    *,
    with_attention: bool = False,
) -> list[list[Translation]]:
    """The best translation of each sentence of each prepared text, in one batch."""
    sentences = [s for p in prepared for s in p.sentences]
    attention = with_attention or any(p.needs_attention for p in prepared)
    found = translator.translate_nbest(sentences, options, return_alignment=attention)
    out, at = [], 0
    for p in prepared:
        out.append([translations[0] for translations in found[at : at + len(p.sentences)]])
        at += len(p.sentences)
    return out


def translate_text(
    translator: Translator,
    texts: Sequence[str],
    *,
    format: Format = "text",
    options: DecodingConfig | None = None,
    language: str | None = None,
) -> list[str]:
    """Each text translated, sentence by sentence, with its whitespace, line breaks, tags and
    protected spans kept (``format``: text, html or xml)."""
    prepared = prepare_texts(translator, texts, format=format, language=language)
    translations = translate_prepared(translator, prepared, options)
    return [p.restore(t) for p, t in zip(prepared, translations, strict=True)]
