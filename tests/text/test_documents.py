"""Documents end to end on the trained toy model: a real gettext template (Mousepad, from
Debian) through `nmt translate`, checked by msgfmt -c; a real HTML page (libffi's manual, from
Debian); subtitles, Markdown. Fixtures and their sources: tests/text/data/SOURCES.md."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import polib
import pytest
import srt
from lxml import etree

from nmt.config import DecodingConfig
from nmt.decoding.translator import Translator
from nmt.text.documents import Job, markdown, subtitles
from nmt.text.documents import html as html_document

DATA = Path(__file__).parent / "data"
PRINTF = re.compile(r"%(?:\d+\$)?[-+#0]*\d*(?:\.\d+)?[a-zA-Z%]")
ACCELERATOR = re.compile(r"_(?=[^\W\d_])")


@pytest.fixture(scope="module")
def translator(trained_model_dir: Path) -> Translator:
    return Translator.load(trained_model_dir)


def job(name: str) -> Job:
    return Job(name, DecodingConfig(beam_size=1), "en", "de", progress=False)


def test_a_real_catalogue_is_filled_and_msgfmt_accepts_it(
    trained_model_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "mousepad.de.po"
    result = subprocess.run(
        [
            *(sys.executable, "-m", "nmt.cli", "translate", str(trained_model_dir)),
            *("-i", str(DATA / "mousepad.pot"), "-o", str(out), "--beam-size", "1"),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    msgfmt = shutil.which("msgfmt")
    assert msgfmt is not None, "msgfmt (gettext) is needed: make test installs it"
    for extra in ([], ["--use-fuzzy"]):  # fuzzy entries are checked too with --use-fuzzy
        check = subprocess.run(
            [msgfmt, "-c", *extra, "-o", str(tmp_path / "out.mo"), str(out)],
            capture_output=True,
            text=True,
        )
        assert check.returncode == 0, check.stderr
    template, catalogue = polib.pofile(str(DATA / "mousepad.pot")), polib.pofile(str(out))
    assert len(catalogue) == len(template)
    placeholders = accelerators = 0
    for before, after in zip(template, catalogue, strict=True):
        assert (after.msgid, after.msgctxt, after.msgid_plural) == (
            before.msgid,
            before.msgctxt,
            before.msgid_plural,
        )
        assert "fuzzy" in after.flags and set(before.flags) <= set(after.flags)
        targets = list(after.msgstr_plural.values()) if after.msgid_plural else [after.msgstr]
        sources = [after.msgid_plural] * len(targets) if after.msgid_plural else [after.msgid]
        sources[0] = after.msgid
        for source, target in zip(sources, targets, strict=True):
            assert target.strip(), f"{source!r} left untranslated"
            assert PRINTF.findall(target) == PRINTF.findall(source), (source, target)
            assert len(ACCELERATOR.findall(target)) == len(ACCELERATOR.findall(source))
            placeholders += len(PRINTF.findall(source))
            accelerators += len(ACCELERATOR.findall(source))
    print(f"kept {placeholders} placeholders and {accelerators} accelerators of {len(template)}")
    assert placeholders > 20 and accelerators > 90
    # The CLI's report counts them alike (its placeholders also count URLs and options).
    report = re.search(
        r"(\d+) placeholders, (\d+) placeholders kept, (\d+) accelerators, (\d+) accelerators kept",
        result.stderr,
    )
    assert report is not None, result.stderr
    assert report[1] == report[2] and int(report[1]) >= placeholders
    assert report[3] == report[4] == str(accelerators)


def test_translated_messages_comments_and_context_are_kept(
    translator: Translator, tmp_path: Path
) -> None:
    from nmt.text.documents import po

    text = (
        '# translator comment\nmsgid ""\nmsgstr ""\n'
        '"Content-Type: text/plain; charset=UTF-8\\n"\n\n'
        '#. extracted\n#: src/a.c:1\nmsgctxt "menu"\nmsgid "the cat"\nmsgstr "die Katze"\n\n'
        '#, python-format\nmsgid "the %(n)s dog"\nmsgstr ""\n'
    )
    out, report = po.translate(translator, text, job("t.po"))
    catalogue = polib.pofile(out)
    kept, filled = catalogue[0], catalogue[1]
    assert (kept.msgctxt, kept.msgstr, kept.comment, kept.occurrences) == (
        "menu",
        "die Katze",
        "extracted",
        [("src/a.c", "1")],
    )
    assert "fuzzy" not in kept.flags
    assert "%(n)s" in filled.msgstr and filled.flags == ["python-format", "fuzzy"]
    assert catalogue.header == "translator comment"
    assert report.counts["messages filled"] == 1


def shape(root: etree._Element) -> list[str]:
    return [f"{e.tag}@{len(list(e.iterancestors()))}" for e in root.iter()]


def test_a_real_page_keeps_its_tags_nesting_and_code(translator: Translator) -> None:
    page = (DATA / "libffi-the-basics.html").read_text(encoding="utf-8")
    out, report = html_document.translate(translator, page, job("page.html"))
    parser = etree.HTMLParser(recover=False)
    before, after = etree.fromstring(page, parser), etree.fromstring(out, parser)
    assert shape(after) == shape(before)
    assert report.sentences > 20
    for tag in ("pre", "code", "script", "style"):
        assert [etree.tostring(e, with_tail=False) for e in before.iter(tag)] == [
            etree.tostring(e, with_tail=False) for e in after.iter(tag)
        ]
    assert [e.get("href") for e in before.iter("a")] == [e.get("href") for e in after.iter("a")]
    assert before.findtext(".//title") != after.findtext(".//title")  # translated
    assert out.startswith(page[: page.index(">") + 1])  # the doctype


SRT = """1
00:00:01,000 --> 00:00:02,500
the cat sees

