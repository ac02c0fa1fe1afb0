"""gettext catalogues (PO, POT) with polib: every untranslated message filled in.

Kept: every entry, its ``msgctxt``, comments (translator, extracted, references), flags and
previous msgids; messages already translated are left alone. Filled: each untranslated
``msgstr`` (for a plural message every ``msgstr[i]``: form 0 from ``msgid``, the others from
``msgid_plural``), and each filled entry is marked ``fuzzy`` for a person to review. For a
template (POT) the header is made a catalogue's: the target language, its plural forms, UTF-8.

Placeholders (``%s``, ``%(name)s``, ``{0}``), tags and accelerators are kept out of the model's
input and put back (nmt.text.protect), so each msgstr holds every one of its msgid's, in the
same order: ``msgfmt -c`` accepts the output. The report counts them.
"""

from __future__ import annotations

import re

import polib

from nmt.decoding.translator import Translator
from nmt.errors import NmtError
from nmt.text.documents import Job, Report, translate_all
from nmt.text.protect import ACCELERATOR_MARKS, protected_spans
from nmt.text.translate import prepare_texts

# The Plural-Forms header of a few target languages (gettext manual, "Plural forms").
PLURAL_FORMS = {
    "de": "nplurals=2; plural=(n != 1);",
    "en": "nplurals=2; plural=(n != 1);",
    "es": "nplurals=2; plural=(n != 1);",
    "it": "nplurals=2; plural=(n != 1);",
    "nl": "nplurals=2; plural=(n != 1);",
    "fr": "nplurals=2; plural=(n > 1);",
    "pt": "nplurals=2; plural=(n != 1);",
    "ja": "nplurals=1; plural=0;",
    "zh": "nplurals=1; plural=0;",
    "ru": "nplurals=3; plural=(n%10==1 && n%100!=11 ? 0 : n%10>=2 && n%10<=4 && "
    "(n%100<10 || n%100>=20) ? 1 : 2);",
    "pl": "nplurals=3; plural=(n==1 ? 0 : n%10>=2 && n%10<=4 && (n%100<10 || n%100>=20) ? 1 : 2);",
}
_NPLURALS = re.compile(r"nplurals\s*=\s*(\d+)")


def translate(translator: Translator, text: str, job: Job) -> tuple[str, Report]:
    try:
        catalogue = polib.pofile(text, wrapwidth=78)
    except OSError as exc:  # polib's syntax errors: "Syntax error in po file (line N)"
        line = re.search(r"line (\d+)", str(exc))
        where = f"{job.name}:{line.group(1)}" if line else job.name
        raise NmtError(f"{where}: not a valid PO file ({str(exc).split(' (line')[0]})") from None
    nplurals = _header_for(catalogue, job.target_language)
    accelerator = guess_accelerator(catalogue)
    entries = [e for e in catalogue if not e.obsolete and e.msgid and not e.translated()]
    sources: list[str] = []
    for entry in entries:
        sources += [entry.msgid, entry.msgid_plural] if entry.msgid_plural else [entry.msgid]
    prepared = prepare_texts(
        translator,
        sources,
        format="text",
        language=job.source_language,
        accelerator=accelerator,
        name=job.name,
    )
    restored = [
        p.restore(t)
        for p, t in zip(prepared, translate_all(translator, prepared, job), strict=True)
    ]
    at = 0
    for entry in entries:
        if entry.msgid_plural:
            singular, plural = restored[at], restored[at + 1]
            entry.msgstr_plural = {i: singular if i == 0 else plural for i in range(nplurals)}
            at += 2
        else:
            entry.msgstr = restored[at]
            at += 1
        if "fuzzy" not in entry.flags:
            entry.flags.append("fuzzy")
    report = Report(sentences=sum(len(p.sentences) for p in prepared))
    report.counts["messages filled"] = len(entries)
    report.counts.update(kept_spans(sources, restored, accelerator))
    return catalogue.__unicode__(), report


def guess_accelerator(catalogue: polib.POFile) -> str | None:
    """The catalogue's accelerator mark: its ``X-Accelerator-Marker`` header, else the one of
    ``_``, ``&``, ``~`` that at least 3 msgids put before a letter (GTK's ``C_olumn``), else
    None (then only marks before a word's first letter are recognised)."""
    named = catalogue.metadata.get("X-Accelerator-Marker", "")
    if named in ACCELERATOR_MARKS and named:
        return named
    counts = {
        mark: sum(1 for e in catalogue if re.search(rf"{re.escape(mark)}[^\W\d_]", e.msgid))
        for mark in ACCELERATOR_MARKS
    }
    mark, count = max(counts.items(), key=lambda kv: kv[1])
    return mark if count >= 3 else None


def kept_spans(sources: list[str], outputs: list[str], accelerator: str | None) -> dict[str, int]:
    """How many placeholders and accelerators the sources hold, and how many of them the
    outputs hold (as many of each, per message)."""
    counts = {"placeholders": 0, "placeholders kept": 0, "accelerators": 0, "accelerators kept": 0}
    for source, output in zip(sources, outputs, strict=True):
        for kind, key in (("placeholder", "placeholders"), ("accelerator", "accelerators")):
            wanted = _spans(source, kind, accelerator)
            found = _spans(output, kind, accelerator)
            counts[key] += len(wanted)
            counts[f"{key} kept"] += sum(min(wanted.count(s), found.count(s)) for s in set(wanted))
    return counts


def _spans(text: str, kind: str, accelerator: str | None) -> list[str]:
    return [
        text[s.start : s.end]
        for s in protected_spans(text, accelerator=accelerator)
        if s.kind == kind or (kind == "placeholder" and s.kind in ("variable", "option", "url"))
    ]


def _header_for(catalogue: polib.POFile, language: str) -> int:
    """Make a template's header a catalogue's for ``language``; the number of plural forms."""
    metadata = catalogue.metadata
    forms = metadata.get("Plural-Forms", "")
    found = _NPLURALS.search(forms)
    if not found:
        forms = PLURAL_FORMS.get(language.split("_")[0], "nplurals=2; plural=(n != 1);")
        metadata["Plural-Forms"] = forms
        found = _NPLURALS.search(forms)
        assert found is not None
    if not metadata.get("Language"):
        metadata["Language"] = language
    metadata["Content-Type"] = "text/plain; charset=UTF-8"
    metadata["Content-Transfer-Encoding"] = "8bit"
    catalogue.encoding = "utf-8"
    catalogue.metadata_is_fuzzy = False
    for key, value in (("Last-Translator", "nmt"), ("Language-Team", "nmt (machine translation)")):
        if (
            "FULL NAME" in metadata.get(key, "")
            or "LANGUAGE" in metadata.get(key, "")
            or not metadata.get(key)
        ):
            metadata[key] = value
    if "YEAR-MO-DA" in metadata.get("PO-Revision-Date", "YEAR-MO-DA"):
        metadata["PO-Revision-Date"] = (
            metadata.get("POT-Creation-Date", "") or "2000-01-01 00:00+0000"
        )
    return int(found.group(1))
