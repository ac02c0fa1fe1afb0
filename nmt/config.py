"""Typed configuration: one pydantic model per concern, loaded strictly from YAML.

Unknown keys and wrong types fail with the key's full path (``training.schedule.warmup_steps``).
The same names are used in config files, in ``--key.path=value`` overrides on the command line,
and in the resolved config stored in every run directory.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from nmt.errors import NmtError


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(Strict):
    dir: Path = Path("data/de-en")
    """Folder holding ``{train,dev,test}.{src_lang,tgt_lang}``, one sentence a line."""
    src_lang: str = "en"
    tgt_lang: str = "de"
    vocab_size: int = Field(8000, ge=16)
    """Size of the joint source–target SentencePiece BPE vocabulary (the paper: about 37,000)."""
    max_len: int = Field(128, ge=2)
    """Training pairs with more subword tokens than this on a side are dropped (and counted)."""


# The paper's Table 3 presets, plus a small one sized for CPU training.
TRANSFORMER_PRESETS: dict[str, dict[str, Any]] = {
    "base": {"num_layers": 6, "d_model": 512, "d_ff": 2048, "num_heads": 8, "dropout": 0.1},
    "big": {"num_layers": 6, "d_model": 1024, "d_ff": 4096, "num_heads": 16, "dropout": 0.3},
    "small": {"num_layers": 3, "d_model": 256, "d_ff": 1024, "num_heads": 4, "dropout": 0.1},
}


class TransformerConfig(Strict):
    arch: Literal["transformer"] = "transformer"
    preset: Literal["base", "big", "small"] | None = None
    """Fills every size field not given explicitly from TRANSFORMER_PRESETS."""
    num_layers: int = Field(6, ge=1)
    """N: layers in the encoder and in the decoder (unless encoder_layers/decoder_layers say)."""
    encoder_layers: int | None = Field(None, ge=1)
    """Encoder depth when it differs from num_layers; None: num_layers."""
    decoder_layers: int | None = Field(None, ge=1)
    """Decoder depth when it differs from num_layers; None: num_layers."""
    d_model: int = Field(512, ge=2)
    d_ff: int = Field(2048, ge=1)
    num_heads: int = Field(8, ge=1)
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    activation: Literal["relu", "swish", "gelu"] = "relu"
    """The feed-forward's nonlinearity: relu (the paper), swish (= SiLU, Marian) or gelu (exact,
    erf-based)."""
    positions: Literal["sinusoidal", "learned"] = "sinusoidal"
    """sinusoidal: computed, not stored; learned: a table of weights (also how an imported table
    is carried)."""
    position_layout: Literal["interleaved", "concatenated"] = "interleaved"
    """Sinusoid columns: interleaved sin, cos, sin, … (the paper's formula); concatenated: all
    sines, then all cosines, at the same frequencies (Marian)."""
    norm: Literal["post", "pre"] = "post"
    """post: LayerNorm(x + Dropout(Sublayer(x))), the paper's; pre: x + Sublayer(LayerNorm(x))."""
    scale_embedding: bool = True
    """Multiply embeddings by √d_model (the paper, 3.4)."""
    output_bias: bool = False
    """A bias (V,) added to the logits (Marian's final_logits_bias)."""
    max_positions: int = Field(1024, ge=1)
    share_embeddings: bool = True
    """One embedding matrix for source and target (needs the joint vocabulary)."""
    tie_output: bool = True
    """The pre-softmax projection is the target embedding matrix."""
    src_vectors: Path | None = None
    """Pretrained word vectors (word2vec/GloVe/fastText text format) for the source embedding."""
    tgt_vectors: Path | None = None
    pad_id: int | None = Field(None, ge=0)
    """Padding id; None: the tokenizer's default (nmt.data.tokenizer.PAD_ID)."""
    bos_id: int | None = Field(None, ge=0)
    """The decoder's start token; None: the tokenizer's default BOS_ID."""
    eos_id: int | None = Field(None, ge=0)
    """End of sentence; None: the tokenizer's default EOS_ID."""

    @property
    def num_encoder_layers(self) -> int:
        return self.encoder_layers if self.encoder_layers is not None else self.num_layers

    @property
    def num_decoder_layers(self) -> int:
        return self.decoder_layers if self.decoder_layers is not None else self.num_layers

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, values: Any) -> Any:
        if isinstance(values, dict) and values.get("preset") in TRANSFORMER_PRESETS:
            return {**TRANSFORMER_PRESETS[values["preset"]], **values}
        return values

    @model_validator(mode="after")
    def _heads_divide_width(self) -> TransformerConfig:
        if self.d_model % self.num_heads:
            raise ValueError(
                f"d_model ({self.d_model}) must be divisible by num_heads ({self.num_heads})"
            )
        return self


