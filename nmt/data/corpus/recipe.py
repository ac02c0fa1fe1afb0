"""The standard English–German corpus: fetch the sources, split, clean, and write it atomically.

dev and test are sampled with a fixed seed from the Ding example sentences (short, everyday
sentences); train is every other pair of every source, cleaned in one pass whose filters run in
the order of ``report.DROP_REASONS``. The output is the same bytes on every run: sources, pages
and lines are read in sorted or file order, sampling uses its own seeded generator, and sets only
answer membership questions (their iteration order, which depends on string hashing, never
reaches the output).
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from nmt.data.corpus import (
    debian,
    ding,
    gimp_help,
    gnome_help,
    libreoffice_help,
    libreoffice_ui,
    manpages,
    summaries,
)
from nmt.data.corpus.debian import Deb
from nmt.data.corpus.report import FetchReport, SourceReport
from nmt.data.corpus.source import Extracted, Pair, Source, normalise
from nmt.durable import publish, staging_dir, temporary_dir
from nmt.errors import NmtError

log = logging.getLogger(__name__)

CORPORA = ("de-en",)
# In this order: an exact duplicate is kept where it first comes. The GIMP manual, optional,
# comes last so that adding it changes no other source's counts.
DEFAULT_SOURCES = (
    libreoffice_help.SOURCE,
    libreoffice_ui.SOURCE,
    ding.SOURCE,
    gnome_help.SOURCE,
    manpages.SOURCE,
)
HELD_OUT_SOURCE = ding.SOURCE
SEED = 1234
NUM_DEV = NUM_TEST = 1000
MAX_HELDOUT_WORDS = 30
MAX_WORDS = 50
SPLITS = ("train", "dev", "test")


@dataclass
class Split:
    """The three splits, as lists of (English, German) pairs."""

    train: list[Pair]
    dev: list[Pair]
    test: list[Pair]


def _num_words(pair: Pair) -> int:
    return max(len(pair[0].split()), len(pair[1].split()))


def sample_heldout(
    pairs: Sequence[Pair], *, num_dev: int, num_test: int, max_words: int, seed: int
) -> tuple[list[int], list[int]]:
    """Indices into ``pairs`` of dev and of test: a seeded sample of plain, short pairs.

    No English or German sentence (ignoring case) is taken twice, so dev and test share none.
    """
    candidates = [
        index
        for index, pair in enumerate(pairs)
        if all(pair)
        and pair[0].casefold() != pair[1].casefold()
        and _num_words(pair) <= max_words
        and ding.is_plain(pair)
    ]
    random.Random(seed).shuffle(candidates)
    taken: list[int] = []
    seen: set[str] = set()
    for index in candidates:
        sides = {side.casefold() for side in pairs[index]}
        if sides & seen:
            continue
        seen |= sides
        taken.append(index)
        if len(taken) == num_dev + num_test:
            return taken[:num_dev], taken[num_dev:]
    raise NmtError(
        f"only {len(taken)} distinct sentence pairs of at most {max_words} words to sample "
        f"{num_dev} dev and {num_test} test pairs from"
    )


def build_split(
    extracted: Sequence[tuple[Source, Extracted]],
    debs: Mapping[str, Deb],
    *,
    held_out_source: Source,
    num_dev: int,
    num_test: int,
    max_heldout_words: int,
    max_words: int,
    seed: int,
) -> tuple[Split, list[SourceReport]]:
    """Sample dev/test from one source, then clean every source's pairs into train."""
    sources = [source for source, _ in extracted]
    if held_out_source not in sources:
        raise ValueError(f"dev and test come from {held_out_source.name}, which is not among them")
    normalised = [[(normalise(en), normalise(de)) for en, de in out.pairs] for _, out in extracted]
    held_pairs = normalised[sources.index(held_out_source)]
    dev_ids, test_ids = sample_heldout(
        held_pairs, num_dev=num_dev, num_test=num_test, max_words=max_heldout_words, seed=seed
    )
    held_ids = set(dev_ids) | set(test_ids)
    dev, test = [held_pairs[i] for i in dev_ids], [held_pairs[i] for i in test_ids]
    held_sides = {side.casefold() for pair in dev + test for side in pair}

    train: list[Pair] = []
    seen: set[Pair] = set()
    reports = []
    for (source, out), pairs in zip(extracted, normalised, strict=True):
        report = SourceReport(
            name=source.name,
            licence=source.licence,
            debs=[debs[package] for package in source.packages],
            extracted=len(pairs),
            skipped=out.skipped,
        )
        for index, pair in enumerate(pairs):
            if source is held_out_source and index in held_ids:
                report.held_out += 1
                continue
            reason = _drop_reason(pair, seen, held_sides, max_words)
            if reason is not None:
                report.dropped[reason] += 1
                continue
            seen.add(pair)
            train.append(pair)
            report.kept += 1
        reports.append(report)
    return Split(train, dev, test), reports


