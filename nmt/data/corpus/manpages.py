"""Linux man pages: English pages and their German translations, paragraph by paragraph.

The German pages are made with po4a, which keeps the English page's macro structure. Each page is
cut into paragraphs at the paragraph macros (``.SH .SS .PP .TP .IP`` …); a section heading and a
``.TP`` or ``.IP`` tag are paragraphs of their own. Where both languages give the same sequence of
macros the paragraphs align by position; a page whose sequences differ is skipped whole. The
translators' credits that end every German page are cut off first. Code (``.nf``, ``.EX``) and
tables (``.TS``) keep their place in the sequence but give no pairs.
"""

from __future__ import annotations

import gzip
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from nmt.data.corpus import debian
from nmt.data.corpus.debian import Deb
from nmt.data.corpus.source import Extracted, Source, align_pages, normalise

log = logging.getLogger(__name__)

EN_PACKAGES = ("manpages", "manpages-dev")
DE_PACKAGES = ("manpages-de", "manpages-de-dev")
EN_ROOT, DE_ROOT = "usr/share/man/", "usr/share/man/de/"
PAGE = re.compile(r"man\d/[^/]+\.gz")
TRANSLATOR_SECTIONS = frozenset({"ÜBERSETZUNG"})

# Macros that start a paragraph, and the one name each is compared under.
BREAKS = {
    "SH": "SH", "SS": "SS", "TP": "TP", "TQ": "TQ", "IP": "IP", "HP": "IP",
    "PP": "PP", "P": "PP", "LP": "PP", "sp": "PP",
}  # fmt: skip
FONT_MACROS = frozenset({"B", "I", "SM", "SB"})  # arguments joined by spaces
ALTERNATING_MACROS = frozenset({"BR", "RB", "BI", "IB", "IR", "RI"})  # joined without
CODE_STARTS, CODE_ENDS = frozenset({"nf", "EX"}), frozenset({"fi", "EE"})
TABLES = {"TS": "TE", "EQ": "EN"}  # tbl and eqn input: no prose
DEFINITIONS = {"de": ".", "ig": "."}  # macro definitions, ended by ``..``
BULLETS = frozenset({"", "•", "*", "-", "o"})

NAMED_CHARS = {
    "em": "—", "en": "–", "hy": "-", "bu": "•", "aq": "'", "dq": '"', "lq": "“", "rq": "”",
    "oq": "‘", "cq": "’", "Fo": "«", "Fc": "»", "fo": "‹", "fc": "›", "co": "©", "rg": "®",
    "tm": "™", "mu": "×", "di": "÷", "+-": "±", ">=": "≥", "<=": "≤", "!=": "≠", "->": "→",
    "<-": "←", "ti": "~", "ha": "^", "ga": "`", "rs": "\\", "lB": "[", "rB": "]", "sl": "/",
    "ba": "|", "or": "|", "at": "@", "sh": "#", "Do": "$", "dg": "†", "de": "°", "ss": "ß",
    ":a": "ä", ":o": "ö", ":u": "ü", ":A": "Ä", ":O": "Ö", ":U": "Ü", "Eu": "€", "eu": "€",
    "pc": "·", "ua": "↑", "da": "↓", "%": "",
}  # fmt: skip
ESCAPE = re.compile(
    r"\\(?:"
    r"\((?P<two>..)|\[(?P<bracket>[^\]]*)\]"  # named characters
    r"|f(?:\(..|\[[^\]]*\]|.)"  # font changes
    r"|s[-+]?(?:\d|\(\d\d|\[[^\]]*\])"  # size changes
    r"|\*(?:\(..|\[[^\]]*\]|.)"  # strings
    r"|[hvwlLxXoDNbzk]'[^']*'|[hvwlLxXoDNbzk]\S"  # motions and other drawing escapes
    r"|(?P<char>.)"
    r")"
)
SIMPLE_ESCAPES = {
    "-": "-", "e": "\\", "\\": "\\", " ": " ", "~": " ", "0": " ", "'": "´", "`": "`", ".": ".",
}  # fmt: skip


def unescape(text: str) -> str:
    """Roff text with its escapes resolved: fonts dropped, ``\\-`` → ``-``, ``\\(em`` → ``—``."""

    def resolve(match: re.Match[str]) -> str:
        name = match["two"] or match["bracket"]
        if name is not None:
            return NAMED_CHARS.get(name, "")
        char = match["char"]
        return SIMPLE_ESCAPES.get(char, "") if char is not None else ""

    return ESCAPE.sub(resolve, text)


@dataclass
class Paragraph:
    """One paragraph: the macro that opened it, its lines, and whether any of them is code."""

    macro: str
    lines: list[str] = field(default_factory=list)
    code: bool = False

    @property
    def text(self) -> str:
        return normalise(unescape(" ".join(self.lines)))


def arguments(text: str) -> list[str]:
    """A request's arguments: split at spaces, ``"…"`` quotes one, ``""`` in quotes is ``"``."""
    args: list[str] = []
    i = 0
    while i < len(text):
        if text[i] == " ":
            i += 1
        elif text[i] == '"':
            arg, i = [], i + 1
            while i < len(text):
                if text.startswith('""', i):
                    arg.append('"')
                    i += 2
                elif text[i] == '"':
                    i += 1
                    break
                else:
                    arg.append(text[i])
                    i += 1
            args.append("".join(arg))
        else:
            end = text.find(" ", i)
            end = len(text) if end < 0 else end
            args.append(text[i:end])
            i = end
    return args