class RNNConfig(Strict):
    arch: Literal["rnn"] = "rnn"
    cell: Literal["rnn", "lstm", "gru"] = "lstm"
    """rnn: Elman (tanh); lstm; gru."""
    embed_dim: int = Field(256, ge=1)
    hidden_size: int = Field(512, ge=1)
    num_layers: int = Field(1, ge=1)
    bidirectional: bool = True
    """Bidirectional encoder (its two directions are concatenated, then projected)."""
    attention: Literal["none", "additive", "dot", "general"] = "additive"
    """none: fixed context vector (Sutskever/Cho); additive: Bahdanau; dot/general: Luong."""
    input_feeding: bool = False
    """Luong's input feeding: the previous attentional vector joins the decoder input."""
    dropout: float = Field(0.2, ge=0.0, lt=1.0)
    share_embeddings: bool = False
    tie_output: bool = True
    """Tie decoder input and output embeddings (when their sizes allow)."""
    max_positions: int = Field(1024, ge=1)
    src_vectors: Path | None = None
    tgt_vectors: Path | None = None
    pad_id: int | None = Field(None, ge=0)
    """Padding id; None: the tokenizer's default (nmt.data.tokenizer.PAD_ID)."""
    bos_id: int | None = Field(None, ge=0)
    """The decoder's start token; None: the tokenizer's default BOS_ID."""
    eos_id: int | None = Field(None, ge=0)
    """End of sentence; None: the tokenizer's default EOS_ID."""


ModelConfig = Annotated[TransformerConfig | RNNConfig, Field(discriminator="arch")]


class ScheduleConfig(Strict):
    kind: Literal["noam", "peak"] = "noam"
    """noam: scale · d_model^-0.5 · min(step^-0.5, step · warmup^-1.5), the paper's;
    peak: the same shape rescaled so that the rate at step = warmup is ``peak_lr``."""
    warmup_steps: int = Field(4000, ge=1)
    scale: float = Field(1.0, gt=0.0)
    peak_lr: float | None = Field(None, gt=0.0)

    @model_validator(mode="after")
    def _peak_needs_value(self) -> ScheduleConfig:
        if self.kind == "peak" and self.peak_lr is None:
            raise ValueError("schedule kind 'peak' needs peak_lr")
        return self


