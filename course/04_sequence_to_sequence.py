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
# # 4. Sequence to sequence
#
# An encoder reads the source into vectors; a decoder writes the target one token at a time,
# each conditioned on the tokens before it (Sutskever et al., 2014; Cho et al., 2014). This
# chapter walks through nmt's recurrent encoder–decoder (`nmt/models/rnn.py`): the context
# vector, the start and end tokens, teacher forcing and the cross-entropy loss, greedy and beam
# search (drawn as a tree, from nmt's real search), the fixed-vector bottleneck that attention
# removed, and the same `nmt train` put to summarisation.

# %%
import itertools
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import kit
import matplotlib.pyplot as plt
import torch.nn.functional as F

from nmt.config import DecodingConfig, RNNConfig
from nmt.data.batching import Batch
from nmt.data.corpus.summaries import fetch_summaries
from nmt.data.parallel import iter_lines
from nmt.decoding.trace import BeamTrace
from nmt.decoding.translator import Translator
from nmt.evaluation.scoring import score
from nmt.models.build import build_model
from nmt.training.loss import label_smoothed_loss

kit.start()
work = kit.workdir("04")

# %% [markdown]
# ## Encoder, decoder and the context vector
#
# Without attention the whole source reaches the decoder as one vector $c$: the encoder's
# final state (both directions, bridged to the decoder's size), which starts the decoder and is
# fed to every step beside the previous token (Cho et al.).

# %%
config = RNNConfig(cell="gru", embed_dim=16, hidden_size=32, attention="none", dropout=0.0)
model = build_model(config, vocab_size=40).eval()
batch = Batch.from_pairs([[5, 6, 7, 8], [9, 10]], [[11, 12, 13], [14, 15, 16, 17]], [0, 1])
state = model.encode(batch.src, batch.src_mask)
print("source ids + EOS, padded:", batch.src.tolist())
print(
    "context vector c:",
    tuple(state.context.shape),
    "(one H-vector per sentence, whatever its length)",
)
print("decoder input  tgt_in  = BOS + target:", batch.tgt_in.tolist())
print("decoder target tgt_out = target + EOS:", batch.tgt_out.tolist())

# %% [markdown]
# **Teacher forcing**: in training the decoder reads the *reference's* previous token, not its
# own guess, so all positions are computed in one pass; the loss is the cross-entropy of each
# reference token, summed over real (non-padding) positions. nmt's loss with $\epsilon_{ls} = 0$
# is exactly PyTorch's cross-entropy:

# %%
logits = model(batch.src, batch.src_mask, batch.tgt_in)  # (B, T, V): one pass, all positions
loss = label_smoothed_loss(logits, batch.tgt_out, epsilon=0.0)
reference = F.cross_entropy(
    logits.flatten(0, 1), batch.tgt_out.flatten(), ignore_index=0, reduction="sum"
)
print(f"nmt: {loss.nll.item():.4f} over {loss.num_tokens} tokens")
print(f"F.cross_entropy: {reference.item():.4f}")

# %% [markdown]
# ## The bottleneck: GRU without attention against GRU with attention
#
# Bahdanau et al. (2015, Figure 2) showed that an encoder–decoder that squeezes the source into
# one vector translates long sentences worse, and that attention removes the drop. Here is the
# analogue at a CPU's scale, on a task where length is all that varies: a toy language whose
# "German" is the English word for word *in reverse order* (so the decoder must recall the last
# words first), sentences of up to 30 words. Two GRU encoder–decoders of the same size, one
# with a fixed context vector and one with additive attention, are trained for the same number
# of updates by nmt's loop, then scored with BLEU per source-length bucket.

# %%
max_words = 14 if kit.FAST else 30
reverse = kit.toy_corpus(
    work / "reverse",
    sizes={"train": 600 if kit.FAST else 6000, "dev": 30, "test": 60 if kit.FAST else 600},
    lengths=(2, max_words),
    reverse=True,
    seed=4,
)
size = {"embed_dim": 32, "hidden_size": 48} if kit.FAST else {"embed_dim": 64, "hidden_size": 128}
gru = {"arch": "rnn", "cell": "gru", "dropout": 0.0, "share_embeddings": True, **size}
steps = 20 if kit.FAST else 450  # the chapter's 3 minutes on 2 cores
bottleneck_runs = {
    attention: kit.train_model(
        work / f"gru-{attention}",
        reverse,
        gru | {"attention": attention},
        steps=steps,
        vocab_size=150,  # whole words as pieces: the search tree below reads as words
        max_tokens=600 if kit.FAST else 1500,
        peak_lr=3e-3,
        warmup=10 if kit.FAST else 50,
    )
    for attention in ("none", "additive")
}