def _drop_reason(pair: Pair, seen: set[Pair], held_sides: set[str], max_words: int) -> str | None:
    """Why ``pair`` stays out of train (the first of ``report.DROP_REASONS`` that holds)."""
    en, de = pair
    if not en or not de:
        return "empty"
    if en == de:
        return "untranslated"
    if _num_words(pair) > max_words:
        return "too long"
    if pair in seen:
        return "duplicate"
    if en.casefold() in held_sides or de.casefold() in held_sides:
        return "leak"
    return None


def check_out_dir(out_dir: Path) -> None:
    """Fail early, before any download, where ``out_dir`` cannot be a folder of ours."""
    if out_dir.exists() and not out_dir.is_dir():
        raise NmtError(f"{out_dir}: exists and is not a folder; choose another --dir")
    for parent in out_dir.parents:
        if parent.exists():
            if not parent.is_dir():
                raise NmtError(f"{out_dir}: {parent} is a file, not a folder")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise NmtError(f"{out_dir}: cannot write in {parent}")
            break


def write_corpus(out_dir: Path, split: Split, sources_md: str) -> None:
    """Write ``{train,dev,test}.{en,de}`` and SOURCES.md into ``out_dir``, all or nothing.

    Everything is written into a temporary folder beside ``out_dir`` first, then moved in
    (``nmt.durable.publish``); a failure before the move leaves ``out_dir`` as it was.
    """
    check_out_dir(out_dir)
    try:
        if not out_dir.exists():
            with temporary_dir(out_dir) as tmp:
                _write_files(tmp, split, sources_md)
                tmp.chmod(0o755)  # mkdtemp's folder is private; the corpus is not
            return
        with staging_dir(out_dir) as tmp:
            _write_files(tmp, split, sources_md)
            for path in sorted(tmp.iterdir()):
                publish(path, out_dir / path.name)
    except OSError as exc:
        raise NmtError(f"{out_dir}: cannot write the corpus ({exc})") from None


def _write_files(folder: Path, split: Split, sources_md: str) -> None:
    for name in SPLITS:
        pairs: list[Pair] = getattr(split, name)
        for side, lang in enumerate(("en", "de")):
            text = "".join(f"{pair[side]}\n" for pair in pairs)
            (folder / f"{name}.{lang}").write_text(text, encoding="utf-8")
    (folder / "SOURCES.md").write_text(sources_md, encoding="utf-8")


def fetch_corpus(
    name: str, out_dir: Path, *, cache_dir: Path | None = None, with_gimp: bool = False
) -> FetchReport | summaries.SummariesReport:
    """Fetch, extract, split and write the named corpus into ``out_dir``; say what it did."""
    if name == summaries.NAME:  # built from apt's package index, not from packages
        return summaries.fetch_summaries(Path(out_dir))
    if name not in CORPORA:
        known = ", ".join((*CORPORA, summaries.NAME))
        raise NmtError(f"unknown corpus {name!r}; known: {known}")
    out_dir = Path(out_dir)
    check_out_dir(out_dir)
    cache_dir = cache_dir if cache_dir is not None else debian.default_cache_dir()
    sources = DEFAULT_SOURCES + ((gimp_help.SOURCE,) if with_gimp else ())
    debs = debian.fetch([p for source in sources for p in source.packages], cache_dir)
    extracted = []
    for source in sources:
        log.info("extracting %s", source.name)
        extracted.append((source, source.extract(debs)))
    split, reports = build_split(
        extracted,
        debs,
        held_out_source=HELD_OUT_SOURCE,
        num_dev=NUM_DEV,
        num_test=NUM_TEST,
        max_heldout_words=MAX_HELDOUT_WORDS,
        max_words=MAX_WORDS,
        seed=SEED,
    )
    report = FetchReport(
        name=name,
        out_dir=out_dir,
        sources=reports,
        num_train=len(split.train),
        num_dev=len(split.dev),
        num_test=len(split.test),
        held_out_source=HELD_OUT_SOURCE.name,
        max_words=MAX_WORDS,
        max_heldout_words=MAX_HELDOUT_WORDS,
        seed=SEED,
    )
    write_corpus(out_dir, split, report.sources_md())
    log.info("wrote %s", out_dir)
    return report
