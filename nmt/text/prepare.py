"""A text (plain, HTML or XML) as the sentences to translate, and the way back.

``prepare`` finds the text's sentences (nmt.text.segment), takes tags and untranslatable spans
out of them (nmt.text.markup, nmt.text.protect) and cuts a sentence the model cannot take whole;
``Prepared.restore`` puts the translations back in their places: the whitespace, line breaks
and blank lines between sentences as they were, tags and protected spans around the target
words aligned to the source words they surrounded (nmt.text.placement).

A sentence without markup or protected spans comes back as its translation exactly, so a
paragraph's sentences are translated as each would be alone.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from nmt.decoding.alignment import word_alignment_of
from nmt.decoding.translator import Translation
from nmt.text.markup import (
    Format,
    Item,
    Kept,
    Tag,
    Text,
    escape,
    is_boundary,
    parse,
    translatable_attributes,
)
from nmt.text.placement import Marker, alignment_matrix, place, render
from nmt.text.protect import protected_spans
from nmt.text.segment import cut_pieces, cut_to_fit, sentence_spans

Fits = Callable[[str], bool]
_WORD = re.compile(r"\S+")


@dataclass
class Unit:
    """One source sentence: what the model translates (``pieces``: one, or several when the
    sentence was cut to fit) and what goes back around the target words."""

    pieces: list[str]
    markers: list[Tag | Kept]
    """Tags and kept spans, in order (written with their current attributes at restore)."""
    spacing: list[tuple[bool, bool]]
    """Per marker: is it apart from the word before it, and from the word after it (not glued
    to a letter or digit in the source)?"""
    word_slots: list[int]
    """Per source word (of the pieces, in order): how many markers precede it."""
    accelerators: list[tuple[str, int]]
    """(mark, source word it marked)."""
    format: Format

    @property
    def needs_attention(self) -> bool:
        return bool(self.pieces) and bool(self.markers or self.accelerators)

    def restore(self, translations: Sequence[Translation]) -> str:
        assert len(translations) == len(self.pieces)
        if not self.markers and not self.accelerators:
            return escape(" ".join(t.text for t in translations if t.text), self.format)
        words: list[str] = []
        blocks = []
        for piece, translation in zip(self.pieces, translations, strict=True):
            tgt, src = translation.text.split(), _WORD.findall(piece)
            pairs = (
                word_alignment_of(translation)
                if translation.alignment is not None or translation.attention is not None
                else None
            )
            blocks.append(alignment_matrix(pairs, translation.tgt_pieces, len(tgt), len(src)))
            words += tgt
        alignment = _block_diagonal(blocks)
        for mark, source_word in self.accelerators:
            if words:
                j = int(alignment[:, source_word].argmax()) if alignment.size else 0
                words[j] = mark + words[j]
        markers = [
            Marker(item.render(), before, after)
            for item, (before, after) in zip(self.markers, self.spacing, strict=True)
        ]
        positions = place(self.word_slots, len(markers), alignment)
        if not words:  # nothing translated: the marks the sentence held, in order
            return "".join(m for m, _ in self.accelerators) + "".join(m.text for m in markers)
        return render([escape(w, self.format) for w in words], markers, positions)


@dataclass
class Attribute:
    """A translated attribute (``alt``, ``title``): its text, set on the tag before the tag is
    written."""

    tag: Tag
    name: str
    parts: list[Part]


Part = str | Unit | Item | Attribute


@dataclass
class Prepared:
    """The sentences to translate (``sentences``, in order) and how to put them back."""

    parts: list[Part]
    sentences: list[str] = field(init=False)
    needs_attention: bool = field(init=False)
    """Are tags or protected spans placed by alignment (ask the search for attention)?"""

    def __post_init__(self) -> None:
        units = list(_units(self.parts))
        self.sentences = [piece for unit in units for piece in unit.pieces]
        self.needs_attention = any(unit.needs_attention for unit in units)

    @property
    def num_sentences(self) -> int:
        """Source sentences (a sentence cut to fit counts once)."""
        return sum(1 for _ in _units(self.parts))

    def restore(self, translations: Sequence[Translation]) -> str:
        """The translated text: ``translations[i]`` is the translation of ``sentences[i]``."""
        if len(translations) != len(self.sentences):
            raise ValueError(
                f"{len(translations)} translations for {len(self.sentences)} sentences"
            )
        return _restore(self.parts, iter(translations))


def _restore(parts: list[Part], translations: Iterator[Translation]) -> str:
    out = []
    for part in parts:
        if isinstance(part, str):
            out.append(part)
        elif isinstance(part, Unit):
            out.append(part.restore([next(translations) for _ in part.pieces]))
        elif isinstance(part, Attribute):
            part.tag.attributes[part.name] = _restore(part.parts, translations)
        else:
            assert not isinstance(part, Text), "gaps are written as strings"
            out.append(part.render())
    return "".join(out)


def _units(parts: list[Part]) -> Iterator[Unit]:
    for part in parts:
        if isinstance(part, Unit):
            yield part
        elif isinstance(part, Attribute):
            yield from _units(part.parts)


def prepare(
    text: str,
    *,
    format: Format = "text",
    language: str = "en",
    fits: Fits | None = None,
    accelerator: str | None = None,
    split_lines: bool | None = None,
    name: str = "<text>",
) -> Prepared:
    """The sentences of ``text`` and the way to put their translations back.

    ``format``: ``text`` (every line break ends a sentence), ``html`` or ``xml`` (a fragment;
    inline tags are placed by alignment, block tags end sentences). ``language``: the source
    language, for sentence splitting. ``fits(sentence)``: can the model take it whole? (None:
    no cutting). ``accelerator``: the accelerator mark of a catalogue, also found inside words.
    ``split_lines``: does a line break end a sentence (None: in plain text only)? ``name``: the
    file named in errors.
    """
    return prepare_items(
        parse(text, format, name=name),
        format=format,
        language=language,
        fits=fits,
        accelerator=accelerator,
        split_lines=split_lines,
    )


def prepare_items(
    items: list[Item],
    *,
    format: Format,
    language: str,
    fits: Fits | None,
    accelerator: str | None = None,
    split_lines: bool | None = None,
) -> Prepared:
    """``prepare`` for items already parsed (nmt.text.markup), e.g. a whole HTML page."""
    split = format == "text" if split_lines is None else split_lines
    builder = _Builder(format, language, fits, accelerator, split)
    attributes: list[Part] = []
    for item in items:
        for tag, name in translatable_attributes(item):
            text_builder = _Builder("text", language, fits, accelerator, True)
            text_builder.add_run([Text(tag.attributes[name])])
            attributes.append(Attribute(tag, name, text_builder.parts))
    run: list[Item] = []
    for item in items:
        if is_boundary(item):
            builder.add_run(run)
            builder.parts.append(item)
            run = []
        else:
            run.append(item)
    builder.add_run(run)
    return Prepared([*attributes, *builder.parts])


class _Builder:
    """Turns runs of inline items (between block boundaries) into gaps and Units."""

    def __init__(
        self,
        format: Format,
        language: str,
        fits: Fits | None,
        accelerator: str | None,
        split_lines: bool,
    ) -> None:
        self.format, self.language, self.fits = format, language, fits
        self.accelerator, self.split_lines = accelerator, split_lines
        self.parts: list[Part] = []

    def add_run(self, run: list[Item]) -> None:
        items = [protected for item in run for protected in self._protect(item)]
        block, starts = "", []
        for item in items:
            starts.append(len(block))
            block += (
                item.text if isinstance(item, Text) else item.raw if isinstance(item, Kept) else ""
            )
        spans = sentence_spans(block, language=self.language, split_lines=self.split_lines)
        segments: list[list[tuple[int, Item]]] = [[] for _ in range(2 * len(spans) + 1)]
        opened: dict[int, tuple[int, int]] = {}  # element id → where its start tag went
        for item, start in zip(items, starts, strict=True):
            start_tag = opened.get(id(item.element)) if isinstance(item, Tag) and item.end else None
            if start_tag is not None and start_tag[0] == start:
                # An element with nothing in it (``<a name="x"></a>`` before a heading's text)
                # stays whole where its start tag went: at a sentence's edge the two tags
                # would otherwise fall on either side of it, the end tag first.
                segments[start_tag[1]].append((start, item))
                continue
            for index, offset, piece in self._place(item, start, spans):
                segments[index].append((offset, piece))
                if isinstance(piece, Tag) and not piece.end:
                    opened[id(piece.element)] = (start, index)
        for index, segment in enumerate(segments):
            if index % 2 == 0:  # a gap between sentences: written as it was
                self.parts += [
                    escape(item.text, self.format) if isinstance(item, Text) else item
                    for _, item in segment
                ]
            else:
                self.parts.append(self._unit(segment, block))

    def _protect(self, item: Item) -> list[Item]:
        """A Text item split around its untranslatable spans (Kept items)."""
        if not isinstance(item, Text):
            return [item]
        out: list[Item] = []
        at = 0
        for span in protected_spans(item.text, accelerator=self.accelerator):
            if span.start > at:
                out.append(Text(item.text[at : span.start]))
            raw = item.text[span.start : span.end]
            out.append(Kept(escape(raw, self.format), span.kind))
            at = span.end
        if at < len(item.text):
            out.append(Text(item.text[at:]))
        return out

    def _place(
        self, item: Item, start: int, spans: list[tuple[int, int]]
    ) -> list[tuple[int, int, Item]]:
        """(segment index, offset in the block, item or its piece): segment 2k + 1 is sentence
        k, the even ones the gaps around."""
        if isinstance(item, Text):
            out: list[tuple[int, int, Item]] = []
            bounds = sorted({start, start + len(item.text), *(b for s in spans for b in s)})
            for a, b in itertools.pairwise(bounds):
                if start <= a and b <= start + len(item.text):
                    out.append(
                        (_segment(a, spans, inside=True), a, Text(item.text[a - start : b - start]))
                    )
            return out
        if isinstance(item, Tag):  # a start tag opens what follows it, an end tag closes
            for k, (s, e) in enumerate(spans):
                if (s <= start < e) if not item.end else (s < start <= e):
                    return [(2 * k + 1, start, item)]
            return [(_segment(start, spans, inside=False), start, item)]
        return [(_segment(start, spans, inside=True), start, item)]

    def _unit(self, segment: list[tuple[int, Item]], block: str) -> Unit:
        text, slots = [], []  # the model's characters, and the slot of each
        markers: list[Tag | Kept] = []
        spacing: list[tuple[bool, bool]] = []
        marks: list[tuple[str, int]] = []  # accelerator, at this character of ``text``
        for offset, item in segment:
            if isinstance(item, Text):
                text.append(item.text)
                slots += [len(markers)] * len(item.text)
            elif isinstance(item, Kept) and item.kind == "accelerator":
                marks.append((item.raw, len(slots)))
            else:
                end = offset + (len(item.raw) if isinstance(item, Kept) else 0)
                # Glued only to a letter or digit (``<b>word``, ``%sfiles``): punctuation
                # next to a marker in the source need not be next to it in the target.
                before = offset > 0 and not block[offset - 1].isalnum()
                after = end < len(block) and not block[end].isalnum()
                markers.append(item)
                spacing.append((before, after))
        model_text = "".join(text)
        words = list(_WORD.finditer(model_text))
        cuts = cut_to_fit(model_text, self.fits) if self.fits is not None else []
        pieces = cut_pieces(model_text, cuts)
        if cuts:  # words cut inside count as two: the pieces' words, each at its offset
            words, at = [], 0
            for piece in pieces:
                at = model_text.index(piece, at)
                words += [m for m in _WORD.finditer(model_text, at, at + len(piece))]
                at += len(piece)
        accelerators = []
        for mark, char in marks:
            word = next((i for i, w in enumerate(words) if w.end() > char), None)
            if word is None:  # a mark after the last word: kept as a marker
                markers.append(Kept(mark, "accelerator"))
                spacing.append((False, False))
            else:
                accelerators.append((mark, word))
        return Unit(
            pieces=[" ".join(p.split()) for p in pieces]
            if cuts
            else ([" ".join(w.group() for w in words)] if words else []),
            markers=markers,
            spacing=spacing,
            word_slots=[slots[w.start() + _first_alnum(w.group())] for w in words],
            accelerators=accelerators,
            format=self.format,
        )


def _segment(offset: int, spans: list[tuple[int, int]], *, inside: bool) -> int:
    """The segment holding ``offset``: sentence k (2k + 1) if ``inside`` one, else the gap."""
    for k, (s, e) in enumerate(spans):
        if inside and s <= offset < e:
            return 2 * k + 1
        if offset < s or (not inside and offset == s):
            return 2 * k
    return 2 * len(spans)


def _first_alnum(word: str) -> int:
    """Where a word's first letter or digit is (a word's slot is that character's: the
    ``(`` of ``(<a>the`` belongs outside the link, the word inside)."""
    return next((i for i, c in enumerate(word) if c.isalnum()), 0)


def _block_diagonal(blocks: list[np.ndarray]) -> np.ndarray:
    rows, columns = sum(b.shape[0] for b in blocks), sum(b.shape[1] for b in blocks)
    out = np.zeros((rows, columns))
    r = c = 0
    for b in blocks:
        out[r : r + b.shape[0], c : c + b.shape[1]] = b
        r, c = r + b.shape[0], c + b.shape[1]
    return out
