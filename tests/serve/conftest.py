"""A real `nmt serve` process on 127.0.0.1 for the tests that meet the server as users do."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from nmt.decoding.translator import Translator
from tests.serve.app_client import client_for

START_TIMEOUT = 120.0  # seconds: loading torch and the model on a busy 2-core machine


@dataclass
class Server:
    process: subprocess.Popen[str]
    url: str
    log: Path

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(model_dir: Path, log: Path, *extra: str, own_group: bool = False) -> Server:
    """`python -m nmt.cli serve MODEL_DIR` on a free loopback port, once it answers /health;
    ``own_group``: in a process group of its own, as a terminal's foreground job is (a signal
    to the group then reaches the server's children too, and not the tests)."""
    port = free_port()
    command = [sys.executable, "-m", "nmt.cli", "serve", str(model_dir), "--port", str(port)]
    with log.open("w", encoding="utf-8") as out:
        process = subprocess.Popen(
            [*command, *extra],
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=own_group,
        )
    server = Server(process, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"nmt serve exited with {process.returncode}:\n{server.output()}")
        try:
            if httpx.get(f"{server.url}/health", timeout=2.0).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    stop_server(server)
    pytest.fail(f"nmt serve did not answer within {START_TIMEOUT:.0f} s:\n{server.output()}")


def stop_server(server: Server) -> int:
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(30)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()
    return server.process.returncode


@pytest.fixture(scope="session")
def server(trained_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One `nmt serve` of the trained test model for the session's process and page tests."""
    started = start_server(trained_model_dir, tmp_path_factory.mktemp("serve") / "server.log")
    yield started
    stop_server(started)


def cli_translate(model_dir: Path, lines: list[str], *flags: str) -> list[str]:
    """What `nmt translate MODEL_DIR` writes for ``lines`` (the reference the server must match)."""
    result = subprocess.run(
        [sys.executable, "-m", "nmt.cli", "translate", str(model_dir), *flags],
        input="".join(line + "\n" for line in lines),
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
    )
    return result.stdout.splitlines()


@pytest.fixture(scope="module")
def translator(trained_model_dir: Path) -> Translator:
    """The trained test model, loaded once per module (a module may define its own)."""
    return Translator.load(trained_model_dir)


@pytest.fixture(scope="module")
def client(translator: Translator, trained_model_dir: Path) -> Iterator[TestClient]:
    """The app over ``translator``; entering it runs the lifespan: the worker thread."""
    with client_for(translator, trained_model_dir) as client:
        yield client
