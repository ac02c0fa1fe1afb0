"""Untranslatable spans: found in a text so that they are kept out of the model's input and
put back, exactly as they were, around the target words they belong to (nmt.text.placement).

What is protected (in this order, the first match wins where two overlap): inline code in
backquotes, tags and entities written in plain text (``<b>``, ``&amp;``), URLs, e-mail
addresses, printf placeholders (``%s``, ``%5.2f``, ``%1$s``, ``%(name)s``; not ``% o`` with a
space flag, which is far likelier to be "50% off"), Python and ICU braces (``{0}``, ``{name}``,
``{0:.2f}``), shell variables (``$HOME``, ``${HOME}``),
command-line options (``--verbose``, ``--size=10``, ``-v``), and keyboard accelerators: a ``_``,
``&`` or ``~`` right before the first letter of a word (``_File``, ``&File``, ``~Save``). An
accelerator inside a word (``E_xit``) is recognised only when the caller names the mark
(gettext catalogues do: nmt.text.documents.po), since ``file_name`` would otherwise lose its
underscore to the rule.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ACCELERATOR_MARKS = "_&~"

_PATTERNS: list[tuple[str, str]] = [
    ("code", r"`[^`\n]+`"),
    # In plain text (a catalogue's message, a subtitle), markup is kept as it is too.
    ("tag", r"</?[A-Za-z][\w:.-]*(?:\s+[^<>]*?)?/?>"),
    ("entity", r"&(?:[A-Za-z]\w*|#\d+|#x[0-9A-Fa-f]+);"),
    (
        "url",
        r"\b(?:https?|ftp)://[^\s<>\"']*[^\s<>\"'.,;:!?)\]]|\bwww\.[^\s<>\"']*[^\s<>\"'.,;:!?)\]]",
    ),
    ("email", r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b"),
    (
        "placeholder",
        r"%(?:\d+\$|\([\w.]+\))?[-+#0]*(?:\*|\d+)?(?:\.(?:\*|\d+))?"
        r"(?:hh|h|ll|l|L|q|j|z|t)?[diouxXeEfFgGcrsaAp%]",
    ),
    ("placeholder", r"\{[\w.]*(?:![rsa])?(?::[^{}\s]*)?\}"),
    ("variable", r"\$\{\w+\}|\$[A-Za-z_]\w*"),
    ("option", r"(?<![\w-])--[A-Za-z][\w-]*(?:=[^\s,;]+)?|(?<![\w-])-[A-Za-z](?![\w-])"),
    # A mark before a word's first letter; ``&amp;`` and ``&#38;`` are entities, not marks.
    ("accelerator", r"(?<![\w&~])[_~](?=[^\W\d_])|(?<![\w&])&(?=[^\W\d_])(?![\w]+;)"),
]
_SPANS = re.compile(
    "|".join(f"(?P<{kind}{i}>{regex})" for i, (kind, regex) in enumerate(_PATTERNS))
)


@dataclass(frozen=True)
class Span:
    """``text[start:end]`` is untranslatable; ``kind`` says why (``accelerator``, ``url``, …)."""

    start: int
    end: int
    kind: str


def protected_spans(text: str, *, accelerator: str | None = None) -> list[Span]:
    """The untranslatable spans of ``text``, in order, not overlapping.

    ``accelerator``: the catalogue's accelerator mark (one of ``_&~``), also recognised inside
    a word (``E_xit``); None: only the marks before a word's first letter.
    """
    spans = []
    for match in _SPANS.finditer(text):
        kind = (match.lastgroup or "").rstrip("0123456789")
        spans.append(Span(match.start(), match.end(), kind))
    if accelerator is not None:
        if accelerator not in ACCELERATOR_MARKS:
            raise ValueError(f"accelerator mark must be one of {ACCELERATOR_MARKS!r}")
        taken = {i for s in spans for i in range(s.start, s.end)}
        inside = re.compile(rf"(?<=[^\W\d_]){re.escape(accelerator)}(?=[^\W\d_])")
        spans += [
            Span(m.start(), m.end(), "accelerator")
            for m in inside.finditer(text)
            if m.start() not in taken
        ]
        spans.sort(key=lambda s: s.start)
    return spans
