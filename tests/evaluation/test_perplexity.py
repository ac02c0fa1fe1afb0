import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from nmt.config import RNNConfig, TransformerConfig
from nmt.data.dataset import encode_parallel
from nmt.data.tokenizer import Tokenizer
from nmt.evaluation import perplexity
from nmt.evaluation.perplexity import reference_loss
from nmt.models.build import build_model

# The Transformer's loss is taken chunk by chunk from its hidden states, a recurrent model's from
# its whole logits: both against the textbook cross-entropy of each sentence alone.
MODELS = {
    "transformer": TransformerConfig(num_layers=1, d_model=16, d_ff=32, num_heads=2, dropout=0.3),
    "gru": RNNConfig(cell="gru", hidden_size=16, embed_dim=16, dropout=0.3),
}


@pytest.mark.parametrize("arch", MODELS)
def test_batched_reference_loss_equals_one_sentence_at_a_time(
    toy_corpus: Path, toy_tokenizer: Tokenizer, arch: str
) -> None:
    torch.manual_seed(0)
    model = build_model(MODELS[arch], toy_tokenizer.vocab_size)
    model.train()  # reference_loss must switch dropout off itself
    pairs = encode_parallel(
        toy_tokenizer, toy_corpus / "dev.en", toy_corpus / "dev.de", max_len=None
    )
    # A small token budget: many batches, most of them padded.
    result = reference_loss(model, pairs, max_tokens=60, device=torch.device("cpu"))

    model.eval()
    nll, tokens = 0.0, 0
    with torch.no_grad():
        for i in range(len(pairs)):
            one = pairs.batch([i])  # a batch of one sentence has no padding
            logits = model(one.src, one.src_mask, one.tgt_in)
            nll += float(F.cross_entropy(logits[0], one.tgt_out[0], reduction="sum"))
            tokens += one.tgt_out.numel()
    assert result.sentences == len(pairs) and result.target_tokens == tokens
    assert math.isclose(result.nll, nll / tokens, rel_tol=1e-5)
    assert math.isclose(result.perplexity, math.exp(nll / tokens), rel_tol=1e-5)


def test_chunked_cross_entropy_equals_the_whole_logits_one(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    hidden, weight, bias = torch.randn(3, 7, 8), torch.randn(50, 8), torch.randn(50)
    target = torch.randint(4, 50, (3, 7))
    target[1, 4:] = 0  # padding
    whole = F.cross_entropy(
        F.linear(hidden, weight, bias).flatten(0, 1),
        target.flatten(),
        ignore_index=0,
        reduction="sum",
    )
    monkeypatch.setattr(perplexity, "CHUNK_ELEMENTS", 4 * 50)  # 4 positions a chunk: 6 chunks
    total = perplexity.chunked_cross_entropy(hidden, weight, bias, target, pad_id=0)
    assert math.isclose(total, float(whole), rel_tol=1e-6)
