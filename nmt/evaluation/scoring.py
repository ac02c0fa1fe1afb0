"""Corpus BLEU and chrF with sacreBLEU, and their signatures (the paper, section 4).

sacreBLEU scores detokenized text with its own tokenization, so its numbers are comparable
across papers given the signature. The paper's own scorer ran on tokenized, compound-split text;
``tokenized_bleu`` adds an approximation of it, always labelled as such: BLEU after sacreBLEU's
international tokenization, which splits punctuation and hyphenated compounds apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from sacrebleu.metrics import BLEU, CHRF

from nmt.data.parallel import check_same_length, iter_lines
from nmt.errors import NmtError

TOKENIZED_BLEU_LABEL = "tokenized BLEU (paper-style, not comparable to sacreBLEU)"


@dataclass
class Scores:
    """Corpus scores (0–100) with the signatures that make them reproducible."""

    bleu: float
    chrf: float
    bleu_signature: str
    chrf_signature: str
    bleu_details: str  # n-gram precisions, brevity penalty and lengths
    tokenized_bleu: float | None = None
    tokenized_bleu_signature: str | None = None

    def report(self) -> str:
        lines = [
            f"sacreBLEU BLEU {self.bleu:.2f}  {self.bleu_details}",
            f"  signature: {self.bleu_signature}",
            f"sacreBLEU chrF {self.chrf:.2f}",
            f"  signature: {self.chrf_signature}",
        ]
        if self.tokenized_bleu is not None:
            lines += [
                f"{TOKENIZED_BLEU_LABEL}: {self.tokenized_bleu:.2f}",
                f"  signature: {self.tokenized_bleu_signature}",
            ]
        return "\n".join(lines)

    def as_dict(self) -> dict[str, float | str | None]:
        return asdict(self)


def score(hyps: Sequence[str], refs: Sequence[str], *, tokenized_bleu: bool = False) -> Scores:
    """sacreBLEU BLEU and chrF of ``hyps`` against one reference each (detokenized text)."""
    if len(hyps) != len(refs):
        raise NmtError(f"{len(hyps)} hypotheses but {len(refs)} references")
    hyps, refs = list(hyps), list(refs)
    bleu, chrf = BLEU(), CHRF()
    bleu_score = bleu.corpus_score(hyps, [refs])
    chrf_score = chrf.corpus_score(hyps, [refs])
    scores = Scores(
        bleu=bleu_score.score,
        chrf=chrf_score.score,
        bleu_signature=str(bleu.get_signature()),
        chrf_signature=str(chrf.get_signature()),
        bleu_details=bleu_score.format(score_only=False).split(" ", 3)[-1],
    )
    if tokenized_bleu:
        tokenized = BLEU(tokenize="intl")
        scores.tokenized_bleu = tokenized.corpus_score(hyps, [refs]).score
        scores.tokenized_bleu_signature = str(tokenized.get_signature())
    return scores


def score_files(hyp_path: Path, ref_path: Path, *, tokenized_bleu: bool = False) -> Scores:
    """Score a hypothesis file against a reference file of the same number of lines."""
    check_same_length(hyp_path, ref_path)
    return score(
        list(iter_lines(hyp_path)), list(iter_lines(ref_path)), tokenized_bleu=tokenized_bleu
    )
