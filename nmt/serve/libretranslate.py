"""LibreTranslate's API on `nmt serve`, for the apps that already speak it.

Routes (LibreTranslate's names and shapes): ``POST /translate``, ``GET|POST /languages``,
``POST /detect``, ``POST /translate_file`` with ``GET /download_file/{name}``, and
``GET /frontend/settings``. Bodies may be JSON, form-encoded or multipart (as LibreTranslate's
Flask app reads them); errors are LibreTranslate's ``{"error": "..."}`` with 400 (a bad
request), 403 (a wrong key), 413 (too large), 500 or 503. nmt's own API stays at ``/v1/``: its
paths never clash with these.

What a model can do decides the answers: ``/languages`` lists its source language with its
one target (and the target, with none); ``source`` may be ``auto`` (identified with
py3langid, then it must be the model's source language); ``alternatives`` are the text put
together from each sentence's next-best translations. docs/serve.md lists what is not supported.
"""

from __future__ import annotations

import asyncio
import email.parser
import email.policy
import json
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cache
from pathlib import PurePath
from typing import Any
from urllib.parse import parse_qs

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from starlette.exceptions import HTTPException

from nmt.config import DecodingConfig
from nmt.serve.limits import LimitExceeded, ServeSettings, check_beam_size
from nmt.serve.schema import ModelInfo
from nmt.serve.texts import InvalidField, TextTranslator
from nmt.text import Format

ROUTES = frozenset({"/translate", "/languages", "/detect", "/translate_file", "/frontend/settings"})
FILE_FORMATS: dict[str, Format] = {".txt": "text", ".html": "html", ".htm": "html"}
FILES_KEPT = 64  # translated files held for download, the oldest dropped first
DETECTIONS_SHOWN = 3  # /detect's candidates, most confident first


class LibreError(Exception):
    """A request LibreTranslate would refuse: answered ``{"error": message}``."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code, self.message = status_code, message


@dataclass
class Upload:
    filename: str
    content: bytes


@cache
def language_identifier() -> Any:
    """py3langid's identifier with normalised probabilities (loaded once: ~1 s)."""
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def detect(text: str) -> list[dict[str, Any]]:
    """LibreTranslate's detections: ``[{"confidence": 0-100, "language": code}]``, best first."""
    ranked = language_identifier().rank(text)[:DETECTIONS_SHOWN]
    return [{"confidence": round(100 * float(p), 1), "language": lang} for lang, p in ranked]


def language_name(code: str) -> str:
    """The language's English name (babel's CLDR data where installed, else the code)."""
    try:
        from babel import Locale

        return str(Locale.parse(code).english_name)
    except Exception:  # babel missing, or a code CLDR does not know
        return code


