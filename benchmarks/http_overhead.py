"""What HTTP costs per request, with no model: the server's and the load clients' CPU.

Why it matters: on a small machine the event loop and the load test's own clients share the
cores with the model threads, so every millisecond of CPU they spend per request is taken from
translation (benchmarks/serve_load.py prints where the CPU goes). This script serves a trivial
FastAPI route shaped like ``POST /v1/translate`` (it echoes the texts) with uvicorn, on
127.0.0.1, and drives it with ``--clients`` closed-loop clients for ``--seconds``, measuring the
CPU seconds of the server process (/proc) and of the clients (this process) per request:

- servers: uvicorn's pure-Python HTTP parser and asyncio's loop (``h11``, ``asyncio``), against
  the compiled ones `nmt serve` now installs (``httptools``, ``uvloop``);
- clients: one httpx client whose pool holds all the connections (the load test before),
  one httpx client per simulated user, and one httpcore connection pool (httpx's transport,
  without httpx's request and response objects) of one connection per user (the load test
  now), each on asyncio and on uvloop.

Each figure is the median of ``--repeats`` runs.

    .venv/bin/python benchmarks/http_overhead.py
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

import httpcore
import httpx
import uvloop

from nmt.machine import describe

HOST = "127.0.0.1"  # loopback only
SERVERS = {
    "h11 + asyncio": ["--http", "h11", "--loop", "asyncio"],
    "httptools + uvloop": ["--http", "httptools", "--loop", "uvloop"],
}
APP = """
from fastapi import FastAPI
from pydantic import BaseModel

app = FastAPI()


class Request(BaseModel):
    texts: list[str]


@app.post("/v1/translate")
async def translate(request: Request) -> dict:
    return {"translations": [{"text": text, "score": -1.0} for text in request.texts]}
"""
SENTENCE = "Resumption of the session, as the minutes of the sitting show."
JSON = [(b"Content-Type", b"application/json")]
CLIENTS = ("one httpx pool for all", "one httpx client each", "one httpcore connection each")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


async def drive(url: str, clients: int, seconds: float, *, kind: str) -> int:
    """Closed-loop clients of ``kind`` (see CLIENTS) for ``seconds``; the answered requests."""
    answered = 0
    end = time.monotonic() + seconds
    body = json.dumps({"texts": [SENTENCE]}).encode()

    async def post_httpx(http: httpx.AsyncClient) -> int:
        response = await http.post(f"{url}/v1/translate", json={"texts": [SENTENCE]})
        response.raise_for_status()
        return len(response.json()["translations"])

    async def post_httpcore(pool: httpcore.AsyncConnectionPool) -> int:
        response = await pool.request("POST", f"{url}/v1/translate", headers=JSON, content=body)
        assert response.status == 200, response.status
        return len(json.loads(response.content)["translations"])

    async def client(post: Callable[[Any], Awaitable[int]], connection: Any) -> None:
        nonlocal answered
        while time.monotonic() < end:
            got = await post(connection)  # not `answered += await …`: that reads before awaiting
            answered += got

    async with contextlib.AsyncExitStack() as stack:
        enter = stack.enter_async_context
        if kind == "one httpx pool for all":
            limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
            one = await enter(httpx.AsyncClient(limits=limits))
            connections: list[Any] = [one] * clients
        elif kind == "one httpx client each":
            connections = [await enter(httpx.AsyncClient()) for _ in range(clients)]
        else:
            connections = [
                await enter(httpcore.AsyncConnectionPool(max_connections=1)) for _ in range(clients)
            ]
        post = post_httpx if kind.startswith("one httpx") else post_httpcore
        await asyncio.gather(*(client(post, c) for c in connections))
    return answered


def start_server(folder: Path, flags: list[str], port: int) -> subprocess.Popen[bytes]:
    (folder / "echo_app.py").write_text(APP, encoding="utf-8")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "echo_app:app",
            "--host",
            HOST,
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
            *flags,
        ],
        cwd=folder,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.TransportError):
            httpx.post(f"http://{HOST}:{port}/v1/translate", json={"texts": []})
            return process
        time.sleep(0.1)
    process.kill()
    raise SystemExit(f"the echo server did not start: uvicorn {' '.join(flags)}")


Runner = Callable[[Coroutine[Any, Any, int]], int]


def measure(
    url: str, pid: int, args: argparse.Namespace, *, kind: str, run: Runner
) -> tuple[float, float, float]:
    """Requests/s, server CPU ms a request, clients' CPU ms a request (one run)."""
    server_before, clients_before = cpu_seconds(pid), own_cpu_seconds()
    started = time.monotonic()
    answered = run(drive(url, args.clients, args.seconds, kind=kind))
    elapsed = time.monotonic() - started
    server = cpu_seconds(pid) - server_before
    clients = own_cpu_seconds() - clients_before
    return answered / elapsed, 1000 * server / answered, 1000 * clients / answered


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    runners: dict[str, Runner] = {"asyncio": asyncio.run, "uvloop": uvloop.run}
    print(
        f"{describe()}; {os.cpu_count()} CPUs; {args.clients} clients × {args.seconds:g} s, "
        f"medians of {args.repeats}\n"
    )
    print("| server | clients | requests/s | server CPU ms a request | clients' CPU ms a request |")
    print("|---|---|---:|---:|---:|")

    for server, flags in SERVERS.items():
        with tempfile.TemporaryDirectory() as tmp:
            port = free_port()
            process = start_server(Path(tmp), flags, port)
            url = f"http://{HOST}:{port}"
            try:
                for kind in CLIENTS:
                    for loop, run in runners.items():
                        runs = [
                            measure(url, process.pid, args, kind=kind, run=run)
                            for _ in range(args.repeats)
                        ]
                        rate, server_ms, clients_ms = (
                            statistics.median(x) for x in zip(*runs, strict=True)
                        )
                        print(
                            f"| {server} | {kind}, {loop} | {rate:.0f} | {server_ms:.3f} | "
                            f"{clients_ms:.3f} |"
                        )
            finally:
                process.terminate()
                process.wait(30)


if __name__ == "__main__":
    main()