class _PageParser:
    """Reads a page line by line into paragraphs."""

    def __init__(self) -> None:
        self.paragraphs = [Paragraph("START")]
        self.in_code = False
        self.skip_until: str | None = None
        self.tag_pending = False  # the next text line is a heading's or a .TP's tag

    def feed(self, line: str) -> None:
        line = line.split('\\"', 1)[0].rstrip()  # a comment runs to the end of the line
        if self.skip_until is not None:
            if line[1:].strip() == self.skip_until:
                self.skip_until = None
        elif line[:1] in (".", "'"):
            name, _, rest = line[1:].strip().partition(" ")
            self.request(name, arguments(rest))
        elif line:
            self.text(line)

    def text(self, line: str, *, joined: bool = False) -> None:
        current = self.paragraphs[-1]
        if joined and current.lines:
            current.lines[-1] += line
        else:
            current.lines.append(line)
        current.code |= self.in_code
        if self.tag_pending:
            self.tag_pending = False
            self.start(f"{current.macro} body")

    def start(self, macro: str, lines: list[str] | None = None, *, code: bool = False) -> None:
        self.paragraphs.append(Paragraph(macro, lines or [], code))

    def request(self, name: str, args: list[str]) -> None:
        if name in BREAKS:
            macro = BREAKS[name]
            self.tag_pending = False
            if macro in ("SH", "SS") and args:
                self.start(macro, [" ".join(args)])
                self.start(f"{macro} body")
            elif macro in ("SH", "SS", "TP", "TQ"):
                self.start(macro)
                self.tag_pending = True
            elif macro == "IP" and args and unescape(args[0]).strip() not in BULLETS:
                self.start(macro, [args[0]])
                self.start(f"{macro} body")
            else:
                self.start(macro)
        elif name in FONT_MACROS and args:
            self.text(" ".join(args))
        elif name in ALTERNATING_MACROS and args:
            self.text("".join(args))
        elif name in CODE_STARTS:
            self.in_code = True
        elif name in CODE_ENDS:
            self.in_code = False
        elif name in TABLES:
            self.skip_until = TABLES[name]
            self.start(name, [name], code=True)  # keeps its place in the sequence
            self.start(f"after {name}")
        elif name in DEFINITIONS:
            self.skip_until = DEFINITIONS[name]
        elif name == "UE" and args:  # the punctuation right after a link's text
            self.text(args[0], joined=True)


def paragraphs(page: str) -> list[Paragraph]:
    """The page's paragraphs in order, empty ones left out."""
    parser = _PageParser()
    for line in page.splitlines():
        parser.feed(line)
    return [paragraph for paragraph in parser.paragraphs if paragraph.text]


def _macros(page: list[Paragraph]) -> list[str]:
    return [p.macro for p in page]


def drop_translator_sections(page: list[Paragraph]) -> list[Paragraph]:
    """The German page without its translators' section (and anything after it)."""
    for index, paragraph in enumerate(page):
        if paragraph.macro == "SH" and paragraph.text.strip('"').upper() in TRANSLATOR_SECTIONS:
            return page[:index]
    return page


def is_redirect(page: str) -> bool:
    """A page that only points to another (``.so man3/other.3``)."""
    lines = [line for line in page.splitlines() if line.strip() and not line.startswith('.\\"')]
    return len(lines) <= 2 and any(line.startswith(".so ") for line in lines)


def align_page(en_page: str, de_page: str) -> Extracted:
    """Paragraph pairs of a page, or none (counted) when the macro sequences differ."""
    out = Extracted()
    if is_redirect(en_page) or is_redirect(de_page):
        out.skipped["pages: only point to another page (.so)"] += 1
        return out
    en = paragraphs(en_page)
    de = drop_translator_sections(paragraphs(de_page))
    if _macros(en) != _macros(de):
        out.skipped["pages: macro sequences differ"] += 1
        return out
    for en_paragraph, de_paragraph in zip(en, de, strict=True):
        if en_paragraph.code or de_paragraph.code:
            out.skipped["paragraphs: code"] += 1
        elif en_paragraph.macro == "START":  # the title block, before the first heading
            continue
        else:
            out.pairs.append((en_paragraph.text, de_paragraph.text))
    return out


def _pages(debs: Mapping[str, Deb], packages: tuple[str, ...], root: str) -> dict[str, str]:
    pages = {}
    for package in packages:
        files = debian.read_files(debs[package].path, lambda p: p.startswith(root))
        for path, data in files.items():
            relative = path.removeprefix(root)
            if PAGE.fullmatch(relative):
                pages[relative] = gzip.decompress(data).decode("utf-8", errors="replace")
    return pages


def extract(debs: Mapping[str, Deb]) -> Extracted:
    """Every aligned paragraph of every page both languages have, pages sorted by path."""
    en_pages = _pages(debs, EN_PACKAGES, EN_ROOT)
    de_pages = _pages(debs, DE_PACKAGES, DE_ROOT)
    out = align_pages(en_pages, de_pages, align_page, missing="pages: not translated")
    log.info("man pages: %d pairs from %d English pages", len(out.pairs), len(en_pages))
    return out


SOURCE = Source(
    name="Linux man pages",
    packages=EN_PACKAGES + DE_PACKAGES,
    licence="Linux man-pages licences (English); GPL-3.0-or-later (German translation)",
    extract=extract,
)
