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
# # 2. Word embeddings
#
# A network reads words as vectors. Word2Vec (Mikolov et al., 2013) learns them from raw text
# by predicting a word's neighbours from the word (skip-gram) or the word from its neighbours
# (CBOW); FastText (Bojanowski et al., 2017) builds a word's vector from its character n-grams,
# so that even a word never seen gets one. GloVe fits the same kind of vectors to co-occurrence
# counts. All of them give each word **one** vector, whatever its sentence: ELMo and BERT
# replaced them by *contextual* vectors, the states of a network that has read the sentence.
#
# `nmt embeddings train` trains the static kinds with gensim and writes them in the format
# nmt's `model.src_vectors` reads:
#
# ```sh
# nmt embeddings train data/de-en/train.en -o vectors/en.sg.txt --method skipgram --dim 256
# nmt embeddings train data/de-en/train.de -o vectors/de.ft.txt --method fasttext --dim 256
# ```

# %%
import kit
import matplotlib.pyplot as plt
import torch

from nmt.embeddings.options import EmbeddingOptions
from nmt.embeddings.train import read_sentences, train_embeddings, train_vectors
from nmt.models.pretrained import load_pretrained_embeddings
from nmt.models.store import load_model_dir
from nmt.training.metrics import METRICS_FILE, read_metrics

kit.start()
work = kit.workdir("02")
data = kit.corpus(work)

# %% [markdown]
# ## Skip-gram, CBOW and FastText on both sides of the corpus

# %%
dim = 16 if kit.FAST else 64
epochs = 2  # passes over the corpus (gensim: 5): the chapter keeps to its time budget
models = {}
for lang in ("en", "de"):
    sentences = read_sentences([data / f"train.{lang}"], lowercase=False)
    for method in ("skipgram", "cbow", "fasttext"):
        options = EmbeddingOptions(method=method, dim=dim, epochs=epochs, min_count=2)
        models[lang, method] = train_vectors(sentences, options)
    vocabulary = len(models[lang, "skipgram"].wv)
    print(f"{lang}: {sum(map(len, sentences)):,} words, {vocabulary:,} in the vocabulary")

# %% [markdown]
# ### Nearest neighbours
#
# The words whose vectors are closest (by cosine) to a few query words, for each method.

# %%
queries = (
    {"en": ["dog", "red"], "de": ["hund", "rot"]}
    if kit.FAST
    else {
        "en": ["file", "window", "Monday", "green"],
        "de": ["Datei", "Fenster", "Montag", "grün"],
    }
)
for lang, words in queries.items():
    for word in words:
        for method in ("skipgram", "cbow", "fasttext"):
            wv = models[lang, method].wv
            if word in wv.key_to_index:
                near = ", ".join(w for w, _ in wv.most_similar(word, topn=5))
                print(f"{lang} {method:>8} {word!r:>10}: {near}")

# %% [markdown]
# ### Analogies
#
# $v(b) - v(a) + v(c)$ should land near $d$ when $a : b = c : d$. A corpus of software manuals
# and dictionary examples holds few analogies, so some of these fail, and how they fail is
# instructive.

# %%
analogies = (
    [("dog", "hund", "cat")]
    if kit.FAST
    else [
        ("Monday", "Tuesday", "Saturday"),
        ("open", "close", "save"),
        ("man", "woman", "king"),
        ("big", "bigger", "small"),
    ]
)
for a, b, c in analogies:
    wv = models["en", "skipgram"].wv
    if all(w in wv.key_to_index for w in (a, b, c)):
        found = [w for w, _ in wv.most_similar(positive=[b, c], negative=[a], topn=3)]
        print(f"{a} : {b} = {c} : {found}")
    else:
        print(f"{a} : {b} = {c} : (a word is not in the vocabulary)")

# %% [markdown]
# ### FastText's vectors for words never seen
#
# Word2Vec has no vector for a word outside its vocabulary; FastText sums the vectors of its
# character n-grams, so a misspelling or a new compound should land near its relatives: does it?

# %%
unseen = (
    ["dogs", "reddish"]
    if kit.FAST
    else ["Dateimanagerfenster", "configurability", "Druckereinstellung"]
)
for word in unseen:
    lang = "de" if word[0].isupper() and not kit.FAST else "en"
    fasttext = models[lang, "fasttext"].wv
    in_vocab = word in fasttext.key_to_index
    near = ", ".join(w for w, _ in fasttext.most_similar(word, topn=5))
    print(f"{word!r} ({'seen' if in_vocab else 'never seen'}): {near}")
    print(f"   skip-gram has a vector for it: {word in models[lang, 'skipgram'].wv.key_to_index}")

# %% [markdown]
# ## Pretrained vectors in nmt's recurrent encoder
#
# The same verb writes the vectors file; `model.src_vectors` copies its rows into the source
# embedding of a GRU encoder–decoder (word-initial SentencePiece pieces look up their word).
# Two models, identical but for that initialisation, are trained for the same number of updates
# and their dev perplexity compared.

