"""GNOME help Mallard pages: blocks aligned in document order, or the page skipped."""

from __future__ import annotations

from nmt.data.corpus.gnome_help import align_page, blocks

# Shaped like gnome-user-docs' a11y-bouncekeys.page (CC-BY-SA-3.0); text shortened.
EN = b"""<page xmlns="http://projectmallard.org/1.0/"
      xmlns:its="http://www.w3.org/2005/11/its" type="topic" id="a11y-bouncekeys">
  <info>
    <revision pkgversion="3.8.0" date="2013-03-13" status="candidate"/>
    <credit type="author"><name>Shaun McCance</name></credit>
    <desc>Ignore quickly-repeated key presses.</desc>
  </info>
  <title>Turn on bounce keys</title>
  <p>Turn on <em>bounce keys</em> to ignore
  key presses.</p>
  <comment><p>An editor's note.</p></comment>
  <steps>
    <item><p>Press <keyseq><key>Alt</key><key>F2</key></keyseq> and open
    <guiseq><gui>Settings</gui><gui>Accessibility</gui></guiseq>.</p></item>
  </steps>
  <p its:translate="no">gnome-control-center</p>
  <note style="tip"><title>Quickly turn bounce keys on</title><p>Click the icon.</p></note>
</page>
"""

DE = """<?xml version="1.0" encoding="utf-8"?>
<page xmlns="http://projectmallard.org/1.0/" xmlns:its="http://www.w3.org/2005/11/its"
      type="topic" id="a11y-bouncekeys" xml:lang="de">
  <info>
    <revision pkgversion="3.8.0" date="2013-03-13" status="candidate"/>
    <credit type="author"><name>Shaun McCance</name></credit>
    <desc>Schnell wiederholtes Drücken ignorieren.</desc>
    <mal:credit xmlns:mal="http://projectmallard.org/1.0/" type="translator copyright">
      <mal:name>Christian Kirbach</mal:name><mal:years>2011-2021.</mal:years>
    </mal:credit>
  </info>
  <title>Springende Tasten aktivieren</title>
  <p>Schalten Sie <em>Springende Tasten</em> ein.</p>
  <comment><p>An editor's note.</p></comment>
  <steps>
    <item><p>Drücken Sie <keyseq><key>Alt</key><key>F2</key></keyseq> und öffnen Sie
    <guiseq><gui>Einstellungen</gui><gui>Barrierefreiheit</gui></guiseq>.</p></item>
  </steps>
  <p its:translate="no">gnome-control-center</p>
  <note style="tip"><title>Schnell einschalten</title><p>Klicken Sie auf das Symbol.</p></note>
</page>
""".encode()


def test_blocks_in_document_order_without_untranslated_ones() -> None:
    assert blocks(EN) == [
        ("desc", "Ignore quickly-repeated key presses."),
        ("title", "Turn on bounce keys"),
        ("p", "Turn on bounce keys to ignore key presses."),
        ("p", "Press Alt+F2 and open Settings ▸ Accessibility."),
        ("title", "Quickly turn bounce keys on"),
        ("p", "Click the icon."),
    ]


def test_translator_credits_do_not_shift_the_alignment() -> None:
    out = align_page(EN, DE)
    assert out.pairs == [
        ("Ignore quickly-repeated key presses.", "Schnell wiederholtes Drücken ignorieren."),
        ("Turn on bounce keys", "Springende Tasten aktivieren"),
        ("Turn on bounce keys to ignore key presses.", "Schalten Sie Springende Tasten ein."),
        (
            "Press Alt+F2 and open Settings ▸ Accessibility.",
            "Drücken Sie Alt+F2 und öffnen Sie Einstellungen ▸ Barrierefreiheit.",
        ),
        ("Quickly turn bounce keys on", "Schnell einschalten"),
        ("Click the icon.", "Klicken Sie auf das Symbol."),
    ]
    assert not out.skipped


def test_a_page_whose_blocks_differ_is_skipped() -> None:
    shorter = DE.replace(b"<p>Klicken Sie auf das Symbol.</p>", b"")
    out = align_page(EN, shorter)
    assert out.pairs == []
    assert out.skipped["pages: block sequences differ"] == 1


def test_a_page_that_is_not_xml_is_skipped() -> None:
    out = align_page(EN, b"<page><p>unclosed</page>")
    assert out.pairs == []
    assert out.skipped["pages: not well-formed XML"] == 1
