"""What one request may ask of the server (and how it batches), and the errors that name the
limit a request crossed.

Sizes (body bytes, texts per request, characters and subwords per text) are answered with 413
Content Too Large; an option beyond what the server allows (the beam size) with 422, like any
other option out of range. Every such error has the shape of FastAPI's validation errors plus
the limit's name and value, so a client handles one format::

    {"detail": [{"type": "limit_exceeded", "loc": ["body", "texts", 3],
                 "msg": "texts[3]: 12,412 characters; the limit is 10,000",
                 "limit": "max_chars", "value": 10000}]}
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class Limits(BaseModel):
    """The server's limits per request; each is a flag of `nmt serve` (``--max-chars`` ...)."""

    model_config = ConfigDict(extra="forbid")

    max_chars: int = Field(10_000, ge=1)
    """Characters per text (a text is a paragraph or more: it is split into sentences)."""
    max_subwords: int = Field(2048, ge=1)
    """Subword tokens per text, all its sentences together. A sentence longer than the model
    takes is cut into pieces, each translated (nmt.text)."""
    max_texts: int = Field(64, ge=1)
    """Texts per request."""
    max_body_bytes: int = Field(1_000_000, ge=1)
    """Bytes of one request body."""
    max_beam_size: int = Field(16, ge=1)
    """Beam size a request may ask for (beam search's cost grows with it)."""


class ServeSettings(BaseModel):
    """How the server batches and what it accepts (flags of `nmt serve`; GET /v1/model shows
    them)."""

    model_config = ConfigDict(extra="forbid")

    batching: bool = True
    """Coalesce concurrent requests into one model call; False: one request per call."""
    max_wait_ms: float = Field(5.0, ge=0.0)
    """How long a lone request waits for others to share its batch."""
    batch_tokens: int | None = Field(None, ge=1)
    """Source tokens gathered into one model call; None: the model's decoding.max_tokens."""
    workers: int | None = Field(None, ge=1)
    """Model threads translating batches side by side; None: on a CPU one per core PyTorch
    would use (each then single-threaded), on a GPU one."""
    model_processes: bool = True
    """nmt's engine on a CPU, with several model threads: each searches in a process of its
    own (the weights shared; nmt.decoding.processes says why); False: all in the server's
    process (less memory)."""
    fill_wait: float = Field(0.3, ge=0.0, le=1.0)
    """With several model threads: how long (a fraction of its last batch's time) a thread
    waits for its share of the clients before translating fewer."""
    api_keys: list[str] = Field(default_factory=list)
    """Keys LibreTranslate's routes accept in ``api_key``; empty: every request, with a key
    or without (the key is then ignored)."""
    limits: Limits = Limits()


class LimitExceeded(HTTPException):
    """A request beyond one of the server's :class:`Limits`.

    An HTTPException, so that FastAPI passes it through unchanged when it is raised while the
    body is read (it turns any other exception there into a 400).
    """

    def __init__(
        self, *, limit: str, value: int, msg: str, loc: tuple[str | int, ...], status_code: int
    ) -> None:
        super().__init__(status_code=status_code, detail=msg)
        self.limit, self.value, self.msg, self.loc = limit, value, msg, loc

    def body(self) -> dict[str, Any]:
        return {
            "detail": [
                {
                    "type": "limit_exceeded",
                    "loc": list(self.loc),
                    "msg": self.msg,
                    "limit": self.limit,
                    "value": self.value,
                }
            ]
        }

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status_code)


def too_large(limit: str, value: int, *, what: str, loc: tuple[str | int, ...]) -> LimitExceeded:
    """A 413 for a request over ``limit`` (whose setting is ``value``); ``what``: where, and
    how much there is."""
    return LimitExceeded(
        limit=limit, value=value, msg=f"{what}; the limit is {value:,}", loc=loc, status_code=413
    )


def body_too_large(max_bytes: int, size: str) -> LimitExceeded:
    return too_large(
        "max_body_bytes", max_bytes, what=f"the request body has {size} bytes", loc=("body",)
    )


def check_sizes(texts: list[str], limits: Limits, *, field: str = "texts") -> None:
    """Texts per request and characters per text (subwords need the tokenizer: see
    :func:`check_subwords`); ``field``: the request's name for the texts."""
    if len(texts) > limits.max_texts:
        what = f"{field}: the request has {len(texts):,} texts"
        raise too_large("max_texts", limits.max_texts, what=what, loc=("body", field))
    for i, text in enumerate(texts):
        if len(text) > limits.max_chars:
            what = f"{field}[{i}]: {len(text):,} characters"
            raise too_large("max_chars", limits.max_chars, what=what, loc=("body", field, i))


def check_subwords(lengths: list[int], limits: Limits, *, field: str = "texts") -> None:
    """Subword tokens per text, given each text's length in subwords."""
    for i, length in enumerate(lengths):
        if length > limits.max_subwords:
            what = f"{field}[{i}]: {length:,} subwords"
            raise too_large("max_subwords", limits.max_subwords, what=what, loc=("body", field, i))


def check_beam_size(beam_size: int, limits: Limits) -> None:
    if beam_size > limits.max_beam_size:
        raise LimitExceeded(
            limit="max_beam_size",
            value=limits.max_beam_size,
            msg=f"beam size {beam_size} is more than this server allows ({limits.max_beam_size})",
            loc=("body", "beam_size"),
            status_code=422,
        )


class BodySizeLimit:
    """ASGI middleware: refuse a request body over ``max_bytes`` before it is all read.

    A declared Content-Length over the limit is answered at once; a chunked body is counted as
    it arrives and refused when it passes the limit.
    """

    def __init__(
        self, app: ASGIApp, max_bytes: int, plain_error_paths: frozenset[str] = frozenset()
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.plain_error_paths = plain_error_paths  # answered {"error": msg} (LibreTranslate's)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            error = body_too_large(self.max_bytes, f"{int(declared):,}")
            if scope["path"] in self.plain_error_paths:
                response = JSONResponse({"error": error.msg}, status_code=error.status_code)
            else:
                response = error.response()
            await response(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise body_too_large(self.max_bytes, f"more than {self.max_bytes:,}")
            return message

        await self.app(scope, counting_receive, send)
