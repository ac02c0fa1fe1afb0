"""Texts as people send them, through the worker: split into sentences, translated, put back.

Every route that translates (nmt's API, LibreTranslate's, the page) goes through
:class:`TextTranslator`: nmt.text finds each text's sentences (and, for HTML, takes its tags
out), all sentences of a request go to the worker as one job, and each text is put back
together from its sentences' best translations. A request's limits are checked on the way:
characters and texts as they come, subwords once the sentences are known.
"""

from __future__ import annotations

import asyncio
import copy
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, cast

from starlette.exceptions import HTTPException
from starlette.requests import Request

from nmt.config import DecodingConfig
from nmt.data.tokenizer import Tokenizer
from nmt.decoding.search import Observer
from nmt.decoding.translator import Translation, Translator
from nmt.errors import NmtError
from nmt.serve.limits import Limits, check_sizes, check_subwords
from nmt.serve.worker import BatchingWorker, NbestTranslator, Result, ShuttingDown
from nmt.text import Format, Prepared, prepare
from nmt.text.translate import fits_model


class InvalidField(Exception):
    """A request field nmt cannot use (malformed HTML, say): a 4xx naming the field."""

    def __init__(self, loc: tuple[str | int, ...], msg: str, *, status_code: int = 422) -> None:
        super().__init__(msg)
        self.loc, self.msg, self.status_code = loc, msg, status_code


@dataclass
class TranslatedText:
    """One text: its translation put back together, and what each of its sentences gave."""

    text: str
    sentences: list[str]  # what the model translated (a sentence too long for it: in pieces)
    nbests: list[list[Translation]]  # per sentence, its n-best list
    prepared: Prepared

    def alternatives(self) -> list[str]:
        """The text put together from each sentence's second best, third best ... (a sentence
        with fewer keeps its last), without repeats: LibreTranslate's ``alternatives``."""
        most = max((len(nbest) for nbest in self.nbests), default=1)
        found: list[str] = []
        for k in range(1, most):
            text = self.prepared.restore([nbest[min(k, len(nbest) - 1)] for nbest in self.nbests])
            if text != self.text and text not in found:
                found.append(text)
        return found


class TextTranslator:
    """Prepares texts for the model, submits their sentences, restores the translations."""

    def __init__(
        self,
        worker: BatchingWorker,
        translator: NbestTranslator,
        *,
        tokenizer: Tokenizer,
        language: str,
        limits: Limits,
    ) -> None:
        self.worker, self.tokenizer, self.language, self.limits = (
            worker,
            tokenizer,
            language,
            limits,
        )
        # A sentence longer than the model's positions is cut (nmt.text), never truncated.
        self.fits = fits_model(cast(Translator, translator))

    def with_limits(self, limits: Limits) -> TextTranslator:
        """The same, under other limits (a file upload's)."""
        other = copy.copy(self)
        other.limits = limits
        return other

    def prepare(self, texts: list[str], *, format: Format, field: str) -> list[Prepared]:
        """Each text's sentences; ``field`` is the request's name for ``texts`` in errors."""
        check_sizes(texts, self.limits, field=field)
        prepared = []
        for i, text in enumerate(texts):
            try:
                prepared.append(
                    prepare(
                        text,
                        format=format,
                        language=self.language,
                        fits=self.fits,
                        name=f"{field}[{i}]",
                    )
                )
            except NmtError as exc:
                raise InvalidField(("body", field, i), str(exc)) from None
        return prepared

    def submit(
        self,
        prepared: list[Prepared],
        options: DecodingConfig,
        *,
        field: str,
        attention: bool = False,
        alignment: bool = False,
        observer: Observer | None = None,
    ) -> Future[Result] | None:
        """Queue every sentence of ``prepared`` as one job (None: there is no sentence).

        A target prefix starts each text's first sentence only: it is how a reader continues
        a translation they began, not a word every sentence must open with.
        """
        sentences = [s for p in prepared for s in p.sentences]
        if not sentences:
            return None
        nonblank = [s for s in sentences if s.strip()]
        lengths = iter([len(ids) for ids in self.tokenizer.encode_batch(nonblank)])
        per_text, num_tokens = [], 0
        for p in prepared:
            subwords = sum(next(lengths) for s in p.sentences if s.strip())
            per_text.append(subwords)
            num_tokens += subwords + len(p.sentences)  # + an EOS each
        check_subwords(per_text, self.limits, field=field)
        prefixes: list[str | None] | None = None
        if options.prefix is not None:
            prefixes = [
                options.prefix if j == 0 else "" for p in prepared for j in range(len(p.sentences))
            ]
            options = options.model_copy(update={"prefix": None})
        return self.worker.submit(
            sentences,
            options,
            attention=attention or any(p.needs_attention for p in prepared),
            alignment=alignment,
            prefixes=prefixes,
            observer=observer,
            num_tokens=num_tokens,
        )

    async def translate(
        self,
        prepared: list[Prepared],
        options: DecodingConfig,
        request: Request,
        *,
        field: str,
        attention: bool = False,
        alignment: bool = False,
        observer: Observer | None = None,
    ) -> list[TranslatedText]:
        """Every sentence of ``prepared`` translated, and each text put back together.

        Errors: ShuttingDown as 503; a decoding option the model cannot honour (NmtError,
        e.g. a prefix longer than the length limit) as InvalidField naming the option; any
        other failure as 500; a client gone as 499 (no one reads it).
        """
        try:
            future = self.submit(
                prepared,
                options,
                field=field,
                attention=attention,
                alignment=alignment,
                observer=observer,
            )
        except ShuttingDown as exc:
            raise HTTPException(503, str(exc)) from None
        try:
            results = await answer_unless_hung_up(future, request) if future else []
        except ClientGone:
            raise HTTPException(CLIENT_GONE, "the client hung up") from None
        except NmtError as exc:
            option = str(exc).split(":", 1)[0]
            named = option in DecodingConfig.model_fields
            raise InvalidField(("body", option) if named else ("body",), str(exc)) from None
        except Exception as exc:  # logged by the worker; the server goes on
            raise HTTPException(500, f"translation failed: {type(exc).__name__}: {exc}") from None
        return self.restore(prepared, results)

    @staticmethod
    def restore(prepared: list[Prepared], results: Result) -> list[TranslatedText]:
        """Each text put back together from its sentences' best translations."""
        out, start = [], 0
        for p in prepared:
            nbests = results[start : start + len(p.sentences)]
            start += len(p.sentences)
            text = p.restore([nbest[0] for nbest in nbests])
            out.append(TranslatedText(text, list(p.sentences), nbests, p))
        assert start == len(results), (start, len(results))
        return out


class ClientGone(Exception):
    """The client closed its connection before its answer was ready."""


CLIENT_GONE = 499  # nginx's "client closed request": logged, never seen by the client


async def answer_unless_hung_up(future: Future[Result], request: Request) -> Result:
    """The worker's answer to ``request``; if its client hangs up first, the job is cancelled
    (the worker skips it if its batch has not begun) and ClientGone is raised.

    uvicorn does not cancel a handler whose client left: it only answers the next ``receive()``
    with ``http.disconnect``. Once the body is read, that call waits for exactly this.
    """
    answer = asyncio.wrap_future(future)
    hung_up = asyncio.ensure_future(_disconnect(request))
    either: set[asyncio.Future[Any]] = {answer, hung_up}
    try:
        await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
    finally:
        hung_up.cancel()
    if not answer.done():
        answer.cancel()  # wrap_future passes the cancellation on to the worker's future
        raise ClientGone
    return answer.result()


async def _disconnect(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass
