"""HTML pages and XML documents: text translated, markup kept.

HTML: the text of every element and the ``alt`` and ``title`` attributes are translated;
``script``, ``style``, ``pre``, ``code`` and ``textarea`` are left as they are; inline elements
(``<b>``, ``<a>``…) are placed around the target words they belong to (nmt.text.markup). The
page's ``lang`` attribute becomes the target language. A page is parsed strictly: where a
browser would guess around a mismatched tag, this names the line.

What is not kept byte for byte: lxml writes the page back, so attribute quoting, entity
spelling (``&nbsp;`` comes back as the character) and whitespace inside tags may change; the
document's tags, their nesting and attributes do not.
"""

from __future__ import annotations

import re

from nmt.decoding.translator import Translator
from nmt.text.documents import Job, Report, translate_all
from nmt.text.markup import Format, Tag, parse_document
from nmt.text.prepare import Prepared, prepare_items
from nmt.text.translate import fits_model, prepare_texts

_WHOLE_PAGE = re.compile(r"<!doctype|<html", re.IGNORECASE)
_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>\s*")


def translate(translator: Translator, text: str, job: Job) -> tuple[str, Report]:
    """A whole page (with ``<html>`` or a doctype), or else an HTML fragment."""
    if not _WHOLE_PAGE.search(text[:4096]):
        [prepared] = prepare_texts(
            translator, [text], format="html", language=job.source_language, name=job.name
        )
        return _restore(translator, prepared, job, head="")
    return _translate_document(translator, text, job, "html")


def translate_xml(translator: Translator, text: str, job: Job) -> tuple[str, Report]:
    """An XML document: every element inline (XML says nothing of blocks)."""
    return _translate_document(translator, text, job, "xml")


def _translate_document(
    translator: Translator, text: str, job: Job, format: Format
) -> tuple[str, Report]:
    doctype, items = parse_document(text, format, name=job.name)
    root = items[0]
    if format == "html" and isinstance(root, Tag) and "lang" in root.attributes:
        root.attributes["lang"] = job.target_language
    declaration = _XML_DECLARATION.match(text) if format == "xml" else None
    head = (declaration.group().strip() + "\n" if declaration else "") + (
        doctype + "\n" if doctype else ""
    )
    prepared = prepare_items(
        items, format=format, language=job.source_language, fits=fits_model(translator)
    )
    return _restore(translator, prepared, job, head=head, tail="\n")


def _restore(
    translator: Translator, prepared: Prepared, job: Job, *, head: str, tail: str = ""
) -> tuple[str, Report]:
    [translations] = translate_all(translator, [prepared], job)
    return head + prepared.restore(translations) + tail, Report(len(prepared.sentences))
