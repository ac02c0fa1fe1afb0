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
from nmt.text import Format

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

    texts: list[str] = Field(
        min_length=1,
        description="paragraphs or whole texts: each is split into sentences, every sentence "
        "translated, and the translations put back with the text's own spacing and lines",
    )
    format: Format = Field(
        "text",
        description='"text": every line break ends a sentence; "html" / "xml": a fragment whose '
        "inline tags come back around the words they belong to (placed by word alignment)",
    )
    attention: bool = Field(
        False, description="also return the cross-attention of every layer and head"
    )
    scores: bool = Field(
        False, description="also return each output piece with its probability (and the EOS's)"
    )
    alignments: bool = Field(
        False,
        description='also return word alignments in Pharaoh format ("0-0 1-2": source word '
        "- target word, 0-based), read off the cross-attention",
    )
    trace: bool = Field(
        False,
        description="also return the beam search of every sentence, step by step: the "
        "hypotheses kept, ended and pruned, with their parents and log-probabilities "
        "(nmt engine only; such a request is searched alone)",
    )

    def given_options(self) -> dict[str, Any]:
        """The decoding options this request set explicitly (null included)."""
        return self.model_dump(exclude_unset=True, exclude=set(REQUEST_ONLY_FIELDS))


REQUEST_ONLY_FIELDS = ("texts", "format", "attention", "scores", "alignments", "trace")


class AttentionMap(BaseModel):
    """Where the decoder looked while writing one translation.

    ``weights[l][h][t][s]``: layer l, head h, target piece t, source piece s. Both piece lists
    end with the end-of-sentence piece ``</s>``: the source's is read by the encoder, the
    target's row is the step that chose to end. A recurrent model's one map has L = H = 1.
    """

    src_pieces: list[str]
    tgt_pieces: list[str]
    weights: list[list[list[list[float]]]]


class TokenScore(BaseModel):
    piece: str = Field(description='a target subword; "</s>" for the end of the sentence')
    prob: float = Field(description="its probability given the source and the pieces before")


class Hypothesis(BaseModel):
    text: str
    score: float = Field(description="log-probability with the length penalty (search's score)")
    attention: AttentionMap | Literal["none"] | None = Field(
        None, description='with "attention": true; "none" for a model without attention'
    )
    tokens: list[TokenScore] | None = Field(None, description='with "scores": true')
    alignment: str | None = Field(
        None, description='with "alignments": true: Pharaoh pairs "source-target" of words'
    )


class TraceTerms(BaseModel):
    """Per candidate of a traced step (in the step's order), the glossary tokens its hypothesis
    has produced, its own token included: a candidate with more than its parent was steered by
    the glossary (constrained search, docs/decoding.md)."""

    kept: list[int]
    ended: list[int]
    pruned: list[int]


class TraceStep(BaseModel):
    """One step of a sentence's beam search. Each entry is [parent, piece, log-probability]:
    ``parent`` indexes the previous step's ``kept`` (0 at the first step)."""

    kept: list[tuple[int, str, float]] = Field(description="the open beams after this step")
    ended: list[tuple[int, str, float]] = Field(description="hypotheses finished this step")
    pruned: list[tuple[int, str, float]] = Field(description="candidates that fell out")
    terms: TraceTerms | None = Field(
        None, description="with a glossary: how many glossary tokens each candidate holds"
    )


class SentenceResult(BaseModel):
    source: str = Field(description="the sentence as the model read it")
    text: str = Field(description="its best translation")
    score: float
    truncated: bool = Field(
        description="the sentence was longer than the model accepts and only its start was "
        "used (a text's long sentences are cut into pieces first, so this is rare)"
    )
    hypotheses: list[Hypothesis] = Field(description="the n-best list, best first")
    trace: list[TraceStep] | None = Field(None, description='with "trace": true')


class TranslationResult(BaseModel):
    text: str = Field(description="the text translated: its sentences' best translations")
    score: float = Field(description="the sum of its sentences' scores")
    truncated: bool = Field(description="some sentence was truncated (see sentences)")
    sentences: list[SentenceResult] = Field(description="what each sentence gave, in order")


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
    cut_short: int = Field(
        description="requests whose client hung up while they were translated: the sentences "
        "not yet begun were never translated"
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
