"""Markup as a flat stream of items: text, tags, and spans kept as they are.

lxml parses HTML and XML (strictly: a mismatched tag is an error with its line number, where a
browser would guess). The tree is then walked into a flat list of items in document order:

- ``Text``: characters to translate (entities already decoded: ``&amp;`` is ``&``);
- ``Tag``: the start or end of an element. An inline element (``<b>``, ``<a href=…>``, every
  element of XML) lives inside sentences and is placed around the target words it belongs to;
  a block element (``<p>``, ``<li>``, ``<td>``…) ends the sentences before it;
- ``Kept``: characters written back unchanged: an untranslatable span (nmt.text.protect), an
  inline ``<code>`` element, a void element such as ``<img>``; or, ending sentences like a
  block, ``<script>``, ``<style>``, ``<pre>``, ``<br>``, comments.

Writing the items back out in the same order gives the same tags nested the same way, whatever
words move between them: a translation can only change the text between tags.
"""

from __future__ import annotations

import html
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

from lxml import etree

from nmt.errors import NmtError

Format = Literal["text", "html", "xml"]
FORMATS: tuple[Format, ...] = ("text", "html", "xml")

INLINE = frozenset(
    [
        "a",
        "abbr",
        "acronym",
        "b",
        "bdi",
        "bdo",
        "big",
        "cite",
        "data",
        "del",
        "dfn",
        "em",
        "font",
        "i",
        "ins",
        "kbd",
        "label",
        "mark",
        "q",
        "s",
        "samp",
        "small",
        "span",
        "strike",
        "strong",
        "sub",
        "sup",
        "time",
        "tt",
        "u",
        "var",
    ]
)
# Inline, but never translated: written back as they are, placed like a placeholder.
KEPT_INLINE = frozenset(["code", "img", "input", "wbr", "svg", "math"])
# Never translated, and ending the sentences around them.
KEPT_BLOCK = frozenset(["script", "style", "pre", "textarea", "br", "hr", "noscript", "template"])
VOID = frozenset(
    [
        "area",
        "base",
        "br",
        "col",
        "embed",
        "hr",
        "img",
        "input",
        "link",
        "meta",
        "param",
        "source",
        "track",
        "wbr",
    ]
)
TRANSLATED_ATTRIBUTES = ("alt", "title")


@dataclass
class Text:
    text: str


@dataclass
class Tag:
    """An element's start (``end`` False) or end tag."""

    element: etree._Element
    end: bool
    block: bool
    format: Format
    attributes: dict[str, str] = field(default_factory=dict)
    """The attributes written out (translated ``alt``/``title`` replace the source's)."""

    def render(self) -> str:
        name = _name(self.element)
        if self.end:
            return f"</{name}>"
        attributes = "".join(
            f' {_attribute_name(k)}="{html.escape(v, quote=True)}"'
            for k, v in self.attributes.items()
        )
        return f"<{name}{attributes}>"


@dataclass
class Kept:
    """Characters written back as they are; ``block``: they also end the sentences around."""

    raw: str
    kind: str
    block: bool = False
    tag: Tag | None = None
    """For a void element (``<img alt=…>``): its tag, rendered with translated attributes."""

    def render(self) -> str:
        return self.tag.render() if self.tag is not None else self.raw


Item = Text | Tag | Kept


def parse(text: str, format: Format, *, name: str = "<text>") -> list[Item]:
    """The items of ``text`` (a fragment: no ``<html>`` needed) in document order."""
    if format == "text":
        return [Text(text)]
    if format not in FORMATS:
        raise NmtError(f"unknown format {format!r}: use one of {', '.join(FORMATS)}")
    # The wrapper adds no line, so the parser's line numbers are the text's.
    root = _parse(f"<nmt-fragment>{text}</nmt-fragment>", format, name=name)
    if format == "html":
        found = root.find(".//nmt-fragment")
        assert found is not None
        root = found
    items: list[Item] = []
    if root.text:
        items.append(Text(root.text))
    for child in root:
        items += walk(child, format)
    return items


def parse_document(text: str, format: Format, *, name: str) -> tuple[str, list[Item]]:
    """A whole HTML page or XML document: its doctype line (or "") and items."""
    root = _parse(text.encode("utf-8") if format == "xml" else text, format, name=name)
    doctype = root.getroottree().docinfo.doctype
    return doctype, list(walk(root, format, with_tail=False))


def _parse(text: str | bytes, format: Format, *, name: str) -> etree._Element:
    if format == "html":
        parser = etree.HTMLParser(recover=False, remove_comments=False)
    else:
        parser = etree.XMLParser(recover=False, resolve_entities=False)
    try:
        root = etree.fromstring(text, parser)
    except etree.XMLSyntaxError as exc:
        line = exc.lineno or 1
        message = str(exc.msg).split(", line ")[0]
        raise NmtError(f"{name}:{line}: not well-formed {format.upper()} ({message})") from None
    if root is None:
        raise NmtError(f"{name}: no {format.upper()} content")
    return root


def walk(element: etree._Element, format: Format, *, with_tail: bool = True) -> Iterator[Item]:
    """The items of ``element`` and its content (and the text after it, ``with_tail``)."""
    if not isinstance(element.tag, str):  # a comment or processing instruction
        yield Kept(etree.tostring(element, encoding="unicode", with_tail=False), "comment", True)
    else:
        name = _name(element).lower()
        html_block = format == "html" and name not in INLINE
        if format == "html" and name in KEPT_INLINE | KEPT_BLOCK | VOID:
            raw = etree.tostring(element, encoding="unicode", method="html", with_tail=False)
            block = name in KEPT_BLOCK or (name in VOID and name not in KEPT_INLINE)
            tag = None
            if name in VOID:
                tag = Tag(element, False, block, format, dict(element.attrib))
            yield Kept(raw, name, block, tag)
        else:
            yield Tag(element, False, html_block, format, dict(element.attrib))
            if element.text:
                yield Text(element.text)
            for child in element:
                yield from walk(child, format)
            yield Tag(element, True, html_block, format)
    if with_tail and element.tail:
        yield Text(element.tail)


def translatable_attributes(item: Item) -> Iterator[tuple[Tag, str]]:
    """``(tag, attribute)`` for each ``alt``/``title`` of an HTML tag that has text."""
    tag = item.tag if isinstance(item, Kept) else item if isinstance(item, Tag) else None
    if tag is None or tag.end or tag.format != "html":
        return
    for attribute in TRANSLATED_ATTRIBUTES:
        if tag.attributes.get(attribute, "").strip():
            yield tag, attribute


def escape(text: str, format: Format) -> str:
    """Text as it is written in ``format`` (``&`` → ``&amp;`` in markup)."""
    return text if format == "text" else html.escape(text, quote=False)


def is_boundary(item: Item) -> bool:
    """Does ``item`` end the sentences before it (a block tag, a script, a comment…)?"""
    return not isinstance(item, Text) and item.block


def _name(element: etree._Element) -> str:
    qname = etree.QName(element)
    return f"{element.prefix}:{qname.localname}" if element.prefix else qname.localname


def _attribute_name(key: str) -> str:
    if key.startswith("{"):
        qname = etree.QName(key)
        return (
            f"xml:{qname.localname}" if "XML/1998" in (qname.namespace or "") else qname.localname
        )
    return key
