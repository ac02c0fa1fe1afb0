"""LibreOffice UI catalogues: a .mo file built here, read back into pairs."""

from __future__ import annotations

import gettext
import io
import struct

import pytest

from nmt.data.corpus.libreoffice_ui import catalogue_pairs, read_mo, strip_accelerators


def build_mo(messages: dict[str, str], *, byte_order: str = "<") -> bytes:
    """A GNU .mo file (no hash table) holding ``messages``, msgids sorted as msgfmt does."""
    ids = sorted(messages)
    encoded = [(key.encode(), messages[key].encode()) for key in ids]
    count = len(encoded)
    ids_at = 28
    strs_at = ids_at + 8 * count
    data_at = strs_at + 8 * count
    id_table, str_table, blob = [], [], b""
    for msgid, _ in encoded:
        id_table.append((len(msgid), data_at + len(blob)))
        blob += msgid + b"\0"
    for _, msgstr in encoded:
        str_table.append((len(msgstr), data_at + len(blob)))
        blob += msgstr + b"\0"
    header = struct.pack(f"{byte_order}7I", 0x950412DE, 0, count, ids_at, strs_at, 0, 0)
    tables = b"".join(struct.pack(f"{byte_order}2I", *entry) for entry in id_table + str_table)
    return header + tables + blob


MESSAGES = {
    "": "Content-Type: text/plain; charset=UTF-8\nPlural-Forms: nplurals=2; plural=(n != 1);\n",
    "STR_SAVE\x04~Save": "~Speichern",
    "insertslides|after\x04A_fter": "_Nach",
    "menu|file\x04&File": "&Datei",
    "STR_FIND\x04Find & Replace": "Suchen &amp; Ersetzen",
    "STR_INIT\x04Call __init__ first.": "Zuerst __init__ aufrufen.",
    "STR_OPEN\x04Ö_ffnen test": "Ö_ffnen Test",
    "STR_UNDONE\x04Not translated yet": "",
    "STR_PAGES\x04%1 page\x00%1 pages": "%1 Seite\x00%1 Seiten",
    "STR_MULTI\x04First line.\nSecond line.": "Erste Zeile.\nZweite Zeile.",
}


def test_the_built_file_is_a_real_mo_file() -> None:
    # The standard library reads it as well: the builder above is a fair test input.
    translations = gettext.GNUTranslations(io.BytesIO(build_mo(MESSAGES)))
    assert translations.pgettext("STR_SAVE", "~Save") == "~Speichern"
    assert translations.npgettext("STR_PAGES", "%1 page", "%1 pages", 2) == "%1 Seiten"


@pytest.mark.parametrize("byte_order", ["<", ">"])
def test_read_mo_gives_every_message_but_the_header(byte_order: str) -> None:
    found = {}
    for entry in read_mo(build_mo(MESSAGES, byte_order=byte_order)):
        key = f"{entry.msgctxt}\x04{entry.msgid}" if entry.msgctxt else entry.msgid
        value = entry.msgstr
        if entry.msgid_plural:
            key += f"\x00{entry.msgid_plural}"
            value = "\x00".join(entry.msgstr_plural[i] for i in sorted(entry.msgstr_plural))
        found[key] = value
    assert found == {key: value for key, value in MESSAGES.items() if key}


def test_read_mo_rejects_other_files() -> None:
    with pytest.raises(ValueError, match="magic"):
        read_mo(b"\0" * 40)


def test_strip_accelerators() -> None:
    assert strip_accelerators("~Save") == "Save"
    assert strip_accelerators("Save Copy ~as...") == "Save Copy as..."
    assert strip_accelerators("A_fter") == "After"
    assert strip_accelerators("Ö_ffnen") == "Öffnen"
    assert strip_accelerators("&File") == "File"
    assert strip_accelerators("Find & Replace") == "Find & Replace"
    assert strip_accelerators("Suchen &amp; Ersetzen") == "Suchen &amp; Ersetzen"
    assert strip_accelerators("Call __init__ first.") == "Call __init__ first."


def test_catalogue_pairs_drop_context_split_plurals_and_skip_untranslated() -> None:
    out = catalogue_pairs(build_mo(MESSAGES))
    assert sorted(out.pairs) == sorted(
        [
            ("Save", "Speichern"),
            ("After", "Nach"),
            ("File", "Datei"),
            ("Find & Replace", "Suchen &amp; Ersetzen"),
            ("Call __init__ first.", "Zuerst __init__ aufrufen."),
            ("Öffnen test", "Öffnen Test"),
            ("%1 page", "%1 Seite"),
            ("%1 pages", "%1 Seiten"),
            ("First line. Second line.", "Erste Zeile. Zweite Zeile."),
        ]
    )
    assert out.skipped["messages: untranslated"] == 1


def test_a_german_plural_with_more_forms_keeps_the_first_two() -> None:
    out = catalogue_pairs(
        build_mo({"ctx\x04one file\x00many files": "eine\x00viele\x00sehr viele"})
    )
    assert out.pairs == [("one file", "eine"), ("many files", "viele")]
