"""LibreOffice help pages: paragraphs aligned by id, hidden variants and code left out."""

from __future__ import annotations

from nmt.data.corpus.libreoffice_help import align_page, paragraphs

# The shape of a real page (help/en-US/text/shared/autokorr/06000000.html), text made up.
PAGE = """<!DOCTYPE html>
<html lang="{lang}"><head><title>{title}</title></head>
<body>
<header id="TopLeftHeader"><p dir="auto">{header}</p></header>
<div id="DisplayArea">
<a name="bm_id3156116"></a>
<p id="bm_module" dir="auto"></p>
<h1 id="hd_id3148932" dir="auto">{heading}</h1>
<p id="par_id3146060" class="paragraph" dir="auto">{first}</p>
{only}
<p id="par_id211" dir="auto">{shortcut_before} <span class="switchinline"><span hidden="true"
 id="MACtext_1" class="MAC"><span class="keycode">{mac}</span></span><span hidden="true"
 id="defaulttext_1"><span class="keycode">{ctrl}</span></span></span>+F.</p>
<div class="bascode"><p id="par_id999" class="code">Sub Main</p></div>
<span hidden="true" id="WRITERtext_2" class="WRITER"><div class="embedded">
<p id="par_id5" class="embedded" dir="auto">{writer}<br>{writer2}</p></div></span>
<table><tr><td><p id="par_id7" class="tablecontentintable">{cell}</p></td></tr></table>
<p id="par_id7" class="paragraph">{repeated}</p>
</div></body></html>
"""

EN = PAGE.format(
    lang="en-US",
    title="AutoCorrect",
    header="LibreOffice Help",
    heading="AutoCorrect has been activated",
    first="Your text was <a href='x'>corrected</a>   by\n AutoCorrect.",
    only='<p id="par_id42" dir="auto">Only in English.</p>',
    shortcut_before="Use the shortcut",
    mac="Command",
    ctrl="Ctrl",
    writer="Only in Writer.",
    writer2="Second line.",
    cell="Cell &amp; table",
    repeated="Again.",
)
DE = PAGE.format(
    lang="de",
    title="AutoKorrektur",
    header="Hilfe für LibreOffice",
    heading="AutoKorrektur wurde ausgelöst",
    first="Ihr Text wurde von <a href='x'>AutoKorrektur</a> korrigiert.",
    only="",
    shortcut_before="Verwenden Sie das Tastenkürzel",
    mac="Befehl",
    ctrl="Strg",
    writer="Nur in Writer.",
    writer2="Zweite Zeile.",
    cell="Zelle &amp; Tabelle",
    repeated="Nochmals.",
)


def test_paragraphs_are_keyed_by_id_and_occurrence() -> None:
    found = paragraphs(EN)
    assert found[("hd_id3148932", 1)] == "AutoCorrect has been activated"
    assert found[("par_id3146060", 1)] == "Your text was corrected by AutoCorrect."
    assert found[("par_id7", 1)] == "Cell & table"
    assert found[("par_id7", 2)] == "Again."
    assert ("bm_module", 1) not in found  # bookmarks are no paragraphs
    assert all("LibreOffice Help" not in text for text in found.values())  # nor the header


def test_hidden_variants_give_way_to_the_default() -> None:
    assert paragraphs(EN)[("par_id211", 1)] == "Use the shortcut Ctrl+F."
    assert paragraphs(DE)[("par_id211", 1)] == "Verwenden Sie das Tastenkürzel Strg+F."


def test_a_paragraph_inside_a_hidden_application_switch_is_kept() -> None:
    assert paragraphs(EN)[("par_id5", 1)] == "Only in Writer. Second line."


def test_code_is_left_out() -> None:
    assert ("par_id999", 1) not in paragraphs(EN)


def test_align_page_pairs_same_ids_in_english_order() -> None:
    out = align_page(EN, DE)
    assert out.pairs == [
        ("AutoCorrect has been activated", "AutoKorrektur wurde ausgelöst"),
        ("Your text was corrected by AutoCorrect.", "Ihr Text wurde von AutoKorrektur korrigiert."),
        ("Use the shortcut Ctrl+F.", "Verwenden Sie das Tastenkürzel Strg+F."),
        ("Only in Writer. Second line.", "Nur in Writer. Zweite Zeile."),
        ("Cell & table", "Zelle & Tabelle"),
        ("Again.", "Nochmals."),
    ]
    assert out.skipped["paragraphs: id only in English"] == 1


def test_alignment_follows_ids_not_positions() -> None:
    en = '<p id="par_id1">One.</p><p id="par_id2">Two.</p>'
    de = '<p id="par_id2">Zwei.</p><p id="par_id3">Drei.</p><p id="par_id1">Eins.</p>'
    out = align_page(en, de)
    assert out.pairs == [("One.", "Eins."), ("Two.", "Zwei.")]
    assert out.skipped["paragraphs: id only in German"] == 1
