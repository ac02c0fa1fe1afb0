"""GIMP manual pages: DocBook HTML blocks aligned in document order, navigation left out."""

from __future__ import annotations

from nmt.data.corpus.gimp_help import align_page, blocks

# Shaped like gimp-help-en/de's gimp-file-close.html (GFDL-1.2+); text shortened.
PAGE = """<?xml version="1.0" encoding="UTF-8" standalone="no"?>
<html xmlns="http://www.w3.org/1999/xhtml"><head><title>2.19. {title}</title></head>
<body>
<div class="navheader"><table><tr><th colspan="3">2.19. {title}</th></tr></table></div>
<div class="sect2">
<h3 class="title"><a id="gimp-file-close"></a>2.19. {title}</h3>
<a id="idm23340" class="indexterm"/>
<p>
    {first}
  </p>
<div class="note"><table><tr><th align="left">{note}</th></tr>
<tr><td><p>{note_text}</p></td></tr></table></div>
<pre class="programlisting">(gimp-image-delete image)</pre>
<ul><li><p>{item}<span class="keycap"><strong>Ctrl</strong></span>+W.</p></li></ul>
</div>
<div class="navfooter"><p>{title}</p></div>
</body></html>
"""

EN = PAGE.format(
    title="Close",
    first="The <span class='guimenuitem'>Close</span> command closes\n    the active image.",
    note="Note",
    note_text="An image is only marked as clean when it is saved.",
    item="or by using ",
)
DE = PAGE.format(
    title="Schließen",
    first="Der Befehl <span class='guimenuitem'>Schließen</span> schließt das aktive Bild.",
    note="Anmerkung",
    note_text="An image is only marked as clean when it is saved.",  # not translated yet
    item="oder über ",
)


def test_blocks_skip_navigation_and_section_numbers() -> None:
    assert blocks(EN) == [
        ("h3", "Close"),
        ("p", "The Close command closes the active image."),
        ("th", "Note"),
        ("p", "An image is only marked as clean when it is saved."),
        ("pre", "(gimp-image-delete image)"),
        ("p", "or by using Ctrl+W."),
    ]


def test_align_page_pairs_blocks_and_leaves_code_out() -> None:
    out = align_page(EN, DE)
    assert out.pairs == [
        ("Close", "Schließen"),
        (
            "The Close command closes the active image.",
            "Der Befehl Schließen schließt das aktive Bild.",
        ),
        ("Note", "Anmerkung"),
        (
            "An image is only marked as clean when it is saved.",
            "An image is only marked as clean when it is saved.",
        ),
        ("or by using Ctrl+W.", "oder über Ctrl+W."),
    ]
    assert out.skipped["blocks: code"] == 1


def test_a_page_whose_blocks_differ_is_skipped() -> None:
    out = align_page(EN, DE.replace('<th align="left">Anmerkung</th>', "<td>Anmerkung</td>"))
    assert out.pairs == []
    assert out.skipped["pages: block sequences differ"] == 1
