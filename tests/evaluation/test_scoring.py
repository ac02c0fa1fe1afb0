"""Scores are sacreBLEU's own numbers, with signatures; mismatched files are refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import sacrebleu

from nmt.errors import NmtError
from nmt.evaluation.scoring import TOKENIZED_BLEU_LABEL, score, score_files

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
