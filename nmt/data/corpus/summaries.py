"""A summarisation corpus built offline: each Debian package's long description → its synopsis.

Debian's English package descriptions (the ``Translation-en`` indexes that ``apt-get update``
downloads when translations are on) hold, for every package, a one-line synopsis followed by a
long description of a few sentences. The long description is the source, the synopsis the
target: the same ``nmt train`` that translates learns to summarise.

Long descriptions are joined into one line (Debian's `` .`` paragraph marks and verbatim lines
included), pairs are deduplicated by their long description (packages built from one source
often share it word for word; keeping one stops the same input reaching both train and test),
and dev and test are a seeded sample of the rest. The output is the same bytes for the same
index files: records are read in file order, files in sorted order, and sampling has its own
seeded generator.

Files: ``{train,dev,test}.long`` (the descriptions) and ``.short`` (the synopses); train with
``--data.src_lang=long --data.tgt_lang=short``.
"""

from __future__ import annotations

import random
import subprocess
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nmt.durable import directory_written_atomically
from nmt.errors import NmtError

NAME = "summaries"
APT_LISTS = Path("/var/lib/apt/lists")
INDEX_PATTERNS = ("*_i18n_Translation-en", "*_i18n_Translation-en.*")
APT_HELPER = Path("/usr/lib/apt/apt-helper")  # decompresses any index apt can write
COMPRESSED = (".lz4", ".gz", ".xz", ".zst", ".bz2", ".lzma")
SRC_LANG, TGT_LANG = "long", "short"
SEED = 1234
MAX_HELDOUT = 1000  # dev and test each: at most this many pairs, and at most a tenth of them
MIN_PAIRS = 20  # fewer cannot fill train, dev and test
MAX_WORDS = 150  # longer descriptions are left out (a recurrent model's batches stay small)
SPLITS = ("train", "dev", "test")
DROP_REASONS = ("no long description", "too long", "duplicate")

Pair = tuple[str, str]  # (long description, synopsis)


@dataclass
class SummariesReport:
    """What ``fetch_summaries`` read, dropped and wrote."""

    out_dir: Path
    index_files: list[Path]
    records: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    num_train: int = 0
    num_dev: int = 0
    num_test: int = 0

    def table(self) -> str:
        lines = [
            f"read {self.records} package descriptions from {len(self.index_files)} index files"
        ]
        lines += [f"  dropped, {reason}: {self.dropped[reason]}" for reason in DROP_REASONS]
        lines.append(
            f"wrote {self.out_dir}: train {self.num_train}, dev {self.num_dev}, "
            f"test {self.num_test} pairs ({SRC_LANG} description → {TGT_LANG} synopsis)"
        )
        return "\n".join(lines)

    def sources_md(self) -> str:
        files = "".join(f"- `{path}`\n" for path in self.index_files)
        return (
            "# Package summaries\n\n"
            "Source: each Debian package's long description; target: its one-line synopsis, "
            "from these English description indexes (each description belongs to its "
            "package, under that package's terms):\n\n"
            f"{files}\n"
            f"{self.table()}\n"
        )


def index_files(lists_dir: Path) -> list[Path]:
    """The English description indexes in ``lists_dir``, sorted; an NmtError if there are none."""
    found = sorted({path for pattern in INDEX_PATTERNS for path in lists_dir.glob(pattern)})
    if not found:
        raise NmtError(
            f"{lists_dir}: no English package descriptions (*_i18n_Translation-en*); "
            "download them with `apt-get update -o Acquire::Languages=en` (as root; Debian "
            "images often switch translations off)"
        )
    return found