# %%
sources = list(iter_lines(reverse / "test.en"))
references = list(iter_lines(reverse / "test.de"))
edges = [2, 6, 10, 14] if kit.FAST else [2, 6, 10, 14, 18, 22, 26, 31]
buckets = list(itertools.pairwise(edges))
# Greedy; a reversal is exactly as long as its source, so outputs stop at |X| + 2 tokens.
greedy = DecodingConfig(beam_size=1, max_len_a=1.0, max_len_b=2)
fig, ax = plt.subplots(figsize=(7, 4))
for attention, model_dir in bottleneck_runs.items():
    translator = Translator.load(model_dir)
    hyps = translator.translate(sources, greedy)
    by_bucket = defaultdict(lambda: ([], []))
    for src, hyp, ref in zip(sources, hyps, references, strict=True):
        for low, high in buckets:
            if low <= len(src.split()) < high:
                by_bucket[low][0].append(hyp)
                by_bucket[low][1].append(ref)
    bleu = [score(*by_bucket[low]).bleu for low, _ in buckets]
    label = "GRU, fixed context vector" if attention == "none" else "GRU + additive attention"
    ax.plot([f"{low}-{high - 1}" for low, high in buckets], bleu, marker="o", label=label)
    print(
        f"{label:>27}: BLEU by length",
        " ".join(f"{b:5.1f}" for b in bleu),
        f"| all: {score(hyps, references).bleu:.1f}",
    )
ax.set_xlabel("source length (words)")
ax.set_ylabel("test BLEU (greedy)")
ax.set_title(f"The bottleneck, {steps} updates each (toy reversal task)")
ax.legend()
kit.show(fig)

# %% [markdown]
# ## Greedy against beam search
#
# Greedy search takes the most probable token at each step; beam search (the paper: $k = 4$,
# length penalty $\alpha = 0.6$) keeps the $k$ best prefixes. How often does it find an output
# the model itself finds more probable than greedy's (log P, no length penalty here), and does
# that buy BLEU? Measured on the attention model above:

# %%
translator = Translator.load(bottleneck_runs["additive"])
sample = sources[:20] if kit.FAST else sources[:200]
found = {}
for beam in (1, 4):
    options = DecodingConfig(beam_size=beam, length_penalty=0.0, max_len_a=1.0, max_len_b=2)
    found[beam] = [t[0] for t in translator.translate_nbest(sample, options)]
better = sum(b.score > g.score + 1e-6 for g, b in zip(found[1], found[4], strict=True))
same = sum(abs(b.score - g.score) <= 1e-6 for g, b in zip(found[1], found[4], strict=True))
print(
    f"of {len(sample)} sentences, beam 4 found a more probable output for {better}, "
    f"the same for {same}, a less probable one for {len(sample) - better - same}"
)
for beam in (1, 4):
    bleu = score([t.text for t in found[beam]], references[: len(sample)]).bleu
    print(f"beam {beam}: BLEU {bleu:.1f}")

# %% [markdown]
# ## Beam search drawn as a tree
#
# `nmt.decoding.trace.BeamTrace`, passed as the `observer` of `Translator.translate_nbest`,
# records every step of nmt's real beam search: the candidates kept (the open beams), ended (by
# EOS) and pruned, each with its parent beam and its log P. Drawn below for one sentence with a
# beam of 3: each column is a step, each node a candidate labelled with its token and log P.

# %%
trace = BeamTrace()
sentence = "the old dog sees a red car"
# Outputs here are as long as their source: a limit of |X| + 2 keeps the tree readable.
options = DecodingConfig(beam_size=3, length_penalty=0.0, max_len_a=1.0, max_len_b=2)
[[best]] = translator.translate_nbest([sentence], options, observer=trace)
pieces = translator.tokenizer.pieces()
eos = translator.model.eos_id
print(f"{sentence!r} → {best.text!r} (log P {best.score:.2f})")