def add_libretranslate_routes(
    app: FastAPI,
    *,
    texts: TextTranslator,
    info: ModelInfo,
    settings: ServeSettings,
) -> None:
    """LibreTranslate's routes on ``app``, translating through ``texts``."""
    src, tgt = info.src_lang, info.tgt_lang
    defaults = info.decoding
    files: OrderedDict[str, tuple[bytes, str]] = OrderedDict()  # name -> (content, media type)
    file_texts = texts.with_limits(
        settings.limits.model_copy(
            update={
                "max_chars": settings.limits.max_body_bytes,
                "max_subwords": settings.limits.max_body_bytes,
            }
        )
    )

    def languages_of(code: str) -> None:
        if code not in (src, "auto"):
            raise LibreError(400, f"{code} is not supported")

    def check_key(fields: dict[str, Any]) -> None:
        if settings.api_keys and fields.get("api_key") not in settings.api_keys:
            raise LibreError(403, "Invalid API key")

    def required(fields: dict[str, Any], name: str) -> str:
        value = fields.get(name)
        if value in (None, "", []):
            raise LibreError(400, f"Invalid request: missing {name} parameter")
        if not isinstance(value, str):
            raise LibreError(400, f"Invalid request: {name} must be a string")
        return value

    async def source_and_target(
        fields: dict[str, Any], samples: list[str]
    ) -> list[dict[str, Any]] | None:
        """Checks ``source`` and ``target``; with ``source`` "auto", each sample's detection."""
        source, target = required(fields, "source"), required(fields, "target")
        languages_of(source)
        if target != tgt:
            raise LibreError(400, f"{target} is not supported")
        if source != "auto":
            return None
        detected = [(await asyncio.to_thread(detect, sample))[0] for sample in samples]
        for found in detected:
            if found["language"] != src:
                raise LibreError(400, f"{found['language']} is not supported")
        return detected

    @app.post("/translate", tags=["LibreTranslate"])
    async def translate(request: Request) -> Response:
        """LibreTranslate's translate: ``q`` (a string or a list), ``source`` (or "auto"),
        ``target``, ``format`` (text or html), ``alternatives``, ``api_key``."""

        async def answer() -> dict[str, Any]:
            fields = await read_fields(request)
            check_key(fields)
            q = fields.get("q")
            if q in (None, "", []):
                raise LibreError(400, "Invalid request: missing q parameter")
            batch = isinstance(q, list)
            sources = q if batch else [q]
            if not all(isinstance(text, str) for text in sources):
                raise LibreError(400, "Invalid request: q must be a string or a list of strings")
            detected = await source_and_target(fields, sources)
            format: Format = fields.get("format") or "text"
            if format not in ("text", "html"):
                raise LibreError(400, f"{format} format is not supported")
            alternatives = fields.get("alternatives") or 0
            try:
                alternatives = int(alternatives)
                if alternatives < 0:
                    raise ValueError
            except (TypeError, ValueError):
                raise LibreError(
                    400, "Invalid request: alternatives parameter is not a number"
                ) from None
            options = defaults
            if alternatives:
                nbest = alternatives + 1
                beam_size = max(defaults.beam_size, nbest)
                check_beam_size(beam_size, settings.limits)
                options = DecodingConfig.model_validate(
                    {**defaults.model_dump(), "nbest": nbest, "beam_size": beam_size}
                )
            prepared = texts.prepare(sources, format=format, field="q")
            translated = await texts.translate(prepared, options, request, field="q")
            body: dict[str, Any] = {
                "translatedText": [t.text for t in translated] if batch else translated[0].text
            }
            if alternatives:
                found = [t.alternatives()[:alternatives] for t in translated]
                body["alternatives"] = found if batch else found[0]
            if detected is not None:
                body["detectedLanguage"] = detected if batch else detected[0]
            return body

        return await answered(answer)

    async def languages() -> list[dict[str, Any]]:
        """The model's languages: its source, with its target; its target, with none."""
        return [
            {"code": src, "name": language_name(src), "targets": [tgt]},
            {"code": tgt, "name": language_name(tgt), "targets": []},
        ]

    # Both methods, as LibreTranslate (libretranslatepy sends a GET with a form body).
    app.get("/languages", tags=["LibreTranslate"])(languages)
    app.post("/languages", tags=["LibreTranslate"], operation_id="languages_post")(languages)

    @app.post("/detect", tags=["LibreTranslate"])
    async def detect_language(request: Request) -> Response:
        """LibreTranslate's detect: ``q``; the likeliest languages with confidences (0-100)."""

        async def answer() -> list[dict[str, Any]]:
            fields = await read_fields(request)
            check_key(fields)
            q = required(fields, "q")
            return await asyncio.to_thread(detect, q)

        return await answered(answer)

    @app.post("/translate_file", tags=["LibreTranslate"])
    async def translate_file(request: Request) -> Response:
        """LibreTranslate's translate_file: a multipart ``file`` (.txt or .html) with ``source``
        and ``target``; answers ``translatedFileUrl``, served at /download_file/."""

        async def answer() -> dict[str, Any]:
            fields = await read_fields(request)
            check_key(fields)
            upload = fields.get("file")
            if not isinstance(upload, Upload):
                raise LibreError(400, "Invalid request: missing file parameter")
            format = FILE_FORMATS.get(PurePath(upload.filename).suffix.lower())
            if format is None:
                raise LibreError(400, "Invalid request: file format not supported")
            try:
                text = upload.content.decode("utf-8")
            except UnicodeDecodeError as exc:
                msg = f"Invalid request: {upload.filename} is not UTF-8 text (byte {exc.start})"
                raise LibreError(400, msg) from None
            await source_and_target(fields, [text])
            prepared = file_texts.prepare([text], format=format, field="file")
            (translated,) = await file_texts.translate(prepared, defaults, request, field="file")
            name = f"{uuid.uuid4().hex}.{PurePath(upload.filename).name}"
            media = "text/html" if format == "html" else "text/plain"
            files[name] = (translated.text.encode("utf-8"), f"{media}; charset=utf-8")
            while len(files) > FILES_KEPT:
                files.popitem(last=False)
            return {"translatedFileUrl": f"{request.base_url}download_file/{name}"}

        return await answered(answer)

    @app.get("/download_file/{name}", tags=["LibreTranslate"])
    async def download_file(name: str) -> Response:
        if name not in files:
            status = 400 if "/" in name or name.startswith(".") else 404
            return JSONResponse({"error": "Invalid filename"}, status_code=status)
        content, media = files[name]
        return Response(content, media_type=media)

    @app.get("/frontend/settings", tags=["LibreTranslate"])
    async def frontend_settings() -> dict[str, Any]:
        """What LibreTranslate's web frontend asks a server for."""
        return {
            "charLimit": settings.limits.max_chars,
            "frontendTimeout": 500,
            "apiKeys": bool(settings.api_keys),
            "keyRequired": bool(settings.api_keys),
            "suggestions": False,
            "filesTranslation": True,
            "supportedFilesFormat": sorted(FILE_FORMATS),
            "language": {
                "source": {"code": src, "name": language_name(src)},
                "target": {"code": tgt, "name": language_name(tgt)},
            },
        }


