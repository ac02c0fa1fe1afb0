"""What a corpus build kept and dropped, per source: the table it prints and its SOURCES.md."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from nmt.data.corpus.debian import Deb

# The recipe's reasons for dropping a pair, in the order its filters run (the table's columns).
DROP_REASONS = ("empty", "untranslated", "too long", "duplicate", "leak")
DROP_HELP = {
    "empty": "one side empty",
    "untranslated": "both sides the same text",
    "too long": "more than {max_words} words on a side",
    "duplicate": "the same pair came earlier (in this or an earlier source)",
    "leak": "a side equals (ignoring case) a side of a dev or test pair",
}


@dataclass
class SourceReport:
    """One source's packages and counts."""

    name: str
    licence: str
    debs: list[Deb]
    extracted: int = 0
    skipped: Counter[str] = field(default_factory=Counter)  # while extracting, by reason
    dropped: Counter[str] = field(default_factory=Counter)  # by the recipe, by DROP_REASONS
    held_out: int = 0  # pairs that went to dev and test
    kept: int = 0  # pairs that went to train


@dataclass
class FetchReport:
    """The outcome of ``fetch_corpus``: where it wrote, and what each source gave."""

    name: str
    out_dir: Path
    sources: list[SourceReport]
    num_train: int
    num_dev: int
    num_test: int
    held_out_source: str
    max_words: int
    max_heldout_words: int
    seed: int

    def table(self) -> str:
        """A per-source table of pairs kept and dropped, with reasons, then the totals."""
        header = ["source", "extracted", *DROP_REASONS, "dev/test", "train"]
        counts = [
            [s.extracted, *(s.dropped[reason] for reason in DROP_REASONS), s.held_out, s.kept]
            for s in self.sources
        ]
        totals = [sum(row[i] for row in counts) for i in range(len(header) - 1)]
        names = [s.name for s in self.sources]
        cells = [header] + [
            [name, *(f"{count:,}" for count in row)]
            for name, row in zip([*names, "total"], [*counts, totals], strict=True)
        ]
        widths = [max(len(row[i]) for row in cells) for i in range(len(header))]

        def line(row: list[str]) -> str:
            first = row[0].ljust(widths[0])
            rest = (value.rjust(width) for value, width in zip(row[1:], widths[1:], strict=True))
            return "  ".join([first, *rest])

        rule = "-" * len(line(cells[0]))
        lines = [line(cells[0]), rule, *(line(row) for row in cells[1:-1]), rule, line(cells[-1])]
        lines += ["", "dropped by the recipe:"]
        lines += [
            f"  {reason}: {DROP_HELP[reason].format(max_words=self.max_words)}"
            for reason in DROP_REASONS
        ]
        lines += ["skipped while extracting (before the counts above):"]
        for source in self.sources:
            for reason, count in sorted(source.skipped.items()):
                if count:
                    lines.append(f"  {source.name}: {count:,} {reason}")
        lines += [
            "",
            f"{self.name}: train {self.num_train:,} pairs, dev {self.num_dev:,}, "
            f"test {self.num_test:,} -> {self.out_dir}",
        ]
        return "\n".join(lines)

    def sources_md(self) -> str:
        """The contents of SOURCES.md: each source, its packages, licence and pair count."""
        lines = [
            f"# {self.name}: where these pairs come from",
            "",
            "Built by `nmt data fetch` from Debian packages. Every pair is English (`.en`) and "
            "German (`.de`) on the same line number.",
            "",
            "| source | packages | licence | train pairs | dev/test pairs |",
            "|---|---|---|---|---|",
        ]
        for s in self.sources:
            packages = ", ".join(f"`{deb.package}` {deb.version}" for deb in s.debs)
            lines.append(f"| {s.name} | {packages} | {s.licence} | {s.kept} | {s.held_out} |")
        lines += [
            "",
            f"dev ({self.num_dev} pairs) and test ({self.num_test} pairs) are sampled with seed "
            f"{self.seed} from the {self.held_out_source} of at most {self.max_heldout_words} "
            "words a side. train is every other pair, whitespace normalised, less the pairs with "
            f"an empty side, the same text on both sides, more than {self.max_words} words on a "
            "side, an exact duplicate earlier, or a side that (ignoring case) stands in dev or "
            f"test: {self.num_train} pairs.",
            "",
        ]
        return "\n".join(lines)