def read_index(path: Path) -> str:
    """The text of an index file, compressed (lz4, gz, xz, zst: by apt's own helper) or not."""
    try:
        if path.suffix not in COMPRESSED:
            return path.read_text(encoding="utf-8")
        if not APT_HELPER.is_file():
            raise NmtError(f"{path}: compressed, and {APT_HELPER} is missing to read it")
        done = subprocess.run(
            [str(APT_HELPER), "cat-file", str(path)], capture_output=True, check=False
        )
        if done.returncode != 0:
            message = done.stderr.decode(errors="replace").strip()
            raise NmtError(f"{path}: cannot decompress ({message})")
        return done.stdout.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NmtError(f"{path}: not UTF-8 ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise NmtError(f"{path}: cannot read ({exc.strerror})") from None


def descriptions(text: str) -> Iterator[tuple[str, list[str]]]:
    """(synopsis, long-description lines) of each record of a deb822 index.

    A record is a paragraph of ``Field: value`` lines; continuation lines start with a space.
    The description is the ``Description-en`` (or ``Description``) field: its first line the
    synopsis, its continuation lines the long description.
    """
    for record in text.split("\n\n"):
        synopsis: str | None = None
        body: list[str] = []
        for line in record.splitlines():
            if line.startswith((" ", "\t")):
                if synopsis is not None:
                    body.append(line)
            elif synopsis is not None:
                break  # the next field: the description has ended
            elif line.startswith(("Description-en:", "Description:")):
                synopsis = line.partition(":")[2].strip()
        if synopsis is not None:
            yield synopsis, body


def one_line(body: list[str]) -> str:
    """A long description as one line: " ." (a blank line in Debian's format) and verbatim
    indentation become single spaces."""
    words = [word for line in body if line.strip() != "." for word in line.split()]
    return " ".join(words)


def collect_pairs(texts: list[str], report: SummariesReport) -> list[Pair]:
    """The usable (long, synopsis) pairs of the index texts, in order, counted into ``report``."""
    pairs: list[Pair] = []
    seen: set[str] = set()
    for text in texts:
        for synopsis, body in descriptions(text):
            report.records += 1
            long = one_line(body)
            if not long or not synopsis:
                report.dropped["no long description"] += 1
            elif len(long.split()) > MAX_WORDS:
                report.dropped["too long"] += 1
            elif long in seen:
                report.dropped["duplicate"] += 1
            else:
                seen.add(long)
                pairs.append((long, synopsis))
    return pairs


def split_pairs(pairs: list[Pair], *, seed: int) -> dict[str, list[Pair]]:
    """train/dev/test: dev and test a seeded sample of min(MAX_HELDOUT, a tenth) pairs each."""
    order = list(range(len(pairs)))
    random.Random(seed).shuffle(order)
    num_heldout = min(MAX_HELDOUT, len(pairs) // 10)
    dev = sorted(order[:num_heldout])
    test = sorted(order[num_heldout : 2 * num_heldout])
    train = sorted(order[2 * num_heldout :])
    return {
        name: [pairs[i] for i in ids] for name, ids in zip(SPLITS, (train, dev, test), strict=True)
    }


def fetch_summaries(
    out_dir: Path, *, lists_dir: Path | None = None, index: Sequence[Path] | None = None
) -> SummariesReport:
    """Build the summaries corpus from the description indexes in ``lists_dir`` (or from the
    deb822 files ``index``, e.g. /var/lib/dpkg/status: the installed packages') into
    ``out_dir``, all or nothing. ``lists_dir`` defaults to apt's, APT_LISTS."""
    files = index_files(lists_dir or APT_LISTS) if index is None else list(index)
    report = SummariesReport(out_dir=out_dir, index_files=files)
    pairs = collect_pairs([read_index(path) for path in files], report)
    if not pairs:
        raise NmtError(
            f"{', '.join(map(str, files))}: no package has a long description: "
            "the corpus would be empty"
        )
    if len(pairs) < MIN_PAIRS:
        raise NmtError(
            f"{', '.join(map(str, files))}: only {len(pairs)} usable package descriptions; "
            f"train, dev and test need at least {MIN_PAIRS}"
        )
    splits = split_pairs(pairs, seed=SEED)
    report.num_train, report.num_dev, report.num_test = (len(splits[s]) for s in SPLITS)
    if out_dir.exists() and not out_dir.is_dir():
        raise NmtError(f"{out_dir}: exists and is not a folder; choose another --dir")
    with directory_written_atomically(out_dir, what="the summaries corpus") as tmp:
        for name, split in splits.items():
            for side, lang in enumerate((SRC_LANG, TGT_LANG)):
                text = "".join(f"{pair[side]}\n" for pair in split)
                (tmp / f"{name}.{lang}").write_text(text, encoding="utf-8")
        (tmp / "SOURCES.md").write_text(report.sources_md(), encoding="utf-8")
        tmp.chmod(0o755)  # mkdtemp's folder is private; the corpus is not
    return report