class TrainingConfig(Strict):
    run_dir: Path = Path("runs/quickstart")
    seed: int = 1
    device: Literal["cpu", "cuda", "auto"] = "cpu"
    precision: Literal["float32", "bfloat16", "float16"] = "float32"
    """bfloat16: matmuls under autocast (weights, optimizer and loss stay float32); about 1.7×
    faster on CPUs with AVX512-BF16 and on recent GPUs. float16: the same with a dynamic loss
    scale (for GPUs without bfloat16); updates whose gradients overflow are skipped and counted.
    float32 on a GPU lets matmuls use TF32 (Ampere and later)."""
    compile: bool = False
    """torch.compile the model for training (on a 2-core CPU it was slower: docs/gpu.md)."""
    max_tokens: int = Field(4096, ge=1)
    """Token budget of one forward pass, for source and for target each (padding included)."""
    accumulate: int = Field(1, ge=1)
    """Forward passes per update: an update holds about max_tokens · accumulate · world target
    tokens (the paper: about 25,000)."""
    max_steps: int | None = Field(100_000, ge=1)
    max_minutes: float | None = Field(None, gt=0.0)
    """Stop after this much training time (validation excluded), if it comes before max_steps."""
    label_smoothing: float = Field(0.1, ge=0.0, lt=1.0)
    adam_beta1: float = 0.9
    adam_beta2: float = 0.98
    adam_eps: float = 1e-9
    schedule: ScheduleConfig = ScheduleConfig()
    clip_norm: float | None = Field(None, gt=0.0)
    """Gradient-norm clipping; None (the paper) means none."""
    log_every: int = Field(50, ge=1)
    valid_every: int | None = Field(1000, ge=1)
    """Updates between dev-set validations; None: by time only (valid_every_minutes), or, with
    that None too, never (no best model: Table 3 scores its cells' checkpoints itself)."""
    valid_every_minutes: float | None = Field(None, gt=0.0)
    """Also validate each time this much more training time has passed (for runs compared by
    wall-clock budget); None: by steps only."""
    save_every: int | None = Field(1000, ge=1)
    """Updates between checkpoints; None: by time only (save_every_minutes)."""
    save_every_minutes: float | None = Field(None, gt=0.0)
    """Also save each time this much more training time has passed (the paper wrote a checkpoint
    every 10 minutes, and averaged the last 5 or 20); None: by steps only."""
    keep_last: int = Field(5, ge=1)
    best_metric: Literal["bleu", "loss"] = "bleu"
    patience: int | None = Field(None, ge=1)
    """Stop after this many validations without improvement of best_metric; None: never."""
    valid_max_sentences: int | None = Field(None, ge=1)
    """Translate only the first N dev sentences for validation BLEU (greedy); None: all."""
    progress: bool = True
    # Scheduled sampling (Bengio et al. 2015; nmt.training.scheduled_sampling).
    teacher_forcing: float = Field(1.0, ge=0.0, le=1.0)
    """Probability that the decoder is fed the reference's previous token rather than its own
    argmax prediction (at the first update, when a schedule decays it); 1.0: plain teacher
    forcing."""
    teacher_forcing_schedule: Literal["constant", "linear", "inverse_sigmoid"] = "constant"
    """How that probability decays with the update count i: constant; linear,
    max(min, p0 − (p0 − min)·i / decay_steps); inverse_sigmoid, max(min, p0·k / (k + exp(i/k)))."""
    teacher_forcing_min: float = Field(0.0, ge=0.0, le=1.0)
    """The floor a decaying schedule never goes below (Bengio et al.'s ε)."""
    teacher_forcing_decay_steps: int = Field(10_000, ge=1)
    """linear: updates from teacher_forcing down to teacher_forcing_min."""
    teacher_forcing_k: float = Field(1000.0, ge=1.0)
    """inverse_sigmoid: k (larger: later and slower decay; about k·ln k updates to halve)."""

    @model_validator(mode="after")
    def _teacher_forcing_floor(self) -> TrainingConfig:
        if self.teacher_forcing_min > self.teacher_forcing:
            raise ValueError("training.teacher_forcing_min must not exceed teacher_forcing")
        return self


class GlossaryTerm(Strict):
    """A glossary entry: where ``source`` occurs in a sentence, its translation must contain
    ``target`` (nmt.decoding.glossary says how sources are matched)."""

    source: str
    target: str

    @field_validator("source", "target")
    @classmethod
    def _not_blank(cls, text: str) -> str:
        if not text.strip():
            raise ValueError("empty" if not text else "only whitespace")
        return text


