"""Markdown: the text translated, the structure kept.

Kept as they are: fenced code blocks, indented code blocks, front matter, HTML blocks, link
targets, inline code, horizontal rules and table rules. Kept around the translated text: the
marks that begin a line (headings ``#``, list bullets and numbers, quotes ``>``, task boxes),
table pipes, and inline emphasis and link brackets, which are placed around the target words
they belong to like tags (nmt.text.placement).

A paragraph's lines are translated together, so a sentence wrapped over two lines is one
sentence, and its translation comes back on one line (Markdown renders both alike); line
breaks between sentences stay. Table cells are translated one by one.
"""

from __future__ import annotations

import re

from nmt.decoding.translator import Translator
from nmt.text.documents import Job, Report, translate_all
from nmt.text.markup import Item, Kept, Text
from nmt.text.prepare import Prepared, prepare_items
from nmt.text.translate import fits_model

_FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")
_RULE = re.compile(
    r"^\s{0,3}([-*_=])(\s*\1){2,}\s*$|^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$"
)
_LINE_START = re.compile(r"^(\s*(?:>\s?)*(?:#{1,6}\s+|[-*+]\s+(?:\[[ xX]\]\s+)?|\d+[.)]\s+)?)")
_INLINE = re.compile(
    r"`[^`]+`"  # inline code
    r"|!?\[|\]\([^)]*\)|\]\[[^\]]*\]|\]"  # link and image brackets with their targets
    r"|\*\*|__|\*|(?<!\w)_(?=\S)|(?<=\S)_(?!\w)|~~"  # emphasis
    r"|<[^>\n]+>"  # inline HTML and autolinks
    r"|\s\|\s|\|"  # table cells
)


def translate(translator: Translator, text: str, job: Job) -> tuple[str, Report]:
    items = markdown_items(text)
    prepared = prepare_items(
        items,
        format="text",
        language=job.source_language,
        fits=fits_model(translator),
        split_lines=False,
    )
    return _restore(translator, prepared, job)


def _restore(translator: Translator, prepared: Prepared, job: Job) -> tuple[str, Report]:
    [translations] = translate_all(translator, [prepared], job)
    return prepared.restore(translations), Report(len(prepared.sentences))


def markdown_items(text: str) -> list[Item]:
    """The document as items: block boundaries (Kept, ``block``) around each paragraph, list
    item, heading and table row; inline marks as Kept markers inside them."""
    items: list[Item] = []
    lines = text.splitlines(keepends=True)
    fence: str | None = None
    in_paragraph = False
    for number, line in enumerate(lines):
        body = line.rstrip("\r\n")
        ending = line[len(body) :]
        fence_match = _FENCE.match(body)
        if fence is not None or fence_match or (number == 0 and body == "---"):
            items.append(Kept(line, "code", block=True))
            if fence is None and fence_match:
                fence = fence_match.group(1)[0] * 3
            elif fence is not None and body.strip().startswith(fence):
                fence = None
            in_paragraph = False
            continue
        code_block = body.startswith(("    ", "\t")) and not in_paragraph
        if not body.strip() or code_block or _RULE.match(body) or body.lstrip().startswith("<"):
            items.append(Kept(line, "structure", block=True))
            in_paragraph = False
            continue
        start = _LINE_START.match(body)
        prefix = start.group(1) if start else ""
        if prefix.strip() or not in_paragraph or body.lstrip().startswith("|"):
            items.append(Kept(prefix, "structure", block=True))  # a new block begins here
        else:
            items.append(Text(" "))  # a wrapped paragraph's next line: one sentence goes on
            prefix = ""
        items += _inline(body[len(prefix) :])
        items.append(Kept(ending, "structure", block=True))
        in_paragraph = True
    return _join_lines(items)


def _inline(text: str) -> list[Item]:
    out: list[Item] = []
    at = 0
    for match in _INLINE.finditer(text):
        if match.start() > at:
            out.append(Text(text[at : match.start()]))
        mark = match.group()
        out.append(Kept(mark, "markdown", block=mark.strip() == "|"))  # a table cell ends
        at = match.end()
    if at < len(text):
        out.append(Text(text[at:]))
    return out


def _join_lines(items: list[Item]) -> list[Item]:
    """A line ending followed by a paragraph's next line (Text " ") is no boundary: it joins
    the lines into one run, written back as a line break."""
    out: list[Item] = []
    for item in items:
        if (
            isinstance(item, Text)
            and item.text == " "
            and out
            and isinstance(out[-1], Kept)
            and out[-1].block
            and out[-1].kind == "structure"
        ):
            ending = out.pop()
            assert isinstance(ending, Kept)
            out.append(Text(ending.raw.replace("\r", "") or " "))
            continue
        out.append(item)
    return out
