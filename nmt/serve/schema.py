"""The JSON the API reads and writes (pydantic models; FastAPI derives /docs from them).

A request's decoding options are the CLI's: the fields of :class:`nmt.config.DecodingConfig`,
each optional (left out: the server's default, i.e. the model's ``decoding`` section), validated
by DecodingConfig itself once merged with those defaults. Only ``max_tokens`` is left out: how
texts are batched is the server's business.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from nmt.config import DecodingConfig
from nmt.serve.limits import ServeSettings

# DecodingConfig fields a request may not set.
SERVER_SIDE_OPTIONS = frozenset({"max_tokens"})


def _optional_option_fields() -> dict[str, Any]:
    """DecodingConfig's fields, each with its own constraints (ge, le, ...) but optional."""
    fields: dict[str, Any] = {}
    for name, field in DecodingConfig.model_fields.items():
        if name in SERVER_SIDE_OPTIONS:
            continue
        kind: Any = field.annotation
        if field.metadata:  # keep ge/le/gt: a value out of range fails here, naming the field
            kind = Annotated[(kind, *field.metadata)]
        fields[name] = (kind | None, Field(None, description=_describe(name, field.default)))
    return fields


def _describe(name: str, default: Any) -> str:
    return f"nmt.config.DecodingConfig.{name}; left out: the model's own (default {default!r})"


# Strict: a wrong JSON type is a 422 naming the field, never silently converted.
DecodingOptions = create_model(
    "DecodingOptions",
    __config__=ConfigDict(extra="forbid", strict=True),
    **_optional_option_fields(),
)


class TranslateRequest(DecodingOptions):
    """Texts to translate, with decoding options for all of them."""

    texts: list[str] = Field(min_length=1, description="one sentence (or line) each")
    attention: bool = Field(
        False, description="also return the cross-attention of every layer and head"
    )

    def given_options(self) -> dict[str, Any]:
        """The decoding options this request set explicitly (null included)."""
        return self.model_dump(exclude_unset=True, exclude={"texts", "attention"})


class AttentionMap(BaseModel):
    """Where the decoder looked while writing one translation.

    ``weights[l][h][t][s]``: layer l, head h, target piece t, source piece s. Both piece lists
    end with the end-of-sentence piece ``</s>``: the source's is read by the encoder, the
    target's row is the step that chose to end. A recurrent model's one map has L = H = 1.
    """

    src_pieces: list[str]
    tgt_pieces: list[str]
    weights: list[list[list[list[float]]]]


class Hypothesis(BaseModel):
    text: str
    score: float = Field(description="log-probability with the length penalty (search's score)")
    attention: AttentionMap | Literal["none"] | None = Field(
        None, description='with "attention": true; "none" for a model without attention'
    )


class TranslationResult(BaseModel):
    text: str = Field(description="the best translation")
    score: float
    truncated: bool = Field(
        description="the source was longer than the model accepts and only its start was used"
    )
    hypotheses: list[Hypothesis] = Field(description="the n-best list, best first")


class TranslateResponse(BaseModel):
    translations: list[TranslationResult] = Field(description="one per text, in order")


class Health(BaseModel):
    status: Literal["ok", "stopping"]
    in_flight: int = Field(description="requests accepted and not yet answered")
    queued: int = Field(description="requests waiting for the model")
    requests: int = Field(description="requests translated since the start")
    batches: int = Field(description="model calls that translated them")
    skipped: int = Field(
        description="requests never translated because their client hung up while they waited"
    )


class ModelInfo(BaseModel):
    model_dir: str = Field(description="the model (an ensemble's first member)")
    members: list[str] = Field(
        description="an ensemble's model directories, whose next-token probabilities are "
        "averaged; one for a single model"
    )
    engine: str
    device: str
    architecture: dict[str, Any] = Field(description="the model section of its config")
    parameters: int = Field(description="of all members together")
    src_lang: str
    tgt_lang: str
    vocab_size: int
    training_step: int | None = Field(
        description="None: not recorded in the model directory (or an ensemble)"
    )
    decoding: DecodingConfig = Field(description="the options a request leaves out")
    server: ServeSettings | None = Field(None, description="batching and limits per request")