class DecodingConfig(Strict):
    """How to translate: the one options object of search.

    It comes from a model's ``decoding`` section, is overridden by the command line (or a
    server request) through :meth:`updated`, and flows through ``translate_file`` and the
    Translator into nmt.decoding.search, which documents what each option does.
    """

    beam_size: int = Field(4, ge=1)
    """k, the hypotheses kept open per sentence; 1 is greedy search."""
    nbest: int = Field(1, ge=1)
    """Translations returned per sentence (at most beam_size)."""
    length_penalty: float = Field(0.6, ge=0.0)
    """α of the GNMT length penalty ((5 + |Y|) / 6)^α."""
    max_len_a: float = Field(1.0, ge=0.0)
    max_len_b: int = Field(50, ge=0)
    """Output length limit a · |X| + b (the paper: |X| + 50)."""
    max_tokens: int = Field(4000, ge=1)
    """Token budget of one translation batch."""
    stopping: Literal["early", "exact"] = "early"
    """When a sentence's beam search ends. early: once its most probable candidate has ended
    (OpenNMT; CTranslate2 at α = 0); exact: once no open beam can still beat the n-best
    finished ones (tensor2tensor's bound, the paper's code: may decode to the length limit)."""
    patience: float | None = Field(None, gt=0.0)
    """With stopping 'early': go on until ⌈patience · beam_size⌉ hypotheses have ended
    (fairseq's rule at 1.0; Kasai et al., 2022); None: the most probable candidate decides."""
    allow_empty: bool = False
    """May a non-blank source get an empty translation? No by default (as CTranslate2): an empty
    line never translates a sentence, yet it is what a weak or unsure model finds most probable.
    Blank lines still translate to blank lines."""
    sampling: bool = False
    """Draw each token from the model instead of searching (back-translation); beam_size is
    not used, one translation per sentence."""
    temperature: float = Field(1.0, gt=0.0)
    """Sampling from softmax(log p / temperature)."""
    top_k: int | None = Field(None, ge=1)
    """Sampling among the k most probable tokens only; None: all."""
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    """Sampling in the nucleus: the fewest most probable tokens whose mass reaches top_p."""
    seed: int | None = None
    """Sampling seed (the same seed, the same draws); None: a fresh draw every time."""
    prefix: str | None = None
    """Target prefix: every output starts with this text, then search goes on (CTranslate2's
    ``target_prefix``). Its tokens count toward the length limit."""
    no_repeat_ngram_size: int = Field(0, ge=0)
    """Never write an n-gram of this size twice in one output; 0: no such guard (CTranslate2's
    option of the same name)."""
    repetition_penalty: float = Field(1.0, gt=0.0)
    """CTRL's penalty on tokens already written: their scores are divided by it when positive,
    multiplied when negative, then renormalised; above 1 discourages repeats; 1: none
    (CTranslate2's option of the same name; nmt applies it to log-probabilities)."""
    min_len_a: float = Field(0.0, ge=0.0)
    min_len_b: int = Field(0, ge=0)
    """Minimum output length a · |X| + b tokens (EOS forbidden before; the prefix counts),
    beside the maximum max_len_a · |X| + max_len_b (CTranslate2: min_decoding_length)."""
    glossary: list[GlossaryTerm] | None = None
    """Terms the translations must contain: lexically constrained beam search with dynamic beam
    allocation (nmt.decoding.constraints); CLI ``--glossary terms.tsv``; None: none."""

    @model_validator(mode="after")
    def _options_fit_together(self) -> DecodingConfig:
        if self.sampling and self.nbest != 1:
            raise ValueError(f"nbest ({self.nbest}) must be 1 when sampling")
        if not self.sampling and self.nbest > self.beam_size:
            raise ValueError(f"nbest ({self.nbest}) must be at most beam_size ({self.beam_size})")
        if self.patience is not None and self.stopping != "early":
            raise ValueError(
                "patience applies to stopping 'early' only (unset it: --patience none, "
                '"patience": null)'
            )
        if self.prefix is not None and not self.prefix.strip():
            raise ValueError("prefix: empty; give text, or leave the option out")
        if self.glossary and self.sampling:
            raise ValueError("glossary: needs beam search (a drawn token cannot be constrained)")
        return self

    def merged(self, changes: Mapping[str, Any]) -> dict[str, Any]:
        """The one rule by which options change (command line, server request, Python),
        unvalidated: each named option takes its value, except that None leaves it as it is
        (a flag not given) and UNSET takes its value away (``--top-k none``, a request's
        ``"top_k": null``): a model's patience, seed, top_k or top_p can be unset."""
        values = self.model_dump()
        for name, value in changes.items():
            if value is UNSET:
                values[name] = None
            elif value is not None:
                values[name] = value
        return values

    def updated(self, **changes: Any) -> DecodingConfig:
        """These options with ``changes`` applied by :meth:`merged`'s rule, validated together:
        a bad value is an NmtError naming the field."""
        tree = {"decoding": self.merged(changes)}
        return config_from_dict(tree, source="decoding options").decoding


