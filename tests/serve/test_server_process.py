"""`nmt serve` as a real process on 127.0.0.1: concurrent clients get what the CLI gives, and
SIGTERM finishes the requests in flight before the process exits."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from nmt.cli import build_parser, main
from nmt.models.store import CONFIG_FILE
from tests.conftest import WORDS
from tests.serve.conftest import Server, cli_translate, start_server, stop_server


def toy_sentences(count: int, *, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 8))) for _ in range(count)]


def health(server: Server) -> dict[str, Any]:
    return httpx.get(f"{server.url}/health", timeout=10).json()  # type: ignore[no-any-return]


def test_concurrent_clients_get_what_the_cli_gives(server: Server, trained_model_dir: Path) -> None:
    lines = toy_sentences(24, seed=3)
    beam = cli_translate(trained_model_dir, lines)  # the model's own options: beam 4
    greedy = cli_translate(trained_model_dir, lines, "--beam-size", "1")
    before = health(server)

    def ask(job: tuple[int, str]) -> httpx.Response:
        i, line = job
        options = {"beam_size": 1} if i % 2 else {}  # two kinds of request at once
        return httpx.post(
            f"{server.url}/v1/translate", json={"texts": [line], **options}, timeout=120
        )

    with ThreadPoolExecutor(max_workers=12) as pool:
        responses = list(pool.map(ask, enumerate(lines)))
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
    got = [r.json()["translations"][0]["text"] for r in responses]
    assert got == [greedy[i] if i % 2 else beam[i] for i in range(len(lines))]
    assert any(got)  # the trained model translates: equality of empty strings would prove little
    after = health(server)
    assert after["requests"] - before["requests"] == len(lines)
    # Batched: fewer model calls than requests (the worker coalesced concurrent ones).
    assert after["batches"] - before["batches"] < len(lines)


def test_the_server_binds_to_loopback_by_default(server: Server) -> None:
    assert build_parser().parse_args(["serve", "some-model"]).host == "127.0.0.1"
    assert f"Uvicorn running on {server.url}" in server.output()


@pytest.mark.parametrize("ctrl_c", [False, True], ids=["SIGTERM", "Ctrl-C"])
def test_a_signal_finishes_the_requests_in_flight(
    trained_model_dir: Path, tmp_path: Path, ctrl_c: bool
) -> None:
    """SIGTERM to the server (a process manager), or SIGINT to its whole process group (Ctrl-C
    in a terminal, which reaches its model processes too): every request in flight is answered.
    Two workers, so that their searches run in model processes whatever the cores."""
    # Without batching each request is its own model call, so several stay queued for a while.
    server = start_server(
        trained_model_dir,
        tmp_path / "server.log",
        "--no-batching",
        "--workers",
        "2",
        own_group=ctrl_c,
    )
    texts = toy_sentences(40, seed=5)
    body = {"texts": texts, "beam_size": 8, "stopping": "exact"}
    try:
        with ThreadPoolExecutor(max_workers=6) as pool:
            futures = [
                pool.submit(httpx.post, f"{server.url}/v1/translate", json=body, timeout=300)
                for _ in range(6)
            ]
            deadline = time.monotonic() + 60
            while health(server)["in_flight"] < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            in_flight = health(server)["in_flight"]
            if ctrl_c:
                os.killpg(server.process.pid, signal.SIGINT)
            else:
                server.process.send_signal(signal.SIGTERM)
            responses = [future.result() for future in futures]
        returncode = server.process.wait(120)
    finally:
        stop_server(server)
    assert in_flight >= 2, "the requests ended before the signal: the test proved nothing"
    assert [r.status_code for r in responses] == [200] * 6, [r.text for r in responses]
    first = [t["text"] for t in responses[0].json()["translations"]]
    assert len(first) == len(texts)
    assert all([t["text"] for t in r.json()["translations"]] == first for r in responses)
    # uvicorn re-raises the signal once it has shut down, so the exit is "killed by SIGTERM"
    # (what process managers expect of a clean stop); the log shows the orderly shutdown.
    assert returncode in (0, -(signal.SIGINT if ctrl_c else signal.SIGTERM)), server.output()
    assert "Traceback" not in server.output()
    assert "Waiting for application shutdown" in server.output()
    assert "Finished server process" in server.output()


def test_bad_flags_and_models_are_one_clear_line(
    trained_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", str(tmp_path / "missing")]) == 1
    assert main(["serve", str(trained_model_dir), "--max-chars", "0"]) == 1
    assert main(["serve", str(trained_model_dir), "--threads", "0"]) == 1
    assert main(["serve", str(trained_model_dir), "--workers", "0"]) == 1
    pair = [str(trained_model_dir)] * 2
    assert main(["serve", *pair, "--engine", "ctranslate2"]) == 1
    errors = capsys.readouterr().err.splitlines()
    assert errors == [
        f"nmt: error: {tmp_path / 'missing'}: no such model directory",
        "nmt: error: serve: --max-chars: Input should be greater than or equal to 1",
        "nmt: error: serve: --threads: must be at least 1, not 0",
        "nmt: error: serve: --workers: Input should be greater than or equal to 1",
        "nmt: error: --engine ctranslate2 takes one model; ensembles: --engine nmt",
    ]


def test_a_client_that_hangs_up_is_not_translated(trained_model_dir: Path, tmp_path: Path) -> None:
    # One model thread: the hung-up request waits in the queue while a slow one is translated.
    server = start_server(trained_model_dir, tmp_path / "server.log", "--workers", "1")
    slow = {"texts": toy_sentences(64, seed=7), "beam_size": 16, "stopping": "exact"}
    body = json.dumps({"texts": ["the big dog sees a small red house"]}).encode()
    host, port = server.url.removeprefix("http://").split(":")
    raw_request = (
        f"POST /v1/translate HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    try:
        with ThreadPoolExecutor(max_workers=1) as pool:
            busy = pool.submit(httpx.post, f"{server.url}/v1/translate", json=slow, timeout=300)
            wait_for(lambda: health(server)["in_flight"] == 1 and health(server)["queued"] == 0)
            with socket.create_connection((host, int(port))) as client:
                client.sendall(raw_request)
                wait_for(lambda: health(server)["in_flight"] == 2)  # queued behind the slow one
            wait_for(lambda: health(server)["in_flight"] == 1)  # the hang-up cancelled it
            assert not busy.done(), "the slow request ended first: the test proved nothing"
            assert busy.result().status_code == 200
        wait_for(lambda: health(server)["skipped"] == 1)
        after = health(server)
    finally:
        stop_server(server)
    assert after["requests"] == 1  # the slow one only: the hung-up request was never translated
    assert "skipped 1 request(s) whose client hung up" in server.output()


def test_a_client_that_hangs_up_mid_call_stops_its_search(
    trained_model_dir: Path, tmp_path: Path
) -> None:
    # A token budget of one sentence: the request's 64 sentences are 64 batches, searched in
    # turn; its client hangs up once the first has begun.
    model_dir = tmp_path / "model"
    shutil.copytree(trained_model_dir, model_dir)
    config = yaml.safe_load((model_dir / CONFIG_FILE).read_text(encoding="utf-8"))
    config.setdefault("decoding", {})["max_tokens"] = 1
    (model_dir / CONFIG_FILE).write_text(yaml.safe_dump(config), encoding="utf-8")
    server = start_server(model_dir, tmp_path / "server.log", "--workers", "1")
    slow = {"texts": toy_sentences(64, seed=7), "beam_size": 16, "stopping": "exact"}
    body = json.dumps(slow).encode()
    host, port = server.url.removeprefix("http://").split(":")
    raw_request = (
        f"POST /v1/translate HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    try:
        with socket.create_connection((host, int(port))) as client:
            client.sendall(raw_request)
            # In flight and no longer queued: its call has begun.
            wait_for(lambda: health(server)["in_flight"] == 1 and health(server)["queued"] == 0)
        wait_for(lambda: health(server)["cut_short"] == 1)  # its call returned
        after = health(server)
    finally:
        stop_server(server)
    assert after["in_flight"] == 0 and after["skipped"] == 0 and after["requests"] == 0
    cut = r"stopped translating 1 request\(s\) whose client hung up \((\d+) sentences never"
    found = re.search(cut, server.output())
    assert found, server.output()
    # Each batch takes tens of milliseconds; the hang-up is seen within a few: most are left.
    assert int(found.group(1)) > 32


def wait_for(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_libretranslatepy_talks_to_nmt_serve(server: Server, trained_model_dir: Path) -> None:
    """The real client library of LibreTranslate's API, against the real server process."""
    from libretranslatepy import LibreTranslateAPI

    client = LibreTranslateAPI(server.url, api_key="ignored: this server has no keys")
    paragraph = "the cat sees the dog. a big red house."
    expected = cli_translate(trained_model_dir, ["the cat sees the dog.", "a big red house."])
    assert all(expected)
    assert client.translate(paragraph, source="en", target="de", timeout=60) == " ".join(expected)
    assert client.languages(timeout=10) == [
        {"code": "en", "name": "English", "targets": ["de"]},
        {"code": "de", "name": "German", "targets": []},
    ]
    detected = client.detect("This is a sentence written in English for testing", timeout=30)
    assert detected[0]["language"] == "en" and detected[0]["confidence"] > 50
