"""Glossary terms for a test set, chosen by rule from the Ding dictionary (issue 25's benchmark).

For each test sentence it picks up to two dictionary entries, by this rule and nothing else:

- an entry is a pair of corresponding alternatives of a Ding line that are not example
  sentences: headwords and their inflected forms (``Hund {m} | Hunde {pl} :: dog | dogs``), at
  most four words a side, without gaps, slashes, parentheses or placeholders (``sb.``, ``etw.``);
  where a part lists as many alternatives on both sides they pair by position, else each
  English alternative pairs with the first German one;
- its English side occurs in the English source by the glossary's own matching policy
  (nmt.decoding.glossary: case-insensitive whole words, plural/possessive endings), and its
  German side occurs in the German reference as written, as whole words (as Dinu et al., 2019
  chose terminology for their test: a term the reference confirms is right for the sentence);
- the two sides differ other than in case (a term copied from the source tests nothing), and
  the English side is not made only of the 200 most frequent words of the training sources
  (``to`` → ``zu``, ``still`` → ``noch``: function words, not terminology);
- the longest English term first (the most specific), ties broken by the dictionary's order,
  then a second one whose matches in the source and the reference overlap the first's nowhere.

The output is a glossary file (source term, target term, note): the note names the test line
the term was chosen for (``line 17``) and its dictionary line, so benchmarks/constraints.py can
give each sentence its own terms. Nothing here sees a model's output.

    python scripts/glossary_terms.py --data data/de-en -o data/de-en/test.terms.tsv
"""

from __future__ import annotations

import argparse
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from nmt.data.corpus import debian, ding
from nmt.data.parallel import iter_lines
from nmt.decoding.glossary import term_pattern
from nmt.durable import atomic_write_text
from nmt.errors import NmtError

MAX_WORDS = 4
NUM_COMMON = 200
PLACEHOLDER = re.compile(r"\b(?:sb|sth|jd[mnrs]?|etw)\b\.?|\.\.\.|…", re.IGNORECASE)
WORD = re.compile(r"\w+(?:['’-]\w+)*")
ENDINGS = ("'s", "’s", "es", "s", "'", "’")


@dataclass(frozen=True)
class Entry:
    en: str
    de: str
    line: int  # in the dictionary file, from 1


def usable(term: str) -> bool:
    return (
        bool(term)
        and not ding.is_sentence(term)
        and not ding.NOT_PLAIN.search(term)
        and not PLACEHOLDER.search(term)
        and len(term.split()) <= MAX_WORDS
    )


def entries(lines: Iterable[str]) -> Iterator[Entry]:
    """The term pairs of the dictionary's lines (see the module docstring)."""
    for number, line in enumerate(lines, start=1):
        if line.startswith("#") or " :: " not in line:
            continue
        de_part, _, en_part = line.partition(" :: ")
        de_entries, en_entries = de_part.split(" | "), en_part.split(" | ")
        if len(de_entries) != len(en_entries):
            continue
        for de_entry, en_entry in zip(de_entries, en_entries, strict=True):
            de_terms = [ding.strip_annotations(t) for t in de_entry.split(";")]
            en_terms = [ding.strip_annotations(t) for t in en_entry.split(";")]
            if not de_terms or not en_terms:
                continue
            for i, en in enumerate(en_terms):
                de = de_terms[i] if len(de_terms) == len(en_terms) else de_terms[0]
                if usable(en) and usable(de) and en.casefold() != de.casefold():
                    yield Entry(en, de, number)


def common_words(lines: Iterable[str]) -> set[str]:
    """The NUM_COMMON most frequent words (lowercased) of ``lines``."""
    counts = Counter(w.casefold() for line in lines for w in WORD.findall(line))
    return {word for word, _ in counts.most_common(NUM_COMMON)}


def index(all_entries: Iterable[Entry], common: set[str]) -> dict[str, list[Entry]]:
    """Entries by their English side, lowercased, less those made of common words only."""
    by_en: dict[str, list[Entry]] = defaultdict(list)
    for entry in all_entries:
        key = entry.en.casefold()
        if not set(WORD.findall(key)) <= common:
            by_en[key].append(entry)
    return by_en


def spans(pattern: re.Pattern[str], text: str) -> list[tuple[int, int]]:
    return [m.span() for m in pattern.finditer(text)]


def whole_words(term: str) -> re.Pattern[str]:
    return re.compile(r"(?<!\w)" + re.escape(term) + r"(?!\w)")


def overlap(a: list[tuple[int, int]], b: list[tuple[int, int]]) -> bool:
    return any(s1 < e2 and s2 < e1 for s1, e1 in a for s2, e2 in b)


def choose(source: str, reference: str, by_en: dict[str, list[Entry]]) -> list[Entry]:
    """Up to two entries for one sentence pair (see the module docstring)."""
    words = [w.casefold() for w in WORD.findall(source)]
    keys = set()
    for n in range(1, MAX_WORDS + 1):
        for i in range(len(words) - n + 1):
            gram = " ".join(words[i : i + n])
            keys.add(gram)
            keys.update(gram.removesuffix(e) for e in ENDINGS if gram.endswith(e))
    candidates = []
    for key in keys:
        for entry in by_en.get(key, []):
            src_spans = spans(term_pattern(entry.en), source)
            ref_spans = spans(whole_words(entry.de), reference)
            if src_spans and ref_spans:
                candidates.append((entry, src_spans, ref_spans))
    candidates.sort(key=lambda c: (-len(c[0].en), c[0].line, c[0].en, c[0].de))
    chosen: list[tuple[Entry, list[tuple[int, int]], list[tuple[int, int]]]] = []
    for candidate in candidates:
        if len(chosen) == 2:
            break
        if all(
            not overlap(candidate[1], other[1]) and not overlap(candidate[2], other[2])
            for other in chosen
        ):
            chosen.append(candidate)
    return [entry for entry, _, _ in chosen]


def dictionary_lines(cache_dir: Path) -> list[str]:
    deb = debian.cached_deb(ding.PACKAGE, cache_dir)
    if deb is None:
        raise NmtError(f"no cached {ding.PACKAGE} in {cache_dir}: run `nmt data fetch de-en` first")
    files = debian.read_files(deb, lambda p: p == ding.DICTIONARY)
    return files[ding.DICTIONARY].decode("utf-8").splitlines()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data/de-en"))
    parser.add_argument("--split", default="test")
    parser.add_argument("--cache", type=Path, default=debian.default_cache_dir())
    parser.add_argument("-o", "--output", type=Path, default=Path("data/de-en/test.terms.tsv"))
    args = parser.parse_args()

    common = common_words(iter_lines(args.data / "train.en"))
    by_en = index(entries(dictionary_lines(args.cache)), common)
    sources = list(iter_lines(args.data / f"{args.split}.en"))
    references = list(iter_lines(args.data / f"{args.split}.de"))
    rows, per_sentence = [], [0, 0, 0]
    for number, (source, reference) in enumerate(zip(sources, references, strict=True), 1):
        chosen = choose(source, reference, by_en)
        per_sentence[len(chosen)] += 1
        rows += [f"{e.en}\t{e.de}\tline {number}; Ding line {e.line}\n" for e in chosen]
    atomic_write_text(args.output, "".join(rows))
    print(
        f"{len(rows)} terms for {len(sources)} sentences ({per_sentence[2]} with two, "
        f"{per_sentence[1]} with one, {per_sentence[0]} with none) from {len(by_en)} "
        f"dictionary terms: {args.output}"
    )


if __name__ == "__main__":
    main()
