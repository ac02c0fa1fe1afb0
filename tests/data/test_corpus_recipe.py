"""The recipe: dev/test sampling, cleaning into train, atomic writing, and the whole fetch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nmt.data.corpus import recipe
from nmt.data.corpus.debian import Deb
from nmt.data.corpus.recipe import Split, build_split, fetch_corpus, sample_heldout, write_corpus
from nmt.data.corpus.source import Extracted, Pair, Source
from nmt.data.parallel import read_parallel
from nmt.errors import NmtError


def fake_source(name: str, pairs: list[Pair], packages: tuple[str, ...] = ()) -> Source:
    return Source(
        name=name,
        packages=packages or (name.lower(),),
        licence=f"{name} licence",
        extract=lambda debs: Extracted(pairs=list(pairs)),
    )


def fake_debs(*sources: Source) -> dict[str, Deb]:
    return {
        package: Deb(package, "1.0-1", Path(f"/cache/{package}_1.0-1_all.deb"))
        for source in sources
        for package in source.packages
    }


def short_pairs(count: int, start: int = 0) -> list[Pair]:
    return [(f"Sentence {i} is short.", f"Satz {i} ist kurz.") for i in range(start, start + count)]


def run_split(
    sources: list[Source], *, num_dev: int = 5, num_test: int = 5, seed: int = 0, max_words: int = 8
) -> tuple[Split, list]:
    extracted = [(source, source.extract({})) for source in sources]
    return build_split(
        extracted,
        fake_debs(*sources),
        held_out_source=sources[0],
        num_dev=num_dev,
        num_test=num_test,
        max_heldout_words=6,
        max_words=max_words,
        seed=seed,
    )


def folded_sides(pairs: list[Pair]) -> set[str]:
    return {side.casefold() for pair in pairs for side in pair}


# The held-out source: exactly ten plain short pairs can be sampled, whatever the seed.
HELD = fake_source(
    "Held",
    [
        *short_pairs(10),
        ("This sentence has seven words in it.", "Dieser Satz ist zu lang."),
        ("I bear/have no relation.", "Ich stehe in keinem Verhältnis."),
    ],
)


def test_dev_and_test_are_sampled_only_from_short_plain_pairs() -> None:
    split, reports = run_split([HELD])
    assert sorted(split.dev + split.test) == sorted(short_pairs(10))
    assert not folded_sides(split.dev) & folded_sides(split.test)
    # The two pairs not eligible for dev/test go to train.
    assert split.train == HELD.extract({}).pairs[10:]
    assert reports[0].held_out == 10 and reports[0].kept == 2


def test_train_is_cleaned_with_each_reason_counted() -> None:
    other = fake_source(
        "Other",
        [
            ("Open  the\tfile ", "Datei\nöffnen"),  # kept, whitespace normalised
            ("Open the file", "Datei öffnen"),  # duplicate once normalised
            ("PDF", "PDF"),  # untranslated
            ("", "leer"),  # empty
            ("one two three four five six seven eight nine", "eins"),  # too long (> 8)
            ("SENTENCE 3 IS SHORT.", "Ein anderer Satz."),  # leak: English side, other case
            ("A different sentence.", "satz 4 ist kurz."),  # leak: German side
            ("one two three four five six seven eight", "acht Wörter"),  # 8 words: kept
        ],
    )
    later = fake_source("Later", [("Open the file", "Datei öffnen")])
    split, reports = run_split([HELD, other, later])

    assert split.train[2:] == [
        ("Open the file", "Datei öffnen"),
        ("one two three four five six seven eight", "acht Wörter"),
    ]
    assert reports[1].dropped == {
        "duplicate": 1,
        "untranslated": 1,
        "empty": 1,
        "too long": 1,
        "leak": 2,
    }
    assert reports[1].kept == 2
    assert reports[2].dropped == {"duplicate": 1} and reports[2].kept == 0
    for report in reports:
        assert report.extracted == report.kept + report.held_out + sum(report.dropped.values())


def test_no_dev_or_test_sentence_reaches_train() -> None:
    # Every held-out candidate also stands in another source, in other cases and pairings.
    copies = [(en.upper(), "Etwas anderes.") for en, _ in short_pairs(10)]
    copies += [("Something else.", de.lower()) for _, de in short_pairs(10)]
    split, reports = run_split([HELD, fake_source("Copies", copies)])
    assert not folded_sides(split.train) & folded_sides(split.dev + split.test)
    assert reports[1].dropped["leak"] == 20


def test_sampling_is_seeded() -> None:
    pool = fake_source("Pool", short_pairs(200))
    first, _ = run_split([pool], seed=1)
    again, _ = run_split([pool], seed=1)
    other, _ = run_split([pool], seed=2)
    assert first == again
    assert first.dev != other.dev


def test_sampling_takes_no_sentence_twice() -> None:
    # Many pairs share an English side: dev and test must still not share one.
    pairs = [("Same English.", f"Deutsch {i}.") for i in range(50)] + short_pairs(20)
    dev_ids, test_ids = sample_heldout(pairs, num_dev=10, num_test=10, max_words=6, seed=0)
    chosen = [pairs[i] for i in dev_ids + test_ids]
    assert len({en for en, _ in chosen}) == 20


def test_too_few_candidates_is_an_error() -> None:
    with pytest.raises(NmtError, match="only 10 distinct"):
        sample_heldout(short_pairs(10), num_dev=10, num_test=1, max_words=6, seed=0)


SCRIPT = """
import sys
from pathlib import Path
from nmt.data.corpus.debian import Deb
from nmt.data.corpus.recipe import build_split, write_corpus
from nmt.data.corpus.source import Extracted, Source

