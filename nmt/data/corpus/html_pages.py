"""Reading help pages' HTML as browsers nest it, for the corpora aligned element by element."""

from __future__ import annotations

from html.parser import HTMLParser

# HTML's void elements: they never open an element, so never take an end tag.
VOID_TAGS = frozenset(
    {
        *("area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param"),
        *("source", "track", "wbr"),
    }
)


class ElementParser(HTMLParser):
    """An HTMLParser that keeps the stack of open elements: an end tag closes every element
    opened after its own, since HTML lets some end tags be left out. A subclass hears of each
    element opened (``opened``), closed (``closed``) and of line breaks, with the element's
    depth in the stack."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self._stack: list[str] = []  # open tags

    def opened(self, tag: str, attributes: dict[str, str | None], depth: int) -> None:
        """An element opens at ``depth`` (1: the outermost)."""

    def closed(self, tag: str, depth: int) -> None:
        """The element at ``depth`` closes (explicitly or by an ancestor's end tag)."""

    def line_break(self) -> None:
        """A ``<br>``."""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in VOID_TAGS:
            if tag == "br":
                self.line_break()
            return
        self._stack.append(tag)
        self.opened(tag, dict(attrs), len(self._stack))

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID_TAGS or tag not in self._stack:
            return
        while self._stack:
            depth = len(self._stack)
            closed = self._stack.pop()
            self.closed(closed, depth)
            if closed == tag:
                break

    def parse(self, html: str) -> None:
        self.feed(html)
        self.close()
