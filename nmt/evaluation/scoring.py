"""Corpus BLEU and chrF with sacreBLEU, and their signatures (the paper, section 4).

sacreBLEU scores detokenized text with its own tokenization, so its numbers are comparable
across papers given the signature. The paper's own scorer ran on tokenized, compound-split text;
``tokenized_bleu`` adds an approximation of it, always labelled as such: BLEU after sacreBLEU's
international tokenization, which splits punctuation and hyphenated compounds apart.

``paired_bootstrap`` says whether one system's BLEU and chrF differ from another's by more than
chance, with sacreBLEU's paired bootstrap resampling (Koehn, 2004).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from sacrebleu.metrics import BLEU, CHRF
from sacrebleu.significance import PairedTest

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
    if not hyps:
        raise NmtError("nothing to score: the files are empty")
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


@dataclass
class Estimate:
    """A system's corpus score, and the mean and 95 % interval of its bootstrap resamples."""

    score: float
    mean: float
    half_width: float  # the interval is mean ± half_width

    def report(self) -> str:
        return f"{self.score:6.2f}  ({self.mean:.2f} ± {self.half_width:.2f})"


@dataclass
class PairedComparison:
    """One metric of a system against a baseline on the same sentences."""

    metric: str
    signature: str
    baseline: Estimate
    system: Estimate
    p_value: float  # two-sided: the chance of a difference this large if the systems were equal

    @property
    def difference(self) -> float:
        return self.system.score - self.baseline.score

    def significant(self, level: float = 0.05) -> bool:
        return self.p_value < level


def paired_bootstrap(
    hyps: Sequence[str],
    baseline_hyps: Sequence[str],
    refs: Sequence[str],
    *,
    num_samples: int = 1000,
) -> list[PairedComparison]:
    """BLEU and chrF of ``hyps`` against ``baseline_hyps``, by sacreBLEU's paired bootstrap.

    Both systems are scored on the same ``num_samples`` resamples of the sentences; sacreBLEU's
    seed (12345 unless SACREBLEU_SEED says otherwise) makes the result repeatable.
    """
    if not len(hyps) == len(baseline_hyps) == len(refs):
        raise NmtError(
            f"{len(hyps)} hypotheses, {len(baseline_hyps)} baseline hypotheses and "
            f"{len(refs)} references: the paired test needs the same sentences for all three"
        )
    if not refs:
        raise NmtError("the paired test needs at least one sentence")
    if num_samples < 1:
        raise NmtError(f"the number of bootstrap resamples must be positive, not {num_samples}")
    hyps, baseline_hyps = list(hyps), list(baseline_hyps)
    test = PairedTest(
        [("baseline", baseline_hyps), ("system", hyps)],
        {"BLEU": BLEU(), "chrF": CHRF()},
        [list(refs)],
        test_type="bs",
        n_samples=num_samples,
    )
    signatures, results = test()
    comparisons = []
    for metric, signature in signatures.items():
        baseline, system = results[metric]
        assert not isinstance(baseline, str) and not isinstance(system, str)
        assert system.p_value is not None and system.mean is not None and system.ci is not None
        assert baseline.mean is not None and baseline.ci is not None
        # sacreBLEU counts the resamples whose difference *exceeds* the observed one, so when
        # both systems score the same in every resample (identical outputs; two outputs that
        # both score BLEU 0) it returns its floor 1 / (n + 1), which reads as significant. With
        # no observed difference, a difference at least as large is certain: p = 1.
        p_value = 1.0 if system.score == baseline.score else float(system.p_value)
        comparisons.append(
            PairedComparison(
                metric=metric,
                signature=str(signature),
                baseline=Estimate(baseline.score, float(baseline.mean), float(baseline.ci)),
                system=Estimate(system.score, float(system.mean), float(system.ci)),
                p_value=p_value,
            )
        )
    return comparisons


def comparison_report(
    comparisons: Sequence[PairedComparison], *, system: str, baseline: str, level: float = 0.05
) -> str:
    """A table of the paired test's results, one metric a row, with a plain verdict each."""
    lines = [
        f"paired bootstrap resampling (sacreBLEU): {system} against the baseline {baseline}",
        "scores: corpus score  (bootstrap mean ± half-width of the 95 % interval)",
        f"{'metric':<7} {'baseline':<24} {'system':<24} {'difference':>10}  {'p-value':>7}",
    ]
    for c in comparisons:
        if c.significant(level):
            verdict = f"{'better' if c.difference > 0 else 'worse'} (significant, p < {level:g})"
        else:
            verdict = f"no significant difference (p ≥ {level:g})"
        lines.append(
            f"{c.metric:<7} {c.baseline.report():<24} {c.system.report():<24} "
            f"{c.difference:>+10.2f}  {c.p_value:>7.4f}  {verdict}"
        )
    lines += [f"  {c.metric} signature: {c.signature}" for c in comparisons]
    return "\n".join(lines)
