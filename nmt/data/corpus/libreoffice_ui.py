"""LibreOffice user interface: the German gettext catalogues, msgid (English) → msgstr (German).

A ``.mo`` file is read with polib (the gettext library nmt uses for catalogues, see
nmt.text.documents.po). Message contexts are dropped, a plural message gives two pairs
(singular and plural forms), and the accelerator marks that pick a menu's hot key (``~Save``,
``_Open``, ``&File``) are stripped.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping

import polib

from nmt.data.corpus import debian
from nmt.data.corpus.debian import Deb
from nmt.data.corpus.source import Extracted, Source, normalise
from nmt.errors import NmtError

log = logging.getLogger(__name__)

PACKAGE = "libreoffice-l10n-de"
CATALOGUE_DIR = "usr/lib/libreoffice/program/resource/de/LC_MESSAGES/"

# ``~`` anywhere; a single ``_`` or ``&`` right before a letter or digit (``&amp;`` is no mark).
ACCELERATOR = re.compile(r"~|(?<!_)_(?=[^\W_])|&(?=[^\W_])(?!\w+;)")


def read_mo(data: bytes) -> list[polib.MOEntry]:
    """Every message of a ``.mo`` file but the header, in the file's (sorted) order."""
    try:
        catalogue = polib.mofile(data)
    except (OSError, ValueError) as exc:  # polib: "Invalid mo file, magic number is incorrect"
        raise ValueError(f"not a .mo file ({str(exc).rstrip(' !')})") from None
    return [entry for entry in catalogue if entry.msgid]


def strip_accelerators(text: str) -> str:
    """``~Save`` → ``Save``, ``Ö_ffnen`` → ``Öffnen``, ``&File`` → ``File``."""
    return ACCELERATOR.sub("", text)


def catalogue_pairs(data: bytes) -> Extracted:
    """The pairs of one catalogue: contexts dropped, plurals split, accelerators stripped."""
    out = Extracted()
    for entry in read_mo(data):
        en_forms = [entry.msgid, entry.msgid_plural] if entry.msgid_plural else [entry.msgid]
        de_forms = (
            [entry.msgstr_plural[i] for i in sorted(entry.msgstr_plural)]
            if entry.msgid_plural
            else [entry.msgstr]
        )
        if len(en_forms) > 1:
            # English has two forms; German's first two are the same singular and plural.
            de_forms = de_forms[:2]
        if len(en_forms) != len(de_forms):
            out.skipped["messages: plural forms differ"] += 1
            continue
        for en, de in zip(en_forms, de_forms, strict=True):
            if not de:
                out.skipped["messages: untranslated"] += 1
                continue
            out.pairs.append((normalise(strip_accelerators(en)), normalise(strip_accelerators(de))))
    return out


def extract(debs: Mapping[str, Deb]) -> Extracted:
    """Every message of every catalogue, catalogues sorted by file name."""
    deb = debs[PACKAGE]
    files = debian.read_files(deb.path, lambda p: p.startswith(CATALOGUE_DIR) and p.endswith(".mo"))
    out = Extracted()
    for path in sorted(files):
        try:
            out.extend(catalogue_pairs(files[path]))
        except (ValueError, UnicodeDecodeError) as exc:
            raise NmtError(f"{deb.path}: {path} is not a readable catalogue ({exc})") from None
    log.info("LibreOffice UI: %d pairs from %d catalogues", len(out.pairs), len(files))
    return out


SOURCE = Source(
    name="LibreOffice UI",
    packages=(PACKAGE,),
    licence="MPL-2.0",
    extract=extract,
)