class _Unset:
    """The value that takes an option's value away (see DecodingConfig.merged)."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()


def optional(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    """A command-line type: ``kind``'s values, or ``none`` for UNSET (take the value away)."""

    def parse(text: str) -> Any:
        return UNSET if text.strip().lower() == "none" else kind(text)

    parse.__name__ = kind.__name__  # argparse names the type in its error messages
    return parse


class Config(Strict):
    data: DataConfig = DataConfig()
    model: ModelConfig = TransformerConfig()
    training: TrainingConfig = TrainingConfig()
    decoding: DecodingConfig = DecodingConfig()

    @model_validator(mode="before")
    @classmethod
    def _transformer_by_default(cls, values: Any) -> Any:
        model = values.get("model") if isinstance(values, dict) else None
        if isinstance(model, dict) and "arch" not in model:
            return {**values, "model": {"arch": "transformer", **model}}
        return values

    @model_validator(mode="after")
    def _training_pairs_fit_the_model(self) -> Config:
        # A kept pair has up to max_len subwords a side, plus EOS (source) or BOS (target).
        if self.data.max_len + 1 > self.model.max_positions:
            raise ValueError(
                f"data.max_len ({self.data.max_len}) + 1 exceeds model.max_positions "
                f"({self.model.max_positions}): lower data.max_len or raise model.max_positions"
            )
        return self


def _set_path(tree: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = tree
    for key in keys[:-1]:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise NmtError(f"override {dotted}: {key} is not a section")
        node = child
    node[keys[-1]] = value


def parse_overrides(overrides: list[str]) -> list[tuple[str, Any]]:
    """``--training.max_steps=100`` → ("training.max_steps", 100); values are read as YAML."""
    parsed = []
    for item in overrides:
        text = item.removeprefix("--")
        if "=" not in text:
            raise NmtError(f"override {item!r} must look like --key.path=value")
        key, raw = text.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw else ""
        except yaml.YAMLError as exc:
            raise NmtError(f"override {item!r}: value is not valid YAML ({exc})") from None
        parsed.append((key, value))
    return parsed


def config_from_dict(tree: dict[str, Any], *, source: str) -> Config:
    try:
        return Config.model_validate(tree)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            # Drop the union tag pydantic puts in the path of discriminated unions.
            loc = [str(p) for p in error["loc"] if p not in ("transformer", "rnn")]
            problems.append(f"  {'.'.join(loc) or '(top level)'}: {error['msg']}")
        raise NmtError(f"{source}: invalid config\n" + "\n".join(problems)) from None


def load_config(path: Path | str, overrides: list[str] | None = None) -> Config:
    """Load a YAML config, apply ``--key.path=value`` overrides, validate strictly."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise NmtError(f"{path}: cannot read config ({exc})") from None
    try:
        tree = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise NmtError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(tree, dict):
        raise NmtError(f"{path}: a config must be a mapping of sections")
    for key, value in parse_overrides(overrides or []):
        _set_path(tree, key, value)
    return config_from_dict(tree, source=str(path))


def config_to_yaml(config: Config) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
