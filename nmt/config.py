"""Typed configuration: one pydantic model per concern, loaded strictly from YAML.

Unknown keys and wrong types fail with the key's full path (``training.schedule.warmup_steps``).
The same names are used in config files, in ``--key.path=value`` overrides on the command line,
and in the resolved config stored in every run directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

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
    """N: layers in the encoder and in the decoder."""
    d_model: int = Field(512, ge=2)
    d_ff: int = Field(2048, ge=1)
    num_heads: int = Field(8, ge=1)
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    positions: Literal["sinusoidal", "learned"] = "sinusoidal"
    norm: Literal["post", "pre"] = "post"
    """post: LayerNorm(x + Dropout(Sublayer(x))), the paper's; pre: x + Sublayer(LayerNorm(x))."""
    max_positions: int = Field(1024, ge=1)
    share_embeddings: bool = True
    """One embedding matrix for source and target (needs the joint vocabulary)."""
    tie_output: bool = True
    """The pre-softmax projection is the target embedding matrix."""
    src_vectors: Path | None = None
    """Pretrained word vectors (word2vec/GloVe/fastText text format) for the source embedding."""
    tgt_vectors: Path | None = None

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
    precision: Literal["float32", "bfloat16"] = "float32"
    """bfloat16: matmuls under autocast (weights, optimizer and loss stay float32); about 1.7×
    faster on CPUs with AVX512-BF16 and on recent GPUs."""
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
    valid_every: int = Field(1000, ge=1)
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


class DecodingConfig(Strict):
    beam_size: int = Field(4, ge=1)
    length_penalty: float = Field(0.6, ge=0.0)
    """α of the GNMT length penalty ((5 + |Y|) / 6)^α."""
    max_len_a: float = Field(1.0, ge=0.0)
    max_len_b: int = Field(50, ge=0)
    """Output length limit a · |X| + b (the paper: |X| + 50)."""
    max_tokens: int = Field(4000, ge=1)
    """Token budget of one translation batch."""


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
