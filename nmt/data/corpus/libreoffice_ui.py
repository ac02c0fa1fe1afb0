"""LibreOffice user interface: the German gettext catalogues, msgid (English) → msgstr (German).

A ``.mo`` file is read directly (the format is a small table of offsets, see the GNU gettext
manual, "The Format of GNU MO Files"). Message contexts are dropped, a plural message gives two
pairs (singular and plural forms), and the accelerator marks that pick a menu's hot key
(``~Save``, ``_Open``, ``&File``) are stripped.
"""

from __future__ import annotations

import logging
import re
import struct
from collections.abc import Iterator, Mapping

from nmt.data.corpus import debian
from nmt.data.corpus.debian import Deb
from nmt.data.corpus.source import Extracted, Source, normalise
from nmt.errors import NmtError

log = logging.getLogger(__name__)

PACKAGE = "libreoffice-l10n-de"
CATALOGUE_DIR = "usr/lib/libreoffice/program/resource/de/LC_MESSAGES/"

MO_MAGIC = 0x950412DE
CONTEXT_SEPARATOR = "\x04"
PLURAL_SEPARATOR = "\x00"
# ``~`` anywhere; a single ``_`` or ``&`` right before a letter or digit (``&amp;`` is no mark).
ACCELERATOR = re.compile(r"~|(?<!_)_(?=[^\W_])|&(?=[^\W_])(?!\w+;)")


def read_mo(data: bytes) -> Iterator[tuple[str, str]]:
    """``(msgid, msgstr)`` of every message in a ``.mo`` file, in the file's (sorted) order.

    The header (empty msgid) is left out; msgids keep their context (``ctxt\\x04msgid``) and
    plural forms their ``\\x00`` separators, as stored.
    """
    if len(data) < 20:
        raise ValueError("too short for a .mo file")
    (magic,) = struct.unpack("<I", data[:4])
    order = "<" if magic == MO_MAGIC else ">"
    if struct.unpack(f"{order}I", data[:4])[0] != MO_MAGIC:
        raise ValueError("not a .mo file (bad magic number)")
    _revision, count, ids_at, strs_at = struct.unpack(f"{order}4I", data[4:20])
    for index in range(count):
        id_length, id_offset = struct.unpack_from(f"{order}2I", data, ids_at + 8 * index)
        str_length, str_offset = struct.unpack_from(f"{order}2I", data, strs_at + 8 * index)
        msgid = data[id_offset : id_offset + id_length].decode("utf-8")
        msgstr = data[str_offset : str_offset + str_length].decode("utf-8")
        if msgid:
            yield msgid, msgstr


def strip_accelerators(text: str) -> str:
    """``~Save`` → ``Save``, ``Ö_ffnen`` → ``Öffnen``, ``&File`` → ``File``."""
    return ACCELERATOR.sub("", text)


def catalogue_pairs(data: bytes) -> Extracted:
    """The pairs of one catalogue: contexts dropped, plurals split, accelerators stripped."""
    out = Extracted()
    for msgid, msgstr in read_mo(data):
        msgid = msgid.rpartition(CONTEXT_SEPARATOR)[2]
        en_forms = msgid.split(PLURAL_SEPARATOR)
        de_forms = msgstr.split(PLURAL_SEPARATOR)
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
        except (ValueError, struct.error, UnicodeDecodeError) as exc:
            raise NmtError(f"{deb.path}: {path} is not a readable catalogue ({exc})") from None
    log.info("LibreOffice UI: %d pairs from %d catalogues", len(out.pairs), len(files))
    return out


SOURCE = Source(
    name="LibreOffice UI",
    packages=(PACKAGE,),
    licence="MPL-2.0",
    extract=extract,
)