2
00:00:02,600 --> 00:00:04,000
a big dog.

3
00:00:05,000 --> 00:00:06,000
the tree runs.
the house runs.

"""


def test_subtitles_keep_cues_and_timings_and_share_a_sentence_across_cues(
    translator: Translator,
) -> None:
    out, _ = subtitles.translate_srt(translator, SRT, job("a.srt"))
    before, after = list(srt.parse(SRT)), list(srt.parse(out))
    assert [(c.index, c.start, c.end) for c in after] == [(c.index, c.start, c.end) for c in before]
    # "the cat sees / a big dog." is one sentence, translated once and shared by cues 1 and 2.
    whole = translator.translate(["the cat sees a big dog."], DecodingConfig(beam_size=1))[0]
    assert f"{after[0].content} {after[1].content}" == whole
    assert all(c.content for c in after)


def test_webvtt_keeps_identifiers_timings_and_settings(translator: Translator) -> None:
    vtt = "WEBVTT\n\nfirst\n00:00:01.000 --> 00:00:02.000 align:start\nthe cat runs.\n\n"
    vtt += "00:00:03.000 --> 00:00:04.000\nthe dog sees a tree.\n"
    out, _ = subtitles.translate_vtt(translator, vtt, job("a.vtt"))
    assert "first\n00:00:01.000 --> 00:00:02.000 align:start\n" in out
    assert "00:00:03.000 --> 00:00:04.000\n" in out and "the cat" not in out


def test_markdown_keeps_its_structure(translator: Translator) -> None:
    text = (
        "# the big house\n\nthe cat sees a dog. the tree runs\nand the dog runs.\n\n"
        "- the red cat\n- see [the tree](https://example.org/tree) now\n\n"
        "```sh\nthe cat > dog\n```\n\n    indented code stays\n\n| the cat | a dog |\n|---|---|\n"
    )
    out, _ = markdown.translate(translator, text, job("a.md"))
    lines = out.splitlines()
    assert lines[0].startswith("# ") and lines[1] == ""
    assert "```sh\nthe cat > dog\n```\n" in out and "    indented code stays\n" in out
    assert "](https://example.org/tree)" in out and "|---|---|" in out
    assert [line[:2] for line in lines if line.startswith("- ")] == ["- ", "- "]
    assert out.count("\n") == text.count("\n") - 1  # the wrapped sentence's line break only