pairs = [(f"Sentence {i % 97} is short.", f"Satz {i % 89} ist kurz.") for i in range(3000)]
pairs += [(f"SENTENCE {i} IS SHORT.", f"Anderer Satz {i}.") for i in range(300)]
sources = [
    Source(name, (name,), "licence", lambda debs, p=p: Extracted(pairs=p))
    for name, p in (("a", pairs), ("b", pairs[::-1]))
]
debs = {name: Deb(name, "1.0", Path(name)) for name in ("a", "b")}
extracted = [(source, source.extract(debs)) for source in sources]
split, _ = build_split(
    extracted, debs, held_out_source=sources[0], num_dev=20, num_test=20,
    max_heldout_words=30, max_words=50, seed=7,
)
write_corpus(Path(sys.argv[1]), split, "sources")
"""


def test_output_does_not_depend_on_string_hashing(tmp_path: Path) -> None:
    outputs = []
    for hash_seed in ("0", "4242"):
        out = tmp_path / f"hash-{hash_seed}"
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        subprocess.run([sys.executable, "-c", SCRIPT, str(out)], env=env, check=True)
        outputs.append({p.name: p.read_bytes() for p in sorted(out.iterdir())})
    assert outputs[0] == outputs[1]
    assert outputs[0]["train.en"] and outputs[0]["dev.en"]


def make_split() -> Split:
    return Split(
        train=[("Open the file", "Datei öffnen"), ("Close", "Schließen")],
        dev=[("Hello.", "Hallo.")],
        test=[("Bye.", "Tschüss.")],
    )


def test_write_corpus_writes_parallel_files(tmp_path: Path) -> None:
    out = tmp_path / "corpus"
    write_corpus(out, make_split(), "# sources\n")
    names = sorted(p.name for p in out.iterdir())
    assert names == ["SOURCES.md", "dev.de", "dev.en", "test.de", "test.en", "train.de", "train.en"]
    pairs = [(src, tgt) for _, src, tgt in read_parallel(out / "train.en", out / "train.de")]
    assert pairs == make_split().train
    assert (out / "dev.de").read_text(encoding="utf-8") == "Hallo.\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus"]  # no temporary folder left


def test_a_failed_write_leaves_no_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_write_text = Path.write_text

    def failing_write_text(self: Path, *args: object, **kwargs: object) -> int:
        if self.name == "SOURCES.md":
            raise OSError(28, "No space left on device")
        return real_write_text(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "write_text", failing_write_text)
    with pytest.raises(NmtError, match="No space left"):
        write_corpus(tmp_path / "corpus", make_split(), "# sources\n")
    assert list(tmp_path.iterdir()) == []


def test_a_failed_write_leaves_an_earlier_corpus_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "corpus"
    write_corpus(out, make_split(), "# old\n")
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def fail(*args: object, **kwargs: object) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(recipe, "publish", fail)  # fails after writing, before moving in
    newer = Split(train=[("New.", "Neu.")], dev=[], test=[])
    with pytest.raises(NmtError):
        write_corpus(out, newer, "# new\n")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus"]


def test_rewriting_replaces_only_the_corpus_files(tmp_path: Path) -> None:
    out = tmp_path / "corpus"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "train.en").write_text("stale\n")
    write_corpus(out, make_split(), "# sources\n")
    assert (out / "notes.txt").read_text() == "mine"
    assert (out / "train.en").read_text() == "Open the file\nClose\n"


def test_a_file_where_the_folder_should_be_is_an_error(tmp_path: Path) -> None:
    taken = tmp_path / "taken"
    taken.write_text("x")
    with pytest.raises(NmtError, match="not a folder"):
        write_corpus(taken, make_split(), "")
    with pytest.raises(NmtError, match="is a file"):
        write_corpus(taken / "corpus", make_split(), "")
    assert taken.read_text() == "x"


def test_unknown_corpus_names_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(NmtError, match="known: de-en"):
        fetch_corpus("fr-en", tmp_path / "out")


def test_a_bad_dir_fails_before_any_download(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_fetch(*args: object) -> None:
        raise AssertionError("fetched although --dir is unusable")

    monkeypatch.setattr(recipe.debian, "fetch", no_fetch)
    (tmp_path / "file").write_text("x")
    with pytest.raises(NmtError, match="not a folder"):
        fetch_corpus("de-en", tmp_path / "file")


def test_without_apt_get_fetch_fails_clearly_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    with pytest.raises(NmtError, match="apt-get") as error:
        fetch_corpus("de-en", tmp_path / "out", cache_dir=tmp_path / "cache")
    assert "train.en" in str(error.value)
    assert not (tmp_path / "out").exists()


def test_with_gimp_fetches_the_gimp_manual_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[list[str]] = []

    def record(packages: list[str], cache_dir: Path) -> None:
        asked.append(list(packages))
        raise NmtError("stop here")

    monkeypatch.setattr(recipe.debian, "fetch", record)
    for with_gimp in (False, True):
        with pytest.raises(NmtError, match="stop here"):
            fetch_corpus("de-en", tmp_path / "out", cache_dir=tmp_path, with_gimp=with_gimp)
    assert "gimp-help-de" not in asked[0] and "manpages-de" in asked[0]
    assert {"gimp-help-en", "gimp-help-de"} <= set(asked[1])


@pytest.fixture
def fake_recipe(monkeypatch: pytest.MonkeyPatch) -> tuple[Source, Source]:
    """fetch_corpus over two made-up sources, the first giving 2,000 dev/test pairs."""
    held = fake_source("Sentences", short_pairs(2100), ("sentences-de-en",))
    docs = fake_source("Docs", [("Open the file", "Datei öffnen"), ("PDF", "PDF")], ("a", "b"))
    monkeypatch.setattr(recipe, "DEFAULT_SOURCES", (held, docs))
    monkeypatch.setattr(recipe, "HELD_OUT_SOURCE", held)
    monkeypatch.setattr(recipe.debian, "fetch", lambda packages, cache_dir: fake_debs(held, docs))
    return held, docs


def test_fetch_corpus_writes_splits_sources_and_report(
    tmp_path: Path, fake_recipe: tuple[Source, Source]
) -> None:
    report = fetch_corpus("de-en", tmp_path / "de-en", cache_dir=tmp_path / "cache")

    out = tmp_path / "de-en"
    assert len((out / "dev.en").read_text(encoding="utf-8").splitlines()) == 1000
    assert len((out / "test.de").read_text(encoding="utf-8").splitlines()) == 1000
    assert (out / "train.en").read_text(encoding="utf-8").splitlines()[-1] == "Open the file"
    assert (report.num_train, report.num_dev, report.num_test) == (101, 1000, 1000)

    table = report.table()
    assert "Sentences" in table and "Docs" in table and "total" in table
    assert "train 101 pairs, dev 1,000, test 1,000" in table
    docs_row = next(line for line in table.splitlines() if line.startswith("Docs"))
    assert docs_row.split()[1:] == ["2", "0", "1", "0", "0", "0", "0", "1"]

    sources_md = (out / "SOURCES.md").read_text(encoding="utf-8")
    assert "| Docs | `a` 1.0-1, `b` 1.0-1 | Docs licence | 1 | 0 |" in sources_md
    assert "| Sentences | `sentences-de-en` 1.0-1 | Sentences licence | 100 | 2000 |" in sources_md


def test_a_failing_source_leaves_no_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_recipe: tuple[Source, Source]
) -> None:
    held, _ = fake_recipe

    def broken(debs: object) -> Extracted:
        raise NmtError("cannot read the package")

    broken_source = Source(name="Broken", packages=("a",), licence="x", extract=broken)
    monkeypatch.setattr(recipe, "DEFAULT_SOURCES", (held, broken_source))
    with pytest.raises(NmtError, match="cannot read"):
        fetch_corpus("de-en", tmp_path / "de-en", cache_dir=tmp_path / "cache")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.slow
def test_real_fetch_is_complete_leak_free_and_byte_identical(tmp_path: Path) -> None:
    first = fetch_corpus("de-en", tmp_path / "first")
    second = fetch_corpus("de-en", tmp_path / "second")
    assert second.table() == first.table().replace(
        str(tmp_path / "first"), str(tmp_path / "second")
    )

    assert abs(first.num_train - 76_500) <= 3_000
    assert (first.num_dev, first.num_test) == (1000, 1000)
    names = ["train.en", "train.de", "dev.en", "dev.de", "test.en", "test.de", "SOURCES.md"]
    for name in names:
        assert (tmp_path / "first" / name).read_bytes() == (tmp_path / "second" / name).read_bytes()

    def lines(name: str) -> list[str]:
        return (tmp_path / "first" / name).read_text(encoding="utf-8").splitlines()

    assert len(lines("train.en")) == len(lines("train.de")) == first.num_train
    held_out = {line.casefold() for name in names[2:6] for line in lines(name)}
    assert len(held_out) == 4_000  # no sentence twice across dev and test
    train = {line.casefold() for line in lines("train.en") + lines("train.de")}
    assert not train & held_out
