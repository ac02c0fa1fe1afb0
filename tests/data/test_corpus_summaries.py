"""`nmt data fetch summaries`: long description → synopsis pairs from apt's description index."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest

from nmt.cli import main
from nmt.data.corpus import summaries
from nmt.data.corpus.summaries import descriptions, fetch_summaries, one_line
from nmt.errors import NmtError

INDEX_NAME = "deb.debian.org_debian_dists_bookworm_main_i18n_Translation-en"


def record(package: str, synopsis: str, long_lines: list[str]) -> str:
    body = "".join(f" {line}\n" for line in long_lines)
    return f"Package: {package}\nDescription-md5: 0123\nDescription-en: {synopsis}\n{body}"


def package_index(count: int, *, start: int = 0) -> str:
    """``count`` records, each with a distinct two-paragraph long description."""
    return "\n".join(
        record(
            f"pkg{i:03d}",
            f"tool number {i}",
            [f"Tool {i} does thing {i} quickly.", ".", f"It also does thing {i + 1}."],
        )
        for i in range(start, start + count)
    )


def write_lists(folder: Path, text: str, *, name: str = INDEX_NAME) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text, encoding="utf-8")
    return folder


def read_split(folder: Path, split: str) -> list[tuple[str, str]]:
    long = (folder / f"{split}.long").read_text(encoding="utf-8").splitlines()
    short = (folder / f"{split}.short").read_text(encoding="utf-8").splitlines()
    assert len(long) == len(short)
    return list(zip(long, short, strict=True))


def test_descriptions_reads_synopsis_and_long_lines_until_the_next_field() -> None:
    text = (
        "Package: a\nDescription-en: Synopsis A\n line one\n .\n   verbatim  line\n"
        "Homepage: x\n continued homepage\n\n"
        "Package: b\nDescription: Synopsis B\n only line\n"
    )
    found = list(descriptions(text))
    assert found == [
        ("Synopsis A", [" line one", " .", "   verbatim  line"]),
        ("Synopsis B", [" only line"]),
    ]
    assert one_line(found[0][1]) == "line one verbatim line"


def test_fetch_writes_disjoint_deterministic_splits(tmp_path: Path) -> None:
    text = package_index(60)
    # A package sharing another's long description word for word is kept once.
    text += "\n" + record(
        "pkg000-doc",
        "docs of tool 0",
        ["Tool 0 does thing 0 quickly.", ".", "It also does thing 1."],
    )
    text += "\n" + record("no-long", "a package with a synopsis only", [])
    text += "\n" + record("wordy", "too long", [" ".join(["word"] * (summaries.MAX_WORDS + 1))])
    lists = write_lists(tmp_path / "lists", text)

    report = fetch_summaries(tmp_path / "out", lists_dir=lists)
    assert (report.num_train, report.num_dev, report.num_test) == (48, 6, 6)
    assert report.records == 63
    assert report.dropped == {"duplicate": 1, "no long description": 1, "too long": 1}
    splits = {s: read_split(tmp_path / "out", s) for s in ("train", "dev", "test")}
    assert ("Tool 7 does thing 7 quickly. It also does thing 8.", "tool number 7") in [
        pair for pairs in splits.values() for pair in pairs
    ]
    sources = [{long for long, _ in pairs} for pairs in splits.values()]
    assert not (sources[0] & sources[1] or sources[0] & sources[2] or sources[1] & sources[2])
    assert "docs of tool 0" not in {short for pairs in splits.values() for _, short in pairs}
    assert "SOURCES.md" in {p.name for p in (tmp_path / "out").iterdir()}

    # The same index gives the same bytes.
    fetch_summaries(tmp_path / "again", lists_dir=lists)
    for name in ("train.long", "dev.short", "test.long"):
        assert (tmp_path / "out" / name).read_bytes() == (tmp_path / "again" / name).read_bytes()


def test_compressed_indexes_are_read_through_apt(tmp_path: Path) -> None:
    if not summaries.APT_HELPER.is_file():
        pytest.fail(f"{summaries.APT_HELPER} is missing: this test needs Debian's apt")
    lists = tmp_path / "lists"
    lists.mkdir()
    with gzip.open(lists / f"{INDEX_NAME}.gz", "wt", encoding="utf-8") as stream:
        stream.write(package_index(30))
    report = fetch_summaries(tmp_path / "out", lists_dir=lists)
    assert report.num_train + report.num_dev + report.num_test == 30


def test_missing_index_says_how_to_get_it(tmp_path: Path) -> None:
    lists = write_lists(tmp_path / "lists", package_index(30), name="something_Packages")
    with pytest.raises(NmtError, match=r"no English package descriptions.*Acquire::Languages=en"):
        fetch_summaries(tmp_path / "out", lists_dir=lists)
    assert not (tmp_path / "out").exists()


def test_empty_corpus_is_refused(tmp_path: Path) -> None:
    lists = write_lists(tmp_path / "lists", record("a", "synopsis only", []) + "\n")
    with pytest.raises(NmtError, match="the corpus would be empty"):
        fetch_summaries(tmp_path / "out", lists_dir=lists)
    lists = write_lists(tmp_path / "lists2", package_index(5))
    with pytest.raises(NmtError, match=r"only 5 usable package descriptions"):
        fetch_summaries(tmp_path / "out", lists_dir=lists)
    assert not (tmp_path / "out").exists()


def test_explicit_index_files_such_as_dpkg_status(tmp_path: Path) -> None:
    status = tmp_path / "status"
    status.write_text(package_index(25).replace("Description-en:", "Description:"))
    report = fetch_summaries(tmp_path / "out", lists_dir=tmp_path / "nowhere", index=[status])
    assert report.index_files == [status]
    assert report.num_train + report.num_dev + report.num_test == 25
    with pytest.raises(NmtError, match=r"missing: cannot read"):
        fetch_summaries(tmp_path / "out2", index=[tmp_path / "missing"])


def test_cli_dispatches_by_name_and_fails_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(summaries, "APT_LISTS", tmp_path / "lists")
    (tmp_path / "lists").mkdir()
    assert main(["data", "fetch", "summaries", "--dir", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("nmt: error:") and "Translation-en" in err

    write_lists(tmp_path / "lists", package_index(40))
    assert main(["data", "fetch", "summaries", "--dir", str(tmp_path / "out")]) == 0
    assert "train 32, dev 4, test 4" in capsys.readouterr().out
    shutil.rmtree(tmp_path / "out")