fig, ax = plt.subplots(figsize=(12, 5))
previous_y = [0.0]  # y of each open beam of the previous step; the root is BOS
ax.scatter([-1], [0], color="black")
ax.annotate("<s>", (-1, 0), textcoords="offset points", xytext=(-10, 8))
for step in trace.steps[0]:
    candidates = (
        [("kept", c) for c in step.kept]
        + [("ended", c) for c in step.ended]
        + [("pruned", c) for c in step.pruned]
    )
    ys = {}
    for row, (kind, (parent, token, log_prob)) in enumerate(candidates):
        y = -row
        color = {"kept": "tab:blue", "ended": "tab:green", "pruned": "lightgrey"}[kind]
        ax.plot([step.step - 1, step.step], [previous_y[parent], y], color=color, lw=1)
        ax.scatter([step.step], [y], color=color, zorder=3)
        if kind != "pruned":  # pruned candidates: grey points, unlabelled
            text = "</s>" if token == eos else pieces[token]
            ax.annotate(
                f"{text} {log_prob:.1f}",
                (step.step, y),
                textcoords="offset points",
                xytext=(4, 4),
                fontsize=8,
            )
        ys[(kind, parent, token)] = y
    previous_y = [ys[("kept", parent, token)] for parent, token, _ in step.kept]
ax.set_xlabel("step")
ax.set_yticks([])
ax.set_title("beam search (k = 3): blue kept, green ended, grey pruned; labels: token, log P")
kit.show(fig)
finished = trace.paths(0, eos)
print(
    f"{len(finished)} hypotheses ended; the best by log P:",
    translator.tokenizer.decode(max(finished, key=lambda p: p[1])[0]),
)

# %% [markdown]
# ## Beyond translation: summarisation
#
# The same encoder–decoder learns any text-to-text task. `nmt data fetch summaries` builds one
# offline from Debian's package index: each package's long description is the source, its
# one-line synopsis the target (57,164 training pairs from bookworm's index after
# `apt-get update -o Acquire::Languages=en`; in fast mode, the installed packages' descriptions
# in `/var/lib/dpkg/status`). Then `nmt train`, exactly as for translation:
#
# ```sh
# nmt data fetch summaries --dir data/summaries
# nmt train configs/gru-attention.yaml --data.dir=data/summaries --data.src_lang=long \
#     --data.tgt_lang=short --training.run_dir=runs/summaries --training.max_minutes=30
# ```

# %%
summaries = work / "summaries"
if kit.FAST:
    fetch_summaries(summaries, index=[Path("/var/lib/dpkg/status")])
else:
    command = [
        sys.executable,
        "-m",
        "nmt.cli",
        "data",
        "fetch",
        "summaries",
        "--dir",
        str(summaries),
    ]
    print(subprocess.run(command, capture_output=True, text=True, check=True).stdout)
summary_model = kit.train_model(
    work / "summaries-run",
    summaries,
    {"arch": "rnn", "cell": "gru", "attention": "additive", "share_embeddings": True}
    | ({"embed_dim": 32, "hidden_size": 48, "dropout": 0.0} if kit.FAST else {}),
    steps=10 if kit.FAST else 100_000,
    minutes=None if kit.FAST else 1.0,
    vocab_size=200 if kit.FAST else 4000,
    max_tokens=800 if kit.FAST else 3000,
    data={"src_lang": "long", "tgt_lang": "short", "max_len": 160},
    training={"valid_max_sentences": 20 if kit.FAST else 200},
)
summariser = Translator.load(summary_model)
count = 20 if kit.FAST else 200
long = list(iter_lines(summaries / "test.long"))[:count]
short = list(iter_lines(summaries / "test.short"))[:count]
# A synopsis is one short line, whatever the description's length: at most 30 pieces. A model
# this young loops ("for for for …"): no word pair may come twice (docs/decoding.md's guards).
guarded = DecodingConfig(beam_size=4, max_len_a=0.0, max_len_b=30, no_repeat_ngram_size=2)
written = summariser.translate(long, guarded)
scores = score(written, short)
print(f"test synopses ({len(long)}): BLEU {scores.bleu:.1f}, chrF {scores.chrf:.1f}")
for text, ref, hyp in list(zip(long, short, written, strict=True))[:3]:
    print(f"\n{text[:160]}…\n  reference: {ref}\n  nmt:       {hyp}")

# %% [markdown]
# Next: [attention](05_attention.ipynb), which looks inside the model that won the bottleneck
# comparison.
