"""An OPUS-MT-shaped model built offline: opus-mt-en-de's configuration, random weights shaped to
translate at realistic lengths, an OPUS-MT tokenizer folder, imported through `nmt import marian`.

    .venv/bin/python benchmarks/opus_mt_shape.py --out /tmp/opus-mt-shape

writes ``OUT/marian`` (a Hugging Face Marian folder, as ``save_pretrained`` writes it) and
``OUT/nmt`` (the nmt model directory that ``nmt import marian`` makes of it); an existing
``OUT/nmt`` is reused. benchmarks/engines.py ``--opus-mt OUT`` runs the engines on it.

The configuration is opus-mt-en-de's config.json: d_model 512, 6 + 6 layers, 8 heads, d_ff 2048,
swish, static sinusoids, scaled embeddings, tied embeddings and output layer, post-LN,
58,101 pieces, EOS 0, PAD = decoder start = 58,100. The tokenizer folder is OPUS-MT's layout:
``source.spm`` and ``target.spm`` (unigram SentencePiece models, trained here on the corpus's
English and German sides) and a ``vocab.json`` of both models' pieces, filled up to 58,101 with
placeholder pieces (``▁<fillN>``) when the corpus yields fewer, so that the output layer has
opus-mt-en-de's size.

Random weights translate into loops or into empty outputs: with tied embeddings and post-LN the
input token's own embedding dominates the last hidden state, so the output layer scores the
previous token highest and the model repeats it; and a constant chance of EOS makes beam search
with α = 0 end every output after one piece. Two changes shape the weights (both printed):

- the decoder's last LayerNorm gain is set to ``SHARPNESS`` = -12: negative, so that the input
  token scores lowest instead of highest (no repeats), and large, so that the next-piece
  distribution is as peaked as a trained model's (the top piece usually holds a large share of
  the probability, instead of a near-uniform 1/58k);
- EOS gets a bias of -100 (``final_logits_bias``, a Marian buffer): it never wins, so every
  engine generates exactly the length limit. benchmarks/engines.py sets that limit to the
  references' mean length in target pieces (``mean_reference_length``), so that every output has a
  trained model's mean length and every engine does the same work; unlike a trained model's,
  lengths do not vary from sentence to sentence.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import sentencepiece as spm
import torch
from transformers import MarianConfig, MarianMTModel

from nmt.interop.marian import import_marian

VOCAB_SIZE = 58101  # opus-mt-en-de
SPM_PIECES = 32000  # per language, as OPUS-MT's
SPM_LINES = 200_000  # lines per language the SentencePiece models are trained on, at most
SHARPNESS = -12.0  # the decoder's last LayerNorm gain (see the module docstring)
EOS_BIAS = -100.0  # EOS never wins: outputs run to the length limit


def marian_config(vocab_size: int) -> MarianConfig:
    """transformers' MarianConfig with opus-mt-en-de's values (its generation settings, beam 4
    and so on, are the benchmark's to pass)."""

    return MarianConfig(
        vocab_size=vocab_size,
        decoder_vocab_size=vocab_size,
        d_model=512,
        encoder_layers=6,
        decoder_layers=6,
        encoder_attention_heads=8,
        decoder_attention_heads=8,
        encoder_ffn_dim=2048,
        decoder_ffn_dim=2048,
        activation_function="swish",
        max_position_embeddings=512,
        scale_embedding=True,
        share_encoder_decoder_embeddings=True,
        tie_word_embeddings=True,
        pad_token_id=vocab_size - 1,
        eos_token_id=0,
        decoder_start_token_id=vocab_size - 1,
        forced_eos_token_id=0,
        dropout=0.1,
        attention_dropout=0.0,
        activation_dropout=0.0,
        init_std=0.02,
    )


def train_spm(text: Path, prefix: Path) -> Path:
    spm.SentencePieceTrainer.Train(
        input=str(text),
        model_prefix=str(prefix),
        model_type="unigram",
        vocab_size=SPM_PIECES,
        hard_vocab_limit=False,
        input_sentence_size=SPM_LINES,
        shuffle_input_sentence=True,
        minloglevel=2,
    )
    return prefix.with_suffix(".model").rename(prefix.with_suffix(".spm"))


def marian_vocab(*models: Path) -> dict[str, int]:
    """Marian's layout: </s> 0, <unk> 1, both models' pieces, placeholders, <pad> last."""
    vocab = {"</s>": 0, "<unk>": 1}
    for path in models:
        processor = spm.SentencePieceProcessor(model_file=str(path))
        for i in range(processor.GetPieceSize()):
            if not (processor.IsControl(i) or processor.IsUnknown(i)):
                vocab.setdefault(processor.IdToPiece(i), len(vocab))
    while len(vocab) < VOCAB_SIZE - 1:
        vocab[f"▁<fill{len(vocab)}>"] = len(vocab)
    vocab["<pad>"] = len(vocab)
    return vocab


def write_tokenizer(folder: Path, train_src: Path, train_tgt: Path) -> int:
    source = train_spm(train_src, folder / "source")
    target = train_spm(train_tgt, folder / "target")
    vocab = marian_vocab(source, target)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(
        json.dumps({"source_lang": "en", "target_lang": "de"}), encoding="utf-8"
    )
    return len(vocab)


def mean_reference_length(marian_dir: Path, references: list[str]) -> int:
    """The references' mean length in target pieces (EOS excluded), rounded."""
    target = spm.SentencePieceProcessor(model_file=str(marian_dir / "target.spm"))
    return round(statistics.mean(len(target.Encode(line)) for line in references))


def build(out: Path, *, train_src: Path, train_tgt: Path) -> Path:
    """Write OUT/marian and OUT/nmt (see the module docstring); return OUT/nmt."""
    nmt_dir = out / "nmt"
    if (nmt_dir / "config.yaml").is_file():
        return nmt_dir
    marian_dir = out / "marian"
    marian_dir.mkdir(parents=True, exist_ok=True)
    if (marian_dir / "vocab.json").is_file():  # from an interrupted build
        vocab_size = len(json.loads((marian_dir / "vocab.json").read_text(encoding="utf-8")))
    else:
        print(f"training SentencePiece models on {train_src} and {train_tgt}")
        vocab_size = write_tokenizer(marian_dir, train_src, train_tgt)
    torch.manual_seed(0)
    model = MarianMTModel(marian_config(vocab_size)).eval()
    with torch.no_grad():
        model.model.decoder.layers[-1].final_layer_norm.weight.fill_(SHARPNESS)
        model.final_logits_bias[0, 0] = EOS_BIAS
    model.save_pretrained(marian_dir, safe_serialization=True)
    import_marian(marian_dir, nmt_dir)
    print(f"shaped: decoder's last LayerNorm gain {SHARPNESS}, EOS bias {EOS_BIAS}")
    return nmt_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=Path("data/de-en"))
    args = parser.parse_args()
    nmt_dir = build(
        args.out,
        train_src=args.data / "train.en",
        train_tgt=args.data / "train.de",
    )
    print(f"nmt model directory: {nmt_dir}")


if __name__ == "__main__":
    main()