# %%
vectors = work / "vectors" / "en.skipgram.txt"
embed_dim = 32 if kit.FAST else 128
print(
    train_embeddings(
        [data / "train.en"],
        vectors,
        EmbeddingOptions(method="skipgram", dim=embed_dim, epochs=epochs),
    )
)
gru = {
    "arch": "rnn",
    "cell": "gru",
    "attention": "additive",
    "embed_dim": embed_dim,
    "hidden_size": 48 if kit.FAST else 128,
    "share_embeddings": False,  # the vectors are English: the source embedding only
    "dropout": 0.0 if kit.FAST else 0.2,
}
budget = 15 if kit.FAST else 150
ppl = {}
for name, extra in (("random init", {}), ("skip-gram init", {"src_vectors": str(vectors)})):
    model_dir = kit.train_model(
        work / name.replace(" ", "-"),
        data,
        gru | extra,
        steps=budget,
        vocab_size=150 if kit.FAST else 8000,  # fast: large enough for whole-word pieces
        max_tokens=600 if kit.FAST else 1500,
        training={"valid_every": max(budget // 4, 1), "valid_max_sentences": 20},
        tokenizer_from=None if not ppl else work / "random-init",  # one vocabulary for both
    )
    if extra:  # how much of the vocabulary the file covered
        pieces = load_model_dir(model_dir).tokenizer.pieces()
        print(
            load_pretrained_embeddings(torch.nn.Embedding(len(pieces), embed_dim), pieces, vectors)
        )
    curve = [r for r in read_metrics(model_dir.parent / METRICS_FILE) if r["split"] == "dev"]
    ppl[name] = curve
    print(
        f"{name:>15}: dev perplexity",
        " → ".join(f"{r['ppl']:.1f} (step {r['step']})" for r in curve),
    )

fig, ax = plt.subplots(figsize=(6, 4))
for name, curve in ppl.items():
    ax.plot([r["step"] for r in curve], [r["ppl"] for r in curve], marker="o", label=name)
ax.set_xlabel("update")
ax.set_ylabel("dev perplexity")
ax.set_yscale("log")
ax.set_title(f"GRU + attention, source embedding initialised or not ({budget} updates)")
ax.legend()
kit.show(fig)

# %% [markdown]
# ## Contextual against static
#
# A static vector is the same in every sentence; the encoder of a translation model gives each
# occurrence its own state, computed from the whole sentence: the idea behind ELMo (a
# bidirectional LSTM's states) and BERT (a Transformer encoder's). Below, a small Transformer
# trained by nmt's loop encodes one ambiguous word in several sentences; the cosine similarity
# of its encoder states varies with the sense, while the skip-gram vector is one point.

# %%
transformer_dir = kit.train_model(
    work / "transformer",
    data,
    {
        "arch": "transformer",
        "num_layers": 2,
        "d_model": 32 if kit.FAST else 128,
        "d_ff": 64 if kit.FAST else 512,
        "num_heads": 4,
        "dropout": 0.0 if kit.FAST else 0.1,
        "norm": "pre",
    },
    steps=15 if kit.FAST else 150,
    vocab_size=60 if kit.FAST else 8000,
    max_tokens=600 if kit.FAST else 2000,
)
loaded = load_model_dir(transformer_dir)
model, tokenizer = loaded.model.eval(), loaded.tokenizer
word = "house" if kit.FAST else "set"
contexts = (
    [
        "the house sees a cat",
        "a big house",
        "the red house runs",
        "the dog eats the house",
    ]
    if kit.FAST
    else [
        "Set the value to zero.",
        "Set the font size.",
        "A set of files.",
        "The whole set of tools.",
    ]
)
states = []
for text in contexts:
    ids = tokenizer.encode(text)
    # The word's pieces: "▁" starts each word, so the k-th word is the k-th run of pieces.
    starts = [i for i, piece in enumerate(tokenizer.pieces()[j] for j in ids) if piece[0] == "▁"]
    k = [w.strip(".,").lower() for w in text.split()].index(word)
    first, end = starts[k], ([*starts, len(ids)])[k + 1]
    src = torch.tensor([[*ids, model.eos_id]])
    with torch.no_grad():
        memory = model.encoder(src, src != model.pad_id)  # (1, S, D)
    states.append(memory[0, first:end].mean(dim=0))
states = torch.stack(states)
similarity = torch.nn.functional.cosine_similarity(states[:, None], states[None], dim=-1)
fig, ax = plt.subplots(figsize=(6, 5))
image = ax.imshow(similarity.numpy(), vmin=-1, vmax=1, cmap="RdBu")
ax.set_xticks(range(len(contexts)), contexts, rotation=30, ha="right")
ax.set_yticks(range(len(contexts)), contexts)
ax.set_title(f"cosine of the encoder states of {word!r}")
fig.colorbar(image, ax=ax)
kit.show(fig)
print(f"static skip-gram vector of {word!r}: one vector, similarity 1.0 between every pair")

# %% [markdown]
# Next: [LSTM and GRU](03_lstm_and_gru.ipynb), the gated cells that read these vectors.
