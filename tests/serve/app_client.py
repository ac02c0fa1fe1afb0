"""The app in-process (FastAPI's TestClient, its worker thread running) over a given translator,
with small limits that the tests of every limit can reach."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from nmt.data.tokenizer import TOKENIZER_FILE, Tokenizer
from nmt.serve.app import create_app, model_info
from nmt.serve.limits import Limits, ServeSettings

LIMITS = Limits(max_chars=300, max_subwords=200, max_texts=5, max_body_bytes=4000, max_beam_size=6)


def client_for(translator: Any, model_dir: Path, **settings: Any) -> TestClient:
    app = create_app(
        translator,
        tokenizer=Tokenizer.load(model_dir / TOKENIZER_FILE),
        info=model_info(model_dir, engine="nmt", device="cpu"),
        settings=ServeSettings(limits=LIMITS, **settings),
    )
    return TestClient(app)
