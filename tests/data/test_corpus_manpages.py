"""Man pages: roff cut into paragraphs at macros, aligned where the macro sequences agree."""

from __future__ import annotations

from nmt.data.corpus.manpages import align_page, arguments, is_redirect, paragraphs, unescape

# Shaped like chdir(2) of manpages-dev and manpages-de-dev; text shortened.
EN = r""".\" Copyright (c) 1992 Drew Eckhardt
.TH chdir 2 2023-02-05 "Linux man-pages 6.03"
.SH NAME
chdir, fchdir \- change working directory
.SH SYNOPSIS
.nf
.B #include <unistd.h>
.BI "int chdir(const char *" path );
.fi
.SH DESCRIPTION
.BR chdir ()
changes the current working directory
of the calling process.
.PP
.BR fchdir ()
is identical to
.BR chdir (). \" a comment
.SH ERRORS
.TP
.B EACCES
Search permission is denied \(em see
.UR https://example.org
the docs
.UE .
.SH "SEE ALSO"
.BR chroot (2)
"""

DE = r""".\" -*- coding: UTF-8 -*-
.\" This file was generated with po4a. Translate the source file.
.TH chdir 2 "5. Februar 2023" "Linux man\-pages 6.03"
.SH BEZEICHNUNG
chdir, fchdir \- aktuelles Arbeitsverzeichnis wechseln
.SH ÜBERSICHT
.nf
\fB#include <unistd.h>\fP
\fBint chdir(const char *\fP\fIPfad\fP\fB);\fP
.fi
.SH BESCHREIBUNG
\fBchdir\fP() ändert das aktuelle Arbeitsverzeichnis
des aufrufenden Prozesses.
.PP
\fBfchdir\fP() ist identisch mit \fBchdir\fP().
.SH FEHLER
.TP
\fBEACCES\fP
Suchberechtigung wurde verweigert \(em siehe
.UR https://example.org
die Doku
.UE .
.SH "SIEHE AUCH"
\fBchroot\fP(2)
.PP
.SH ÜBERSETZUNG
Die deutsche Übersetzung dieser Handbuchseite wurde von
Daniel Kobras erstellt.
.PP
Diese Übersetzung ist Freie Dokumentation.
"""


def test_unescape() -> None:
    assert unescape(r"\fBchdir\fP() \- a \(em b \[rq]x\e") == "chdir() - a — b ”x\\"
    assert unescape(r"\f(CWcode\fR and \s-1SMALL\s0 \&.") == "code and SMALL ."
    assert unescape(r"\*(lqquoted\*(rq") == "quoted"


def test_arguments_follow_roff_quoting() -> None:
    assert arguments('"int chdir(const char *" path );') == ["int chdir(const char *", "path", ");"]
    assert arguments('"SEE ALSO"') == ["SEE ALSO"]
    assert arguments('"say ""hi"""') == ['say "hi"']


def test_paragraphs_split_at_macros_with_headings_and_tags_apart() -> None:
    found = [(p.macro, p.text, p.code) for p in paragraphs(EN)]
    assert found == [
        ("SH", "NAME", False),
        ("SH body", "chdir, fchdir - change working directory", False),
        ("SH", "SYNOPSIS", False),
        ("SH body", "#include <unistd.h> int chdir(const char *path);", True),
        ("SH", "DESCRIPTION", False),
        ("SH body", "chdir() changes the current working directory of the calling process.", False),
        ("PP", "fchdir() is identical to chdir().", False),
        ("SH", "ERRORS", False),
        ("TP", "EACCES", False),
        ("TP body", "Search permission is denied — see the docs.", False),
        ("SH", "SEE ALSO", False),
        ("SH body", "chroot(2)", False),
    ]


def test_agreeing_pages_align_by_position_without_code_and_credits() -> None:
    out = align_page(EN, DE)
    assert out.pairs == [
        ("NAME", "BEZEICHNUNG"),
        (
            "chdir, fchdir - change working directory",
            "chdir, fchdir - aktuelles Arbeitsverzeichnis wechseln",
        ),
        ("SYNOPSIS", "ÜBERSICHT"),
        ("DESCRIPTION", "BESCHREIBUNG"),
        (
            "chdir() changes the current working directory of the calling process.",
            "chdir() ändert das aktuelle Arbeitsverzeichnis des aufrufenden Prozesses.",
        ),
        ("fchdir() is identical to chdir().", "fchdir() ist identisch mit chdir()."),
        ("ERRORS", "FEHLER"),
        ("EACCES", "EACCES"),
        (
            "Search permission is denied — see the docs.",
            "Suchberechtigung wurde verweigert — siehe die Doku.",
        ),
        ("SEE ALSO", "SIEHE AUCH"),
        ("chroot(2)", "chroot(2)"),
    ]
    assert out.skipped["paragraphs: code"] == 1


def test_disagreeing_pages_are_skipped_whole() -> None:
    # The translation joined the two description paragraphs: everything after would shift.
    joined = DE.replace("des aufrufenden Prozesses.\n.PP\n", "des aufrufenden Prozesses.\n")
    out = align_page(EN, joined)
    assert out.pairs == []
    assert out.skipped["pages: macro sequences differ"] == 1


def test_a_tag_that_became_a_paragraph_is_a_disagreement() -> None:
    retagged = DE.replace(".TP\n\\fBEACCES\\fP\n", ".PP\n\\fBEACCES\\fP\n")
    assert align_page(EN, retagged).skipped["pages: macro sequences differ"] == 1


def test_redirect_pages_give_nothing() -> None:
    redirect = ".so man2/chdir.2\n"
    assert is_redirect(redirect)
    assert not is_redirect(EN)
    out = align_page(redirect, redirect)
    assert out.pairs == []
    assert out.skipped["pages: only point to another page (.so)"] == 1


def test_tables_keep_their_place_but_give_no_pairs() -> None:
    page = ".SH A\nText.\n.TS\nl l.\nx\ty\n.TE\n.PP\nAfter.\n"
    found = [(p.macro, p.text, p.code) for p in paragraphs(page)]
    assert found == [
        ("SH", "A", False),
        ("SH body", "Text.", False),
        ("TS", "TS", True),
        ("PP", "After.", False),
    ]
