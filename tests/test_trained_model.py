"""The shared trained test model (tests/trained_model.py) is worth comparing outputs on."""

from pathlib import Path

import sacrebleu

from nmt.config import DecodingConfig
from nmt.decoding.translator import Translator


def test_trained_model_translates_well_into_several_pieces(
    trained_model_dir: Path, toy_corpus: Path
) -> None:
    sources = (toy_corpus / "test.en").read_text(encoding="utf-8").splitlines()
    references = (toy_corpus / "test.de").read_text(encoding="utf-8").splitlines()
    translator = Translator.load(trained_model_dir)
    outputs = translator.translate_nbest(sources, DecodingConfig(beam_size=4))
    texts = [best[0].text for best in outputs]
    assert sacrebleu.corpus_bleu(texts, [references]).score > 60
    # Not all perfect either: searches and engines have real choices to disagree on.
    assert sum(t != r for t, r in zip(texts, references, strict=True)) > 0
    assert min(len(best[0].tokens) for best in outputs) >= 2
    assert len(set(texts)) > len(texts) // 2
