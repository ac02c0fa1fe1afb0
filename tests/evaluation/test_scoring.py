"""Scores are sacreBLEU's own numbers, with signatures; mismatched files are refused; the paired
bootstrap tells identical systems from clearly different ones."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import sacrebleu

from nmt.cli import main
from nmt.errors import NmtError
from nmt.evaluation.scoring import (
    TOKENIZED_BLEU_LABEL,
    comparison_report,
    paired_bootstrap,
    score,
    score_files,
)

HYPS = [
    "The cat sat on the mat.",
    "A well-known dog ran in the park today.",
    "Hello world!",
    "It was a bright, cold day in April.",
]
REFS = [
    "The cat sat on a mat.",
    "A well-known dog was running in the park.",
    "Hello, world!",
    "It was a bright cold day in April, and the clocks were striking thirteen.",
]


def test_scores_are_sacrebleus() -> None:
    scores = score(HYPS, REFS)
    assert scores.bleu == pytest.approx(sacrebleu.corpus_bleu(HYPS, [REFS]).score)
    assert scores.chrf == pytest.approx(sacrebleu.corpus_chrf(HYPS, [REFS]).score)
    assert 0 < scores.bleu < 100 and 0 < scores.chrf < 100
    assert "tok:13a" in scores.bleu_signature and "nrefs:1" in scores.bleu_signature
    assert "nc:6" in scores.chrf_signature
    assert scores.tokenized_bleu is None
    assert "paper-style" not in scores.report()


def test_perfect_output_scores_100() -> None:
    scores = score(REFS, REFS)
    assert scores.bleu == pytest.approx(100.0)
    assert scores.chrf == pytest.approx(100.0)


def test_tokenized_bleu_is_labelled() -> None:
    scores = score(HYPS, REFS, tokenized_bleu=True)
    expected = sacrebleu.corpus_bleu(HYPS, [REFS], tokenize="intl").score
    assert scores.tokenized_bleu == pytest.approx(expected)
    assert scores.tokenized_bleu != pytest.approx(scores.bleu)
    assert "tok:intl" in (scores.tokenized_bleu_signature or "")
    assert TOKENIZED_BLEU_LABEL in scores.report()
    assert "not comparable to sacreBLEU" in TOKENIZED_BLEU_LABEL


def test_report_and_dict() -> None:
    scores = score(HYPS, REFS)
    report = scores.report()
    assert f"BLEU {scores.bleu:.2f}" in report and scores.bleu_signature in report
    assert f"chrF {scores.chrf:.2f}" in report and scores.chrf_signature in report
    as_dict = scores.as_dict()
    assert as_dict["bleu"] == scores.bleu and as_dict["chrf"] == scores.chrf
    assert as_dict["bleu_signature"] == scores.bleu_signature


def test_lists_of_different_lengths_are_refused() -> None:
    with pytest.raises(NmtError, match="3 hypotheses but 4 references"):
        score(HYPS[:3], REFS)


def test_score_files(tmp_path: Path) -> None:
    hyp, ref = tmp_path / "hyp.txt", tmp_path / "ref.txt"
    hyp.write_text("\n".join(HYPS) + "\n", encoding="utf-8")
    ref.write_text("\n".join(REFS) + "\n", encoding="utf-8")
    assert score_files(hyp, ref).as_dict() == score(HYPS, REFS).as_dict()


def test_files_of_different_lengths_are_refused(tmp_path: Path) -> None:
    hyp, ref = tmp_path / "hyp.txt", tmp_path / "ref.txt"
    hyp.write_text("\n".join(HYPS[:3]) + "\n", encoding="utf-8")
    ref.write_text("\n".join(REFS) + "\n", encoding="utf-8")
    with pytest.raises(NmtError) as error:
        score_files(hyp, ref)
    assert str(hyp) in str(error.value) and str(ref) in str(error.value)


# -- paired bootstrap resampling -------------------------------------------------------------


def corrupted(sentences: list[str], *, share: float, seed: int) -> list[str]:
    """Each word replaced by a wrong one with probability ``share``."""
    rng = random.Random(seed)
    return [
        " ".join("wrong" if rng.random() < share else word for word in sentence.split())
        for sentence in sentences
    ]


def references(count: int = 200) -> list[str]:
    rng = random.Random(0)
    words = ["the", "cat", "dog", "house", "tree", "runs", "sees", "eats", "big", "small", "red"]
    return [" ".join(rng.choice(words) for _ in range(rng.randint(4, 12))) for _ in range(count)]


def test_identical_systems_do_not_differ_significantly() -> None:
    refs = references()
    hyps = corrupted(refs, share=0.3, seed=1)
    comparisons = paired_bootstrap(hyps, list(hyps), refs)
    assert [c.metric for c in comparisons] == ["BLEU", "chrF2"]
    for c in comparisons:
        assert c.difference == 0.0
        assert c.p_value == 1.0 and not c.significant()
        assert c.system == c.baseline
        # the 95 % interval is real: it has a width and holds the score
        assert 0 < c.system.half_width < 10
        assert abs(c.system.mean - c.system.score) < c.system.half_width
    assert "no significant difference" in comparison_report(comparisons, system="a", baseline="b")


def test_two_different_outputs_that_both_score_zero_do_not_differ() -> None:
    refs = references()
    garbage = [" ".join("xyz" for _ in ref.split()) for ref in refs]
    other = [" ".join("qqq" for _ in ref.split()[:-1]) for ref in refs]
    bleu = paired_bootstrap(garbage, other, refs)[0]
    assert bleu.metric == "BLEU" and bleu.system.score == bleu.baseline.score == 0.0
    assert bleu.p_value == 1.0 and not bleu.significant()


def test_systems_differing_in_one_sentence_are_not_significantly_different() -> None:
    refs = references()
    baseline = corrupted(refs, share=0.3, seed=1)
    hyps = [*baseline[:-1], refs[-1]]  # one sentence of 200 fixed
    for c in paired_bootstrap(hyps, baseline, refs):
        assert c.difference > 0
        assert c.p_value >= 0.05 and not c.significant()


def test_a_clearly_better_system_is_significantly_better() -> None:
    refs = references()
    baseline = corrupted(refs, share=0.4, seed=1)
    better = corrupted(refs, share=0.2, seed=2)
    comparisons = paired_bootstrap(better, baseline, refs, num_samples=500)
    for c in comparisons:
        assert c.difference > 5
        assert c.p_value < 0.05 and c.significant()
        assert "bs:500" in c.signature and "seed:" in c.signature
    report = comparison_report(comparisons, system="better.txt", baseline="baseline.txt")
    assert report.count("better (significant, p < 0.05)") == 2
    assert "baseline.txt" in report and "better.txt" in report
    # the other way round: significantly worse, with the same p-values
    reverse = paired_bootstrap(baseline, better, refs, num_samples=500)
    assert all(c.difference < -5 and c.significant() for c in reverse)
    assert comparison_report(reverse, system="b", baseline="a").count("worse (significant") == 2


def test_the_paired_test_needs_the_same_sentences() -> None:
    refs = references(10)
    with pytest.raises(NmtError, match="9 hypotheses, 10 baseline hypotheses and 10 references"):
        paired_bootstrap(refs[:9], refs, refs)
    with pytest.raises(NmtError, match="at least one sentence"):
        paired_bootstrap([], [], [])


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_evaluate_compare_prints_the_paired_test(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    refs = references()
    ref = write_lines(tmp_path / "ref.de", refs)
    better = write_lines(tmp_path / "better.de", corrupted(refs, share=0.2, seed=2))
    baseline = write_lines(tmp_path / "baseline.de", corrupted(refs, share=0.4, seed=1))
    argv = ["evaluate", "--hyp", str(better), "--ref", str(ref), "--compare", str(baseline)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"sacreBLEU BLEU {score_files(better, ref).bleu:.2f}" in out
    assert f"{better} against the baseline {baseline}" in out
    assert out.count("better (significant, p < 0.05)") == 2

    assert main([*argv[:-1], str(better)]) == 0
    assert capsys.readouterr().out.count("no significant difference") == 2


def test_evaluate_compare_refuses_a_baseline_of_another_length(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    refs = references(10)
    ref, hyp = write_lines(tmp_path / "ref", refs), write_lines(tmp_path / "hyp", refs)
    short = write_lines(tmp_path / "short", refs[:9])
    assert main(["evaluate", "--hyp", str(hyp), "--ref", str(ref), "--compare", str(short)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("nmt: error: ") and str(short) in err and "Traceback" not in err
