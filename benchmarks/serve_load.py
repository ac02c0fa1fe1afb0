"""Load test of `nmt serve`: many clients at once, against offline translation of the same
sentences and against the same server with batching switched off.

Everything runs on this machine, on 127.0.0.1: the script starts each server itself, drives it
with ``--clients`` concurrent clients (asyncio on uvloop; each client its own connection, as
separate users have, through httpcore, httpx's transport; one sentence per request, each client
sending its next request when the last is answered) for ``--seconds`` after a warm-up, then
stops it with SIGTERM. Loops are bounded in time and in requests. Printed per run:
requests/s, sentences/s, latency p50/p95/p99, errors, translations that differ from the offline
ones, the memory of the server and its model processes (their proportional set sizes summed,
so that the weights they share count once: after loading, after the warm-up and at the end, and
every ``--rss-every`` seconds: flat means no leak), the mean requests per model call, and the
CPU seconds used during the load by the server's event loop, its model threads, its model
processes and the clients. The
offline reference is what `nmt translate` runs (each line split into sentences, as the server
splits each text) on the same sentences in this process, before any server starts; beside it,
the same Translator given the sentences in the clients' order, ``--clients`` at a time: the
largest batches one model thread can form when each of ``--clients`` clients has one sentence
in flight. Both offline rates are medians of
``--repeats`` runs. The machine's speed drifts over minutes, so offline runs once more
after each server, and each server is also compared with offline measured just before and after
it.

    .venv/bin/python benchmarks/serve_load.py runs/quickstart/averaged --src data/de-en/test.en
    .venv/bin/python benchmarks/serve_load.py MODEL --clients 5 --seconds 5   # a quick check
    .venv/bin/python benchmarks/serve_load.py MODEL --variant "one thread=--workers 1" \\
        --variant "passive OpenMP=OMP_WAIT_POLICY=PASSIVE"   # more batched runs to compare
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpcore
import httpx
import uvloop

from nmt.data.parallel import iter_lines
from nmt.machine import describe

HOST = "127.0.0.1"  # loopback only: the load never leaves this machine
MAX_REQUESTS_PER_CLIENT = 100_000  # a bound besides the time limit
JSON = [(b"Content-Type", b"application/json")]
HTTPCORE_ERRORS = (httpcore.NetworkError, httpcore.TimeoutException, httpcore.ProtocolError)


@dataclass
class Load:
    """What the clients saw in one measured run."""

    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)  # of answered requests, seconds
    errors: int = 0
    mismatches: int = 0  # answers that differ from the offline translation
    sent: int = 0


@dataclass
class Run:
    name: str
    load: Load
    memory_loaded_mb: float
    memory_after_warmup_mb: float
    memory_end_mb: float
    memory_samples_mb: list[float]  # every --rss-every seconds of the measured load
    requests_per_call: float
    server_cpu: dict[str, float]  # CPU seconds of the measured load, by kind of server thread
    clients_cpu: float  # CPU seconds of this process (the clients) over the measured load


# -- the server process ----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (the server, its model processes, multiprocessing's
    resource tracker)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):  # ended meanwhile
                ppid = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
                parents.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        tree.append(current := todo.pop())
        todo.extend(parents.get(current, []))
    return tree


def memory_mb(pid: int) -> float:
    """The proportional set size of ``pid`` and its descendants in MB: pages they share (the
    model processes map the server's weights) count once in all (Linux)."""
    total = 0
    for member in process_tree(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{member}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
    return total / 1024  # kB → MB


def cpu_seconds(pid: int) -> dict[str, float]:
    """CPU seconds (user + system) the server ``pid`` has used so far: its main thread (the
    event loop), its other threads (model threads, PyTorch's thread pool) and its descendants
    (model processes)."""
    ticks = os.sysconf("SC_CLK_TCK")
    used = {"event loop": 0.0, "model threads": 0.0, "model processes": 0.0}
    for member in process_tree(pid):
        for task in Path(f"/proc/{member}/task").iterdir():
            try:
                # Fields after the parenthesised name; utime and stime are the stat file's 14, 15.
                fields = (task / "stat").read_text().rpartition(")")[2].split()
            except FileNotFoundError:  # the thread ended meanwhile
                continue
            if member != pid:
                kind = "model processes"
            else:
                kind = "event loop" if task.name == str(pid) else "model threads"
            used[kind] += (int(fields[11]) + int(fields[12])) / ticks
    return used


def start_server(model: Path, flags: list[str], log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """`nmt serve MODEL FLAGS` on a free loopback port; leading NAME=VALUE words of ``flags``
    go to its environment (``OMP_WAIT_POLICY=PASSIVE --threads 2``)."""
    env = dict(os.environ)
    while flags and "=" in flags[0] and not flags[0].startswith("-"):
        name, _, value = flags[0].partition("=")
        env[name], flags = value, flags[1:]
    port = free_port()
    command = [sys.executable, "-m", "nmt.cli", "serve", str(model), "--host", HOST]
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*command, "--port", str(port), *flags], stdout=out, stderr=subprocess.STDOUT, env=env
        )
    url = f"http://{HOST}:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited ({process.returncode}); see {log}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit(f"the server did not start within 300 s; see {log}")


def stop_server(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# -- the clients -------------------------------------------------------------------------------


async def drive(
    url: str, sentences: list[str], expected: list[str], *, clients: int, seconds: float
) -> Load:
    """``clients`` closed-loop clients for ``seconds``; client c sends sentences c, c + clients…"""
    load = Load()
    end = time.monotonic() + seconds
    timeouts = {"timeout": {"connect": 120.0, "read": 120.0, "write": 120.0, "pool": 120.0}}

    async def client(c: int, http: httpcore.AsyncConnectionPool) -> None:
        for n in range(MAX_REQUESTS_PER_CLIENT):
            if time.monotonic() >= end:
                return
            i = (c + n * clients) % len(sentences)
            load.sent += 1
            started = time.monotonic()
            body = json.dumps({"texts": [sentences[i]]}).encode()
            try:
                response = await http.request(
                    "POST", f"{url}/v1/translate", headers=JSON, content=body, extensions=timeouts
                )
                if response.status != 200:
                    raise ValueError(f"HTTP {response.status}")
                text = json.loads(response.content)["translations"][0]["text"]
            except (*HTTPCORE_ERRORS, KeyError, ValueError):
                load.errors += 1
                continue
            load.latencies.append(time.monotonic() - started)
            load.mismatches += text != expected[i]

    # Each client its own connection, as separate users would have, through httpcore (httpx's
    # transport) without httpx's request and response objects on top: on this 2-core machine the
    # clients' CPU is CPU the server does not get. benchmarks/http_overhead.py measures it: one
    # httpx client's pool of 50 connections for all costs 5-6x the CPU a request of one httpx
    # client each, and httpcore alone about two thirds of that again.
    async with contextlib.AsyncExitStack() as stack:
        pools = [
            await stack.enter_async_context(httpcore.AsyncConnectionPool(max_connections=1))
            for _ in range(clients)
        ]
        started = time.monotonic()
        await asyncio.gather(*(client(c, pool) for c, pool in enumerate(pools)))
        load.seconds = time.monotonic() - started
    return load


def measure(
    name: str,
    model: Path,
    flags: list[str],
    sentences: list[str],
    expected: list[str],
    args: argparse.Namespace,
) -> Run:
    with tempfile.TemporaryDirectory() as tmp:
        process, url = start_server(model, flags, Path(tmp) / "server.log")
        try:
            memory_loaded = memory_mb(process.pid)
            uvloop.run(drive(url, sentences, expected, clients=args.clients, seconds=args.warmup))
            memory_after_warmup = memory_mb(process.pid)
            before = httpx.get(f"{url}/health").json()
            samples: list[float] = []
            sampling = threading.Event()

            def sample_rss() -> None:
                while not sampling.wait(args.rss_every):
                    samples.append(memory_mb(process.pid))

            sampler = threading.Thread(target=sample_rss, daemon=True)
            sampler.start()
            server_cpu_before, clients_before = cpu_seconds(process.pid), os.times()
            load = uvloop.run(
                drive(url, sentences, expected, clients=args.clients, seconds=args.seconds)
            )
            server_cpu_after, clients_after = cpu_seconds(process.pid), os.times()
            sampling.set()
            sampler.join()
            memory_end = memory_mb(process.pid)
            after = httpx.get(f"{url}/health").json()
        finally:
            stop_server(process)
    calls = max(1, after["batches"] - before["batches"])
    per_call = (after["requests"] - before["requests"]) / calls
    server_cpu = {k: server_cpu_after[k] - server_cpu_before[k] for k in server_cpu_after}
    server_cpu = {k: v for k, v in server_cpu.items() if v > 0 or k != "model processes"}
    clients_cpu = sum(clients_after[:2]) - sum(clients_before[:2])  # user + system
    return Run(
        name,
        load,
        memory_loaded,
        memory_after_warmup,
        memory_end,
        samples,
        per_call,
        server_cpu,
        clients_cpu,
    )


# -- offline -----------------------------------------------------------------------------------


class Offline:
    """`nmt translate`'s code (sentences split, as the server does) over the sentences, in this
    process, with the model loaded once; ``windowed``: the same Translator given them in the
    clients' order, ``clients`` at a time (client c sends sentences c, c + clients, …:
    together, one window of ``clients``)."""

    def __init__(self, model: Path, sentences: list[str], folder: Path) -> None:
        from nmt.decoding.translator import Translator

        self.translator = Translator.load(model)
        self.translator.translate(sentences[:32])  # warm-up, as the servers get theirs
        self.sentences = sentences
        self.src, self.hyp = folder / "src.txt", folder / "hyp.txt"
        self.src.write_text("".join(s + "\n" for s in sentences), encoding="utf-8")

    def rate(self) -> float:
        """Sentences/s of one run of `nmt translate`'s default path: each line split into
        sentences, as the server's /v1/translate splits each text (a line run as one sentence,
        ``--format lines``, differs where the splitter finds two sentences in a test line)."""
        from nmt.text.documents import Job
        from nmt.text.documents.plain import translate_lines

        job = Job(str(self.src), None, "en", "de", progress=False)
        started = time.perf_counter()
        translate_lines(self.translator, input_path=self.src, output_path=self.hyp, job=job)
        return len(self.sentences) / (time.perf_counter() - started)

    def windowed_rate(self, clients: int) -> float:
        started = time.perf_counter()
        for start in range(0, len(self.sentences), clients):
            self.translator.translate(self.sentences[start : start + clients])
        return len(self.sentences) / (time.perf_counter() - started)

    def outputs(self) -> list[str]:
        return self.hyp.read_text(encoding="utf-8").splitlines()


def percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="model directory")
    parser.add_argument("--src", type=Path, default=Path("data/de-en/test.en"))
    parser.add_argument("--sentences", type=int, default=1000, help="first N lines of --src")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=15.0, help="seconds, not measured")
    parser.add_argument("--rss-every", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--repeats", type=int, default=3, help="offline runs (median)")
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME=FLAGS",
        help="one more batched server run with these `nmt serve` flags, led by any NAME=VALUE "
        "environment variables (repeatable)",
    )
    args = parser.parse_args()
    sentences = [s for s in iter_lines(args.src) if s.strip()][: args.sentences]
    if any("=" not in v for v in args.variant):
        parser.error("--variant NAME=FLAGS, e.g. --variant '1 thread=--threads 1'")
    variants = [("server, batched", "")] + [tuple(v.split("=", 1)) for v in args.variant]

    machine = describe()  # before any load: the machine's own speed
    variants.append(("server, batching off", "--no-batching"))
    runs, beside = [], []
    with tempfile.TemporaryDirectory() as tmp:
        reference = Offline(args.model, sentences, Path(tmp))
        whole, windowed = [], []
        for _ in range(args.repeats):  # alternating: one run takes seconds, and noise is large
            whole.append(reference.rate())
            windowed.append(reference.windowed_rate(args.clients))
        expected = reference.outputs()
        before = whole[-1]
        for name, flags in variants:
            runs.append(measure(name, args.model, flags.split(), sentences, expected, args))
            # The machine's speed drifts over minutes: offline again right after each server,
            # so that each has a reference measured beside it.
            after = reference.rate()
            beside.append((before, after))
            before = after
    offline_rate, windowed_rate = statistics.median(whole), statistics.median(windowed)

    print(
        f"\n{machine}; {os.cpu_count()} CPUs ({platform.machine()}); model {args.model}; "
        f"{len(sentences)} sentences of {args.src}; {args.clients} clients × "
        f"{args.seconds:.0f} s (after {args.warmup:.0f} s of warm-up), one sentence a request; "
        f"offline rates: medians of {args.repeats} runs\n"
    )
    print(
        "| run | requests/s | sentences/s | p50 ms | p95 ms | p99 ms | errors | differ from "
        "offline | requests per model call | memory loaded MB | after warm-up MB "
        "| at end MB |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| offline (nmt translate) | | {offline_rate:.1f} | | | | | | | | | |")
    print(
        f"| offline, {args.clients} sentences a call in the clients' order | | "
        f"{windowed_rate:.1f} | | | | | | | | | |"
    )
    for run in runs:
        load, ms = run.load, [s * 1000 for s in run.load.latencies]
        rate = len(load.latencies) / load.seconds
        print(
            f"| {run.name} | {rate:.1f} | {rate:.1f} | {percentile(ms, 50):.0f} | "
            f"{percentile(ms, 95):.0f} | {percentile(ms, 99):.0f} | {load.errors} | "
            f"{load.mismatches} | {run.requests_per_call:.1f} | {run.memory_loaded_mb:.0f} | "
            f"{run.memory_after_warmup_mb:.0f} | {run.memory_end_mb:.0f} |"
        )
    unbatched = len(runs[-1].load.latencies) / runs[-1].load.seconds
    print()
    for run, (before, after) in zip(runs[:-1], beside[:-1], strict=True):
        rate = len(run.load.latencies) / run.load.seconds
        samples = ", ".join(f"{mb:.0f}" for mb in run.memory_samples_mb)
        print(
            f"{run.name}: {rate / offline_rate:.0%} of offline sentences/s, "
            f"{rate / statistics.mean([before, after]):.0%} of offline measured just before "
            f"and after it ({before:.1f}, {after:.1f}), "
            f"{rate / windowed_rate:.0%} of offline in the clients' windows, "
            f"{rate / unbatched:.1f}× the unbatched server; requests sent {run.load.sent}, "
            f"answered {len(run.load.latencies)}, errors {run.load.errors}; "
            f"memory (PSS) MB every {args.rss_every:g} s: {samples}"
        )
    cpus = os.cpu_count() or 1
    print(f"\nCPU seconds used during the measured load (of {cpus} CPUs × its seconds):")
    for run in runs:
        used = ", ".join(f"{kind} {seconds:.1f}" for kind, seconds in run.server_cpu.items())
        print(
            f"{run.name}: of {cpus * run.load.seconds:.0f} — server: {used}; "
            f"clients (this process): {run.clients_cpu:.1f}"
        )


if __name__ == "__main__":
    main()
