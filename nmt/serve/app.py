"""The HTTP service: FastAPI routes over one batching worker, run by uvicorn.

Routes: ``POST /v1/translate``, ``GET /health``, ``GET /v1/model``, the attention page at ``/``,
OpenAPI at ``/docs`` and ``/openapi.json``, and LibreTranslate's API (libretranslate.py). The
event loop parses, checks limits (counting subwords with the tokenizer, which is quick) and
awaits the worker; it never runs the model. Texts are split into sentences and put back
together around the worker (texts.py).

Shutdown (SIGTERM or Ctrl-C): uvicorn stops accepting connections and waits for the requests in
flight; then the lifespan's exit stops the worker, which first translates everything queued.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi_offline import FastAPIOffline
from pydantic import ValidationError
from safetensors import safe_open

from nmt.config import DecodingConfig, load_config
from nmt.data.tokenizer import Tokenizer, load_tokenizer
from nmt.decoding.alignment import pharaoh, word_alignment_of
from nmt.decoding.processes import runs_apart
from nmt.decoding.trace import BeamTrace
from nmt.decoding.translator import Translation, Translator
from nmt.device import check_device
from nmt.errors import NmtError
from nmt.serve.libretranslate import ROUTES as LIBRETRANSLATE_ROUTES
from nmt.serve.libretranslate import add_libretranslate_routes
from nmt.serve.limits import (
    BodySizeLimit,
    LimitExceeded,
    ServeSettings,
    check_beam_size,
)
from nmt.serve.schema import (
    AttentionMap,
    Health,
    Hypothesis,
    ModelInfo,
    SentenceResult,
    TokenScore,
    TraceStep,
    TraceTerms,
    TranslateRequest,
    TranslateResponse,
    TranslationResult,
)
from nmt.serve.texts import InvalidField, TextTranslator, TranslatedText
from nmt.serve.worker import BatchingWorker, NbestTranslator, model_threads

log = logging.getLogger(__name__)

EOS_PIECE = "</s>"  # how the page and the attention maps label the end of a sentence
WEIGHT_DECIMALS = 4  # attention weights in responses: enough to draw, a third of the bytes


def create_app(
    translator: NbestTranslator,
    *,
    tokenizer: Tokenizer,
    info: ModelInfo,
    settings: ServeSettings | None = None,
    threads: int | None = None,
) -> FastAPI:
    """The FastAPI app for ``translator``; its model threads run while the app's lifespan does,
    each on ``threads`` CPU threads (None: this thread's setting)."""
    settings = settings or ServeSettings()
    workers = settings.workers or 1  # serve() decides by the device; an app alone gets one
    settings = settings.model_copy(update={"workers": workers})
    limits = settings.limits
    info = info.model_copy(update={"server": settings})
    defaults = info.decoding
    worker = BatchingWorker(
        translator,
        batching=settings.batching,
        max_wait=settings.max_wait_ms / 1000,
        batch_tokens=settings.batch_tokens or defaults.max_tokens,
        workers=workers,
        fill_wait=settings.fill_wait,
        processes=settings.model_processes and runs_apart(translator, workers),
        cpu_threads=threads,
    )
    texts = TextTranslator(
        worker, translator, tokenizer=tokenizer, language=info.src_lang, limits=limits
    )
    page = resources.files("nmt.serve").joinpath("page", "index.html").read_text("utf-8")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(worker.start)  # model processes take seconds to start
        yield
        await asyncio.to_thread(worker.stop)  # translates what is queued, then ends

    # FastAPIOffline: FastAPI whose /docs and /redoc pages load their scripts from this server
    # (the page at / must work offline, and so must the API's documentation).
    app = FastAPIOffline(
        title="nmt",
        summary=f"Translate {info.src_lang} → {info.tgt_lang} with the model in {info.model_dir}",
        lifespan=lifespan,
    )
    app.state.worker = worker
    app.add_middleware(
        BodySizeLimit, max_bytes=limits.max_body_bytes, plain_error_paths=LIBRETRANSLATE_ROUTES
    )

    @app.exception_handler(LimitExceeded)
    async def limit_exceeded(request: Request, exc: LimitExceeded) -> JSONResponse:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's shape without "input": a client's own (maybe huge) body is not echoed back.
        errors = [{k: e[k] for k in ("type", "loc", "msg")} for e in exc.errors()]
        return JSONResponse({"detail": errors}, status_code=422)

    @app.exception_handler(InvalidField)
    async def invalid_field(request: Request, exc: InvalidField) -> JSONResponse:
        detail = [{"type": "value_error", "loc": list(exc.loc), "msg": exc.msg}]
        return JSONResponse({"detail": detail}, status_code=exc.status_code)

    @app.post("/v1/translate", response_model_exclude_none=True)
    async def translate(request: TranslateRequest, http: Request) -> TranslateResponse:
        """Translate ``texts`` (each split into sentences) with the given decoding options
        (the rest: the model's)."""
        for wanted in ("attention", "trace"):
            if getattr(request, wanted) and info.engine != "nmt":
                msg = (
                    f"{wanted}: the {info.engine} engine has none to give; serve with --engine nmt"
                )
                raise InvalidField(("body", wanted), msg)
        prepared = texts.prepare(request.texts, format=request.format, field="texts")
        options = merged_options(defaults, request.given_options())
        if not options.sampling:
            check_beam_size(options.beam_size, limits)
        trace = BeamTrace() if request.trace else None
        translated = await texts.translate(
            prepared,
            options,
            http,
            field="texts",
            attention=request.attention,
            alignment=request.alignments,
            observer=trace,
        )
        shown = Shown(request.attention, request.scores, request.alignments, trace)
        if trace is not None:
            shown.pieces = tokenizer.pieces()
        results, first = [], 0
        for text in translated:
            results.append(shown.text_result(text, first_sentence=first))
            first += len(text.sentences)
        return TranslateResponse(translations=results)

    @app.get("/health")
    async def health() -> Health:
        return Health(
            status="stopping" if worker.stopping else "ok",
            in_flight=worker.stats.in_flight,
            queued=worker.queued,
            requests=worker.stats.requests,
            batches=worker.stats.batches,
            skipped=worker.stats.skipped,
            cut_short=worker.stats.cut_short,
        )

    @app.get("/v1/model")
    async def model() -> ModelInfo:
        return info

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> str:
        return page

    add_libretranslate_routes(app, texts=texts, info=info, settings=settings)
    return app


def merged_options(defaults: DecodingConfig, given: dict[str, Any]) -> DecodingConfig:
    """The server's defaults with a request's options, validated together by DecodingConfig
    (so nbest > beam_size fails although each value alone is in range). The merge is the
    command line's (DecodingConfig.merged): an explicit null takes the default's value away."""
    from nmt.config import UNSET

    changes = {name: UNSET if value is None else value for name, value in given.items()}
    try:
        return DecodingConfig.model_validate(defaults.merged(changes))
    except ValidationError as exc:
        raise RequestValidationError(
            [{"type": e["type"], "loc": ("body", *e["loc"]), "msg": e["msg"]} for e in exc.errors()]
        ) from None


@dataclass
class Shown:
    """What a response shows besides the text: attention, token scores, alignments, a trace."""

    attention: bool
    scores: bool
    alignments: bool
    trace: BeamTrace | None
    pieces: list[str] = field(default_factory=list)  # the vocabulary, to name traced tokens

    def text_result(self, text: TranslatedText, *, first_sentence: int) -> TranslationResult:
        """``first_sentence``: the index of the text's first sentence in its job."""
        sentences = [
            self.sentence_result(source, nbest, first_sentence + i)
            for i, (source, nbest) in enumerate(zip(text.sentences, text.nbests, strict=True))
        ]
        return TranslationResult(
            text=text.text,
            score=sum(s.score for s in sentences),
            truncated=any(s.truncated for s in sentences),
            sentences=sentences,
        )

    def sentence_result(self, source: str, nbest: list[Translation], index: int) -> SentenceResult:
        best = nbest[0]
        return SentenceResult(
            source=source,
            text=best.text,
            score=best.score,
            truncated=best.truncated,
            hypotheses=[self.hypothesis(t) for t in nbest],
            trace=self.trace_of(index) if self.trace is not None else None,
        )

    def hypothesis(self, t: Translation) -> Hypothesis:
        return Hypothesis(
            text=t.text,
            score=t.score,
            attention=attention_map(t) if self.attention else None,
            tokens=token_scores(t) if self.scores else None,
            alignment=(pharaoh(word_alignment_of(t)) if t.tokens else "")
            if self.alignments
            else None,
        )

    def trace_of(self, index: int) -> list[TraceStep]:
        assert self.trace is not None
        steps = self.trace.steps.get(index, [])

        def named(entries: list[tuple[int, int, float]]) -> list[tuple[int, str, float]]:
            return [(parent, self.pieces[token], log_prob) for parent, token, log_prob in entries]

        return [
            TraceStep(
                kept=named(s.kept),
                ended=named(s.ended),
                pruned=named(s.pruned),
                terms=None if s.terms is None else TraceTerms(**s.terms),
            )
            for s in steps
        ]


def token_scores(t: Translation) -> list[TokenScore]:
    """Each output piece (and the EOS, if the output has one) with its probability."""
    pieces = [*t.tgt_pieces, EOS_PIECE][: len(t.token_log_probs)]
    return [
        TokenScore(piece=piece, prob=round(math.exp(log_prob), WEIGHT_DECIMALS))
        for piece, log_prob in zip(pieces, t.token_log_probs, strict=True)
    ]


def attention_map(translation: Translation) -> AttentionMap | str:
    """The translation's attention as JSON lists, its pieces labelled; "none" without one. The
    EOS row is there only if the output ended (not at the length limit)."""
    if translation.attention is None:
        return "none"
    src_pieces = [*translation.src_pieces, EOS_PIECE]
    tgt_pieces = [*translation.tgt_pieces, *[EOS_PIECE] * translation.ended]
    weights = translation.attention
    assert weights.shape[-2:] == (len(tgt_pieces), len(src_pieces)), weights.shape
    return AttentionMap(
        src_pieces=src_pieces,
        tgt_pieces=tgt_pieces,
        # float64 first: a rounded float32 prints as 0.037700001150369644.
        weights=weights.double().round(decimals=WEIGHT_DECIMALS).tolist(),
    )


# -- building the server from a model directory ----------------------------------------------


def model_info(*model_dirs: Path, engine: str, device: str) -> ModelInfo:
    """What GET /v1/model says of a model (or an ensemble), read from its directories' files."""
    from nmt.models.store import CONFIG_FILE, resolve_model_dir

    if not model_dirs:
        raise NmtError("no model directory given")
    resolved = [resolve_model_dir(Path(d)) for d in model_dirs]
    first = resolved[0]
    config = load_config(first / CONFIG_FILE)
    return ModelInfo(
        model_dir=str(first),
        members=[str(d) for d in resolved],
        engine=engine,
        device=device,
        architecture=config.model.model_dump(mode="json"),
        parameters=sum(_stored_parameters(d) for d in resolved),
        src_lang=config.data.src_lang,
        tgt_lang=config.data.tgt_lang,
        vocab_size=load_tokenizer(first).vocab_size,
        training_step=_training_step(first) if len(resolved) == 1 else None,
        decoding=config.decoding,
    )


def _stored_parameters(model_dir: Path) -> int:
    """Parameters in the weights file; tied matrices are stored once, so counted once."""
    from nmt.models.store import WEIGHTS_FILE

    parameters = 0
    with safe_open(str(model_dir / WEIGHTS_FILE), framework="pt") as f:
        for name in f.keys():  # noqa: SIM118 (a safetensors handle is not a dict)
            size = 1
            for dim in f.get_slice(name).get_shape():
                size *= dim
            parameters += size
    return parameters


def _training_step(model_dir: Path) -> int | None:
    """The step a checkpoint recorded (trainer.json); best/ and averaged models have none."""
    from nmt.models.store import TRAINER_FILE

    try:
        record = json.loads((model_dir / TRAINER_FILE).read_text(encoding="utf-8"))
        return int(record["trainer"]["step"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def serve(
    model_dirs: Sequence[Path],
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    engine: str = "nmt",
    device: str = "cpu",
    int8: bool = False,
    shortlist: bool = False,
    threads: int | None = None,
    settings: ServeSettings | None = None,
) -> None:
    """Load the model (several: their ensemble) and serve it until SIGTERM or Ctrl-C."""
    import uvicorn

    from nmt.models.store import resolve_model_dir

    settings = settings or ServeSettings()
    workers, threads = model_threads(device, workers=settings.workers, threads=threads)
    settings = settings.model_copy(update={"workers": workers})  # /v1/model shows the number
    resolved = [resolve_model_dir(Path(d)) for d in model_dirs]
    on_cpu = check_device(device).type == "cpu"
    if engine == "nmt" and on_cpu:
        # The model threads set their own intra-op threads. This thread keeps one: OpenMP
        # keeps a team of threads for each thread that starts parallel work, and once the
        # teams outnumber the cores it makes them sleep between operators, so a model thread's
        # two intra-op threads ran at a quarter of their speed (a LayerNorm 98 against 22 µs,
        # benchmarks/intra_op_threads.py) after this thread had loaded the model on two.
        torch.set_num_threads(1)
    # Translator.load checks that an ensemble's members share their tokenizer.
    translator = Translator.load(
        resolved,
        engine=engine,
        int8=int8,
        device=device,
        threads=None if engine == "nmt" and on_cpu else threads,
        parallel=workers,
        shortlist=shortlist,
    )
    info = model_info(*resolved, engine=engine, device=device)
    tokenizer = load_tokenizer(resolved[0])
    app = create_app(translator, tokenizer=tokenizer, info=info, settings=settings, threads=threads)
    log.info("%d model thread(s), %s CPU thread(s) each", workers, threads or "PyTorch's")
    what = " + ".join(str(d) for d in resolved)
    log.info("serving %s on http://%s:%d (the page at /, the API at /docs)", what, host, port)
    # log_config=None: keep the CLI's logging set-up; uvicorn's access log stays on.
    uvicorn.run(app, host=host, port=port, log_config=None, timeout_graceful_shutdown=None)