async def answered(handler: Callable[[], Awaitable[Any]]) -> Response:
    """The handler's JSON, or any error in LibreTranslate's shape: ``{"error": message}``."""
    try:
        return JSONResponse(await handler())
    except LibreError as exc:
        return JSONResponse({"error": exc.message}, status_code=exc.status_code)
    except LimitExceeded as exc:
        return JSONResponse({"error": exc.msg}, status_code=exc.status_code)
    except InvalidField as exc:
        return JSONResponse({"error": exc.msg}, status_code=400)
    except (RequestValidationError, ValidationError) as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"] if part != "body")
        msg = f"Invalid request: {where}: {first['msg']}" if where else first["msg"]
        return JSONResponse({"error": msg}, status_code=400)
    except HTTPException as exc:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code)


async def read_fields(request: Request) -> dict[str, Any]:
    """A request's parameters as LibreTranslate's Flask app reads them: the query string, then
    the body (JSON, form-encoded or multipart; files as :class:`Upload`)."""
    fields: dict[str, Any] = dict(request.query_params)
    body = await request.body()
    if not body:
        return fields
    content_type = request.headers.get("content-type", "")
    kind = content_type.split(";")[0].strip().lower()
    if kind == "application/json":
        try:
            data = json.loads(body)
        except ValueError:
            raise LibreError(400, "Invalid JSON format") from None
        if not isinstance(data, dict):
            raise LibreError(400, "Invalid JSON format")
        fields.update(data)
    elif kind == "multipart/form-data":
        fields.update(multipart_fields(body, content_type))
    else:  # form-encoded, or a client that said nothing (curl -d)
        try:
            form = parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError:
            raise LibreError(400, "Invalid request: the body is not UTF-8") from None
        fields.update({name: values[0] for name, values in form.items()})  # as Flask: the first
    return fields


def multipart_fields(body: bytes, content_type: str) -> dict[str, str | Upload]:
    """A multipart/form-data body's fields, parsed by the standard library's email package."""
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if not message.is_multipart():
        raise LibreError(400, "Invalid request: malformed multipart body")
    fields: dict[str, str | Upload] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        content = part.get_payload(decode=True)
        content = content if isinstance(content, bytes) else b""
        filename = part.get_filename()
        if filename is not None:
            fields[name] = Upload(filename, content)
        else:
            fields[name] = content.decode(part.get_content_charset() or "utf-8", "replace")
    return fields
