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
# # 6. The Transformer
#
# *Attention Is All You Need* (Vaswani et al., 2017) drops recurrence: every position attends to
# every other in one step. This chapter takes the model apart with nmt's own
# `nmt/models/transformer.py` (read it beside the paper; `docs/paper-map.md`
# lists where each section lives) and measures the choices the paper made.

# %%
import math

import kit
import matplotlib.pyplot as plt
import torch
from IPython.display import Markdown, display

from nmt.config import ScheduleConfig, TransformerConfig
from nmt.data.batching import Batch
from nmt.decoding.translator import Translator
from nmt.models.build import build_model
from nmt.models.store import load_model_dir
from nmt.models.transformer import attention_weights, sinusoidal_positions, split_heads
from nmt.training.loss import label_smoothed_loss
from nmt.training.metrics import METRICS_FILE, read_metrics
from nmt.training.schedule import learning_rate

kit.start()
work = kit.workdir("06")

# %% [markdown]
# ## Scaled dot-product attention, and why √d_k
#
# $\mathrm{Attention}(Q, K, V) = \mathrm{softmax}(QK^\top / \sqrt{d_k})\,V$ (section 3.2.1). If
# the components of $q$ and $k$ are independent with variance 1, $q \cdot k$ has variance
# $d_k$: without the scaling the scores grow with the width, the softmax saturates (one key
# takes nearly all the weight) and its gradient vanishes. Measured below with
# `nmt.models.transformer.attention_weights` (the textbook formula nmt uses when it needs the
# weights) on random queries and keys, with and without the $1/\sqrt{d_k}$.

# %%
torch.manual_seed(0)
num_keys = 50
print(f"{'d_k':>5} {'scaling':>9} {'max weight':>11} {'entropy':>8} {'> 0.99':>7} {'‖J‖':>7}")
for d_k in (16, 64, 256, 512):
    q = torch.randn(1, 1, 256, d_k)
    k = torch.randn(1, 1, num_keys, d_k)
    for scaled in (True, False):
        query = q if scaled else q * math.sqrt(d_k)  # undoes attention_weights' 1/√d_k
        w = attention_weights(query, k, None)[0, 0]  # (256 queries, num_keys)
        # Softmax's Jacobian, diag(w) − w·wᵀ: how far the scores' gradient gets through.
        jacobian = torch.diag_embed(w) - w[:, :, None] * w[:, None, :]
        entropy = -(w * w.clamp_min(1e-30).log()).sum(-1).mean()
        saturated = (w.max(-1).values > 0.99).float().mean()
        label = "1/√d_k" if scaled else "none"
        print(
            f"{d_k:>5} {label:>9} {w.max(-1).values.mean():>11.3f} {entropy:>8.3f} "
            f"{saturated:>7.1%} {jacobian.norm(dim=(1, 2)).median():>7.3f}"
        )
uniform = f"max {1 / num_keys:.3f}, entropy {math.log(num_keys):.3f}"
print(f"(uniform weights over {num_keys} keys: {uniform})")

# %% [markdown]
# With the scaling the weights are equally spread at every width; without it the entropy
# falls as $d_k$ grows, one key takes most of the weight, a growing share of the queries are
# saturated (one weight above 0.99), and the median norm of softmax's Jacobian, the factor every
# gradient to the queries and keys passes through, shrinks with them.
#
# ## Multi-head attention and the masks
#
# $h$ heads each attend in a $d_k = d_{model}/h$ subspace (3.2.2): `split_heads` reshapes
# (B, L, D) into (B, H, L, D/H). Masks follow one convention in nmt: bool, True = may attend,
# built from the batch (`nmt.data.batching.Batch`): padding keys are hidden from every query,
# and the decoder's self-attention is causal.

# %%
x = torch.randn(2, 7, 512)
print("split_heads:", tuple(x.shape), "→", tuple(split_heads(x, 8).shape))

batch = Batch.from_pairs([[5, 6, 7], [8, 9]], [[10, 11, 12, 13], [14]], [0, 1])
print("src (ids + EOS, then PAD):\n", batch.src)
print("src_mask (True = a real token):\n", batch.src_mask)
print("tgt_in (BOS + ids):\n", batch.tgt_in)
print("tgt_out (ids + EOS):\n", batch.tgt_out)

# The causal mask, tested rather than drawn: changing a future target token leaves the
# logits of every earlier position unchanged.
tiny = TransformerConfig(num_layers=2, d_model=32, d_ff=64, num_heads=4, dropout=0.0)
model = build_model(tiny, 20).eval()
with torch.no_grad():
    before = model(batch.src, batch.src_mask, batch.tgt_in)
    changed = batch.tgt_in.clone()
    changed[0, 3] = 19
    after = model(batch.src, batch.src_mask, changed)
print(
    "positions 0-2 unchanged:",
    torch.equal(before[0, :3], after[0, :3]),
    "| position 3 changed:",
    not torch.equal(before[0, 3], after[0, 3]),
)

# %% [markdown]
# ## Positional encodings
#
# $PE_{(pos, 2i)} = \sin(pos / 10000^{2i/d_{model}})$, $PE_{(pos, 2i+1)} = \cos(\dots)$ (3.5):
# each pair of columns is a rotation at its own frequency, so $PE_{pos+k}$ is a linear function
# of $PE_{pos}$, and the dot product $PE_{pos} \cdot PE_{pos+k}$ depends on the distance $k$
# only, falling (not monotonically) as $k$ grows.

# %%
table = sinusoidal_positions(200, 128)
fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4))
image = left.imshow(table[:100].numpy(), cmap="RdBu", aspect="auto")
left.set_xlabel("dimension")
left.set_ylabel("position")
left.set_title("sinusoidal positional encoding (d_model 128)")
fig.colorbar(image, ax=left)
distances = torch.arange(100)
for pos in (0, 50, 100):
    right.plot(distances, table[pos + distances] @ table[pos], label=f"pos = {pos}")
right.set_xlabel("distance k")
right.set_ylabel("PE(pos) · PE(pos + k)")
right.set_title("dot product against distance: the same curve from every position")
right.legend()
kit.show(fig)

# %% [markdown]
# ## Residual connections and LayerNorm: post-LN against pre-LN
#
# The paper normalises after the residual sum, $\mathrm{LayerNorm}(x + \mathrm{Sublayer}(x))$
# (post-LN). nmt also offers pre-LN, $x + \mathrm{Sublayer}(\mathrm{LayerNorm}(x))$ (`norm:
# pre`, which `configs/quickstart.yaml` uses). Xiong et al. (2020) showed that post-LN's
# gradients at initialisation are largest near the output, which is why it needs the warm-up;
# measured below on a 6-layer base-sized model, then in training at the quickstart's learning
# rate.


# %%
def layer_gradient_norms(norm: str) -> list[float]:
    """‖∇‖ of each decoder layer's feed-forward weights after one backward pass at init."""
    torch.manual_seed(0)
    size = {"d_model": 128, "d_ff": 512} if kit.FAST else {}  # fast: base's depth, narrower
    config = TransformerConfig(preset="base", norm=norm, dropout=0.0, max_positions=64, **size)
    model = build_model(config, 1000)
    src = torch.randint(4, 1000, (4, 20))
    tgt = torch.randint(4, 1000, (4, 20))
    logits = model(src, src != 0, tgt)
    label_smoothed_loss(logits, tgt, epsilon=0.1).smoothed.backward()
    return [layer.feed_forward.w_2.weight.grad.norm().item() for layer in model.decoder_layers]


grads = {norm: layer_gradient_norms(norm) for norm in ("post", "pre")}
for norm, values in grads.items():
    print(f"{norm}-LN decoder layers 1..6, ‖∇W2‖:", " ".join(f"{v:.3g}" for v in values))

# %%
data = kit.corpus(work)
small = {"arch": "transformer", "norm": "post", "dropout": 0.1, "num_layers": 2, "num_heads": 4}
small |= {"d_model": 32, "d_ff": 64} if kit.FAST else {"d_model": 128, "d_ff": 512}
common = {
    "steps": 20 if kit.FAST else 150,  # the same number of updates for both
    "vocab_size": 60 if kit.FAST else 8000,
    "max_tokens": 600 if kit.FAST else 1500,
    "peak_lr": 3e-3,  # the quickstart's peak rate
    "warmup": 10 if kit.FAST else 50,
    "training": {"valid_max_sentences": 100},
}
runs = {}
for norm in ("post", "pre"):
    runs[norm] = kit.train_model(
        work / f"{norm}-ln",
        data,
        small | {"norm": norm},
        tokenizer_from=work / "post-ln" if runs else None,  # one vocabulary for both
        **common,
    )
for norm, model_dir in runs.items():
    last = [r for r in read_metrics(model_dir.parent / METRICS_FILE) if r["split"] == "dev"][-1]
    print(f"{norm}-LN: dev perplexity {last['ppl']:.1f} after {last['step']} updates")


# %% [markdown]
# ## The warm-up schedule and label smoothing
#
# $lrate = d_{model}^{-0.5} \cdot \min(step^{-0.5}, step \cdot warmup^{-1.5})$ (5.3), from
# `nmt.training.schedule.learning_rate`; and label smoothing $\epsilon_{ls} = 0.1$ (5.4): the
# target is $1 - \epsilon$ on the reference token and $\epsilon$ spread over the vocabulary,
# so the loss no longer falls to zero as the model grows certain: it is lowest at a confidence
# of about $1 - \epsilon$.

# %%
steps = range(1, 20_001)
fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4))
for name, d_model, schedule in (
    ("paper: d_model 512, warm-up 4000", 512, ScheduleConfig(warmup_steps=4000)),
    ("quickstart: 256, warm-up 300, scale 0.83", 256, ScheduleConfig(warmup_steps=300, scale=0.83)),
):
    right_rates = [learning_rate(s, d_model=d_model, config=schedule) for s in steps]
    left.plot(steps, right_rates, label=name)
left.set_xlabel("step")
left.set_ylabel("learning rate")
left.legend()
left.set_title("warm-up, then 1/√step")

vocab = 100
confidence = torch.linspace(0.05, 0.999, 200)
for epsilon in (0.0, 0.1):
    losses = []
    for p in confidence:
        probs = torch.full((vocab,), (1 - p.item()) / (vocab - 1))
        probs[5] = p
        logits = probs.log()[None, None]  # (B=1, T=1, V)
        loss = label_smoothed_loss(logits, torch.tensor([[5]]), epsilon=epsilon).smoothed
        losses.append(loss.item())
    best = confidence[torch.tensor(losses).argmin()].item()
    right.plot(confidence, losses, label=f"ε_ls = {epsilon}: lowest at p = {best:.2f}")
right.set_xlabel("probability the model gives the reference token")
right.set_ylabel("training loss")
right.legend()
right.set_title("label smoothing: certainty stops paying")
kit.show(fig)

# %% [markdown]
# ## What the heads attend to
#
# The cross-attention of each head of the last decoder layer, for one sentence, from the
# pre-LN model trained above (`Translator.translate_nbest(..., return_attention=True)`: the
# weights of the beam search's own steps). Nothing in training asks the heads to differ; see
# whether they do.

# %%
loaded = load_model_dir(runs["pre"])
translator = Translator(loaded.model.eval(), loaded.tokenizer, max_positions=256)
sentence = "the big dog sees a small cat" if kit.FAST else "Open the file and save it."
[[best]] = translator.translate_nbest([sentence], return_attention=True)
print(f"{sentence!r} → {best.text!r}")
weights = best.attention[-1]  # (H, T, S) of the last layer
fig, axes = plt.subplots(1, weights.size(0), figsize=(4 * weights.size(0), 4), squeeze=False)
for head, ax in enumerate(axes[0]):
    ax.imshow(weights[head].numpy(), cmap="Greys", vmin=0, vmax=1)
    ax.set_xticks(range(len(best.src_pieces) + 1), [*best.src_pieces, "</s>"], rotation=90)
    ax.set_yticks(range(len(best.tgt_pieces) + 1), [*best.tgt_pieces, "</s>"])
    ax.set_title(f"head {head + 1}")
kit.show(fig)

# %% [markdown]
# ## Reading Table 3
#
# `nmt experiment table3` reruns the paper's Table 3 at this machine's scale: every row trained
# for the same time from the same seed. Rerunning it takes hours, so this chapter reads the
# measured table of `docs/table3.md` (6 minutes a cell, 2026-11-26). To produce your own:
# `nmt experiment table3 --data data/de-en --minutes 10 --rows A,C,D,E`.

# %%
text = (kit.ROOT / "docs" / "table3.md").read_text(encoding="utf-8")
start = text.index("|  | N | d_model")
table_md = text[start : text.index("\n\n", start)]
display(Markdown(table_md))

rows = [line.split("|")[1:-1] for line in table_md.splitlines()[2:]]
header = [cell.strip() for cell in table_md.splitlines()[0].split("|")[1:-1]]
steps_col, ppl_col = header.index("train steps"), header.index("PPL (dev)")
fig, ax = plt.subplots(figsize=(6, 4))
ax.scatter([float(r[steps_col]) for r in rows], [float(r[ppl_col]) for r in rows])
ax.set_xlabel("updates in the time budget")
ax.set_ylabel("dev perplexity")
ax.set_yscale("log")
ax.set_title("Table 3 at 6 minutes a cell: updates decide")
kit.show(fig)

# %% [markdown]
# Read it as `docs/table3.md` does: at a fixed time budget every row is ordered first by how
# many updates it could make (smaller models run more updates and win), so the paper's
# converged conclusions (bigger is better, single-head attention is 0.9 BLEU worse) cannot show
# after minutes. What does show is the per-update effect of each change.
