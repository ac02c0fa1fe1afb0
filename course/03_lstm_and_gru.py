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
# # 3. LSTM and GRU
#
# Chapter 1 measured the plain RNN's gradient vanishing within a few words. The LSTM
# (Hochreiter & Schmidhuber, 1997) and the GRU (Cho et al., 2014) add *gates*: sigmoid-valued
# vectors that decide, unit by unit, what to keep of the old state and what to write.
#
# LSTM, with PyTorch's (and so nmt's) gate order $i, f, g, o$:
#
# $$i_t = \sigma(W_{ii}x_t + W_{hi}h_{t-1} + b_i),\; f_t = \sigma(\dots),\; g_t = \tanh(\dots),\;
# o_t = \sigma(\dots)$$
# $$c_t = f_t \odot c_{t-1} + i_t \odot g_t, \qquad h_t = o_t \odot \tanh(c_t)$$
#
# GRU, gates $r, z$ and candidate $n$:
#
# $$r_t = \sigma(\dots),\; z_t = \sigma(\dots),\; n_t = \tanh(W_{in}x_t + b_{in} + r_t \odot
# (W_{hn}h_{t-1} + b_{hn})),\; h_t = (1 - z_t) \odot n_t + z_t \odot h_{t-1}$$
#
# The cell state's update is a sum, not a product: where $f_t \approx 1$ the gradient passes
# through unchanged. Below, an LSTM encoder–decoder trained by `nmt train`'s own loop reads a
# real sentence, and its gates are read out step by step.

# %%
import kit
import matplotlib.pyplot as plt
import torch

from nmt.config import RNNConfig
from nmt.data.tokenizer import EOS_ID
from nmt.models.build import build_model, count_parameters
from nmt.models.store import load_model_dir

kit.start()
work = kit.workdir("03")
data = kit.corpus(work)

# %% [markdown]
# ## A small LSTM translation model
#
# One bidirectional LSTM layer each side with additive attention, trained for a fixed budget
# (full mode: 200 updates on the English–German corpus; fast mode: a few updates on a toy
# corpus). The gates below are those of its encoder's forward direction.

# %%
lstm_config = {
    "arch": "rnn",
    "cell": "lstm",
    "embed_dim": 32 if kit.FAST else 64,
    "hidden_size": 32 if kit.FAST else 128,
    "attention": "additive",
    "dropout": 0.0 if kit.FAST else 0.2,
    "share_embeddings": True,
}
model_dir = kit.train_model(
    work / "lstm",
    data,
    lstm_config,
    steps=15 if kit.FAST else 200,
    vocab_size=60 if kit.FAST else 8000,
    max_tokens=600 if kit.FAST else 1500,
)
loaded = load_model_dir(model_dir)
model, tokenizer = loaded.model.eval(), loaded.tokenizer

# %% [markdown]
# ## Gate activations on a real sentence
#
# The gates are recomputed from the encoder's weights, one step at a time; the states agree
# with what `nn.LSTM` itself returns, so these are the gates the model used.

# %%
sentence = "the small dog sees a red house" if kit.FAST else "Click the button to open the file."
ids = [*tokenizer.encode(sentence), EOS_ID]
pieces = [tokenizer.pieces()[i] for i in ids]
rnn = model.encoder.rnn
with torch.no_grad():
    x = model.src_embed(torch.tensor([ids]))[0]  # (S, E)
    h = torch.zeros(rnn.hidden_size)
    c = torch.zeros(rnn.hidden_size)
    gates = {"input i": [], "forget f": [], "output o": []}
    states = []
    for x_t in x:
        i, f, g, o = (
            rnn.weight_ih_l0 @ x_t + rnn.bias_ih_l0 + rnn.weight_hh_l0 @ h + rnn.bias_hh_l0
        ).chunk(4)
        i, f, g, o = i.sigmoid(), f.sigmoid(), g.tanh(), o.sigmoid()
        c = f * c + i * g
        h = o * c.tanh()
        for name, gate in zip(gates, (i, f, o), strict=True):
            gates[name].append(gate)
        states.append(h)
    outputs, _ = rnn(x[None])
    forward_outputs = outputs[0, :, : rnn.hidden_size]  # the forward direction's h_t
    print(
        "largest difference from nn.LSTM:",
        (torch.stack(states) - forward_outputs).abs().max().item(),
    )

units = 24
fig, axes = plt.subplots(1, 3, figsize=(13, 4), sharey=True)
for ax, (name, values) in zip(axes, gates.items(), strict=True):
    image = ax.imshow(
        torch.stack(values)[:, :units].numpy(), vmin=0, vmax=1, cmap="viridis", aspect="auto"
    )
    ax.set_title(f"{name} gate, first {units} units")
    ax.set_xlabel("unit")
axes[0].set_yticks(range(len(pieces)), pieces)
fig.colorbar(image, ax=axes, shrink=0.8)
kit.show(fig)
for name, values in gates.items():
    print(
        f"{name:>9}: mean {torch.stack(values).mean():.2f}, "
        f"share of units above 0.9: {(torch.stack(values) > 0.9).float().mean():.1%}"
    )

# %% [markdown]
# ## What the gates cost: parameters
#
# Each gate is one more pair of input and recurrent matrices: an LSTM layer holds 4 times the
# plain RNN's, a GRU layer 3 times. Whole models differ less, as the embeddings and the output
# layer are the same size for all three. (nmt's `nmt train --dry-run` prints the same counts.)

# %%
sizes = {"embed_dim": 256, "hidden_size": 512, "attention": "additive", "share_embeddings": True}
print(f"{'cell':>5} {'encoder RNN':>12} {'ratio':>6} {'whole model':>12}")
for cell in ("rnn", "lstm", "gru"):
    model_of_cell = build_model(RNNConfig(cell=cell, **sizes), 8000)
    recurrent = count_parameters(model_of_cell.encoder.rnn)
    if cell == "rnn":
        plain = recurrent
    whole = count_parameters(model_of_cell)
    print(f"{cell:>5} {recurrent:>12,} {recurrent / plain:>6.2f} {whole:>12,}")

# %% [markdown]
# Next: [sequence to sequence](04_sequence_to_sequence.ipynb), where an encoder like this one
# hands a sentence to a decoder.
