# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 5. Attention
#
# Attention lets the decoder look back at every encoder state instead of one fixed vector: at
# step $t$ it scores each source state $m_j$ against its own state $s_t$, normalises the scores
# with a softmax into weights $a_{tj}$, and reads the context $c_t = \sum_j a_{tj} m_j$.
# nmt implements the classic scores in `nmt.models.rnn.Attention`:
#
# - additive (Bahdanau et al., 2015): $v^\top \tanh(W s_t + U m_j)$
# - multiplicative (Luong et al., 2015): `dot` $s_t^\top m_j$ and `general` $s_t^\top W m_j$
#
# and the Transformer's scaled dot product with several heads (chapter 6).

# %%
import time

import kit
import matplotlib.pyplot as plt
import torch

from nmt.decoding.translator import Translator
from nmt.models.build import count_parameters
from nmt.models.rnn import Attention

kit.start()
work = kit.workdir("05")

# %% [markdown]
# ## Additive against multiplicative: parameters and cost
#
# The additive score passes every (query, key) pair through a hidden layer: a (B, T, S, H)
# tensor; the multiplicative ones are one batched matrix product. Measured on random states
# (H = 256, 50 target and 50 source positions, 32 sentences):

# %%
hidden, batch, length = 256, 32, 50
query = torch.randn(batch, length, hidden)
memory = torch.randn(batch, length, hidden)
mask = torch.ones(batch, length, dtype=torch.bool)
print(f"{'score':>9} {'parameters':>11} {'ms per call':>12}")
for kind in ("additive", "general", "dot"):
    attention = Attention(kind, hidden)
    keys = attention.keys(memory)  # the source-only part, computed once per sentence
    with torch.no_grad():
        attention(query, keys, memory, mask)  # warm-up
        started = time.perf_counter()
        repeats = 3 if kit.FAST else 10
        for _ in range(repeats):
            context, weights = attention(query, keys, memory, mask)
        elapsed = (time.perf_counter() - started) / repeats
    print(f"{kind:>9} {count_parameters(attention):>11,} {elapsed * 1000:>12.2f}")
print(
    "context",
    tuple(context.shape),
    "weights",
    tuple(weights.shape),
    "rows sum to 1:",
    torch.allclose(weights.sum(-1), torch.ones(batch, length)),
)

# %% [markdown]
# ## Alignments: recurrent attention next to the Transformer's heads
#
# Three models of about the same size learn the toy reversal task of chapter 4 (the "German"
# is the English word for word in reverse order), each trained by nmt's loop for the same
# number of updates: a GRU with additive attention, a GRU with `general` attention and a small
# Transformer. Each one's attention while translating one test sentence is drawn below (from
# `Translator.translate_nbest(..., return_attention=True)`: the weights of the search's own
# steps). A model that has learned the task attends along the anti-diagonal: the first output
# word is the translation of the last input word.

# %%
data = kit.toy_corpus(
    work / "reverse",
    sizes={"train": 600 if kit.FAST else 6000, "dev": 30, "test": 30},
    lengths=(2, 10 if kit.FAST else 20),
    reverse=True,
    seed=5,
)
steps = 20 if kit.FAST else 400
gru = {"arch": "rnn", "cell": "gru", "dropout": 0.0, "share_embeddings": True}
gru |= {"embed_dim": 32, "hidden_size": 48} if kit.FAST else {"embed_dim": 64, "hidden_size": 128}
models = {
    "GRU, additive": gru | {"attention": "additive"},
    "GRU, general": gru | {"attention": "general"},
    "Transformer": {
        "arch": "transformer",
        "num_layers": 2,
        "d_model": 32 if kit.FAST else 64,
        "d_ff": 64 if kit.FAST else 256,
        "num_heads": 4,
        "dropout": 0.0,
        "norm": "pre",
    },
}
translators = {}
for name, model in models.items():
    model_dir = kit.train_model(
        work / name.replace(", ", "-").replace(" ", "-"),
        data,
        model,
        steps=steps,
        vocab_size=150,  # whole words as pieces: one row and column a word
        max_tokens=600 if kit.FAST else 1500,
        warmup=10 if kit.FAST else 50,
    )
    translators[name] = Translator.load(model_dir)

# %%
sentence = "the old dog sees a red car near the river"
panels = []
for name, translator in translators.items():
    [[best]] = translator.translate_nbest([sentence], return_attention=True)
    print(f"{name:>14}: {best.text}")
    layers = best.attention  # (L, H, T, S)
    if layers.size(1) == 1:
        panels.append((name, layers[0, 0], best))
    else:
        panels += [
            (f"{name}, last layer, head {h + 1}", layers[-1, h], best)
            for h in range(layers.size(1))
        ]

fig, axes = plt.subplots(2, 3, figsize=(15, 9))
for ax, (title, weights, best) in zip(axes.flat, panels, strict=False):
    ax.imshow(weights.numpy(), cmap="Greys", vmin=0, vmax=1)
    ax.set_xticks(
        range(len(best.src_pieces) + 1), [*best.src_pieces, "</s>"], rotation=90, fontsize=7
    )
    ax.set_yticks(range(len(best.tgt_pieces) + 1), [*best.tgt_pieces, "</s>"], fontsize=7)
    ax.set_title(title, fontsize=9)
for ax in axes.flat[len(panels) :]:
    ax.axis("off")
kit.show(fig)

# %% [markdown]
# The recurrent models have one attention distribution per output word: where they have
# learned the task, it is the alignment itself. The Transformer has one per layer and head, and
# nothing makes any single head "the" alignment: compare its heads above, some sharper than
# others.
#
# Next: [the Transformer](06_transformer.ipynb), attention without recurrence.
