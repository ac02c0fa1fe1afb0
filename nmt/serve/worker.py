"""The threads that run the model, coalescing concurrent requests into batches.

The event loop only parses requests and queues them (:meth:`BatchingWorker.submit` returns a
future it awaits); a model thread takes queued jobs, groups those with the same decoding options,
and translates each group with one Translator call, which sorts its sentences by length and cuts
them into token-budget batches. Batching requests is what lets a server keep up with many
clients: one beam-search step over 50 sentences costs little more than over one.

Several model threads (``workers``) share the model and the queue, each translating its own
batch: a decoding step is many small operations, and on a CPU two single-threaded batches side
by side translate more sentences per second than one batch on two threads (in the server 1.16×;
benchmarks/parallel_batches.py and docs/serve.md have the figures).
PyTorch releases the GIL inside its operations, but the Python between them takes turns at it:
with ``processes``, each thread hands its batches to a model process of its own
(nmt.decoding.processes), which shares the model's weights; a beam-search trace is still
searched in this process, where it is read. The model is only read. Each model thread sets
its own intra-op threads (``cpu_threads``): OpenMP keeps that setting per thread.

With several threads the clients are shared out: a batch takes at most its share of them (the
number of clients is estimated as the most requests in flight at once lately, a peak kept for
CLIENTS_MEMORY seconds; the share is that divided by the threads), and a thread whose share is
not queued yet waits for it, at most ``fill_wait`` times as long as its last batch took.
Clients that send their next request as soon as one is answered would otherwise fragment into
ever smaller batches: a thread that turns free takes whatever few requests have come back. With
one thread there is no waiting: it would leave every core idle.

How a batch is gathered: the first queued job opens it; more jobs join while the batch has
fewer than ``batch_tokens`` source tokens, for at most ``max_wait`` seconds after the first job
was queued. Under load the queue is never empty, so batches fill without waiting; a lone request
waits ``max_wait`` at most.

With one thread, a request is answered as soon as the search has finished its texts, while the
longer sentences of its batch are still searched: its client sends its next request at once,
and the thread's next batch holds every client instead of only those that waited out this one.
With several threads, answers come when the batch ends: answering sentence by sentence wakes
the event loop (and on a small machine the clients) once a request instead of once a batch,
which cost more than it gained (both measured by benchmarks/serve_load.py: docs/serve.md).

A client that hangs up cancels its job (nmt.serve.texts). A job still queued is skipped; one
whose call has begun loses the sentences not yet searched: the Translator asks ``wanted`` as
each of its length-sorted batches begins, so a long request stops costing work one batch after
its client left. (Futures therefore stay pending while they are translated, so that cancelling
them still works; answering one that was cancelled meanwhile is no error.)

A failure stays with its request: if a group's call raises, each of its jobs not yet answered
is translated alone, so only the job at fault gets the exception.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, InvalidStateError, ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, field
from itertools import count
from typing import Any, Protocol, cast

import torch

from nmt.config import DecodingConfig
from nmt.decoding.processes import ModelProcess, ModelProcessFailed
from nmt.decoding.search import Observer
from nmt.decoding.translator import Translation, TranslationDone, Translator, Wanted
from nmt.device import check_device
from nmt.errors import NmtError

log = logging.getLogger(__name__)

Result = list[list[Translation]]  # per text, its n-best list


class NbestTranslator(Protocol):
    """What the worker needs of a translator (nmt's Translator or an engine's)."""

    def translate_nbest(
        self,
        sentences: Sequence[str],
        options: DecodingConfig | None = None,
        *,
        return_attention: bool = False,
        on_done: TranslationDone | None = None,
        wanted: Wanted | None = None,
    ) -> Result:
        """Also taken where a request asks for them: ``return_alignment``, ``prefixes`` (one
        per sentence) and ``observer`` (nmt.decoding.translator.Translator.translate_nbest)."""
        ...


@dataclass
class Job:
    """One request's texts (sentences), waiting for the model."""

    texts: list[str]
    options: DecodingConfig
    attention: bool
    num_tokens: int  # source subwords (with EOS) of all texts: the batch budget counts these
    alignment: bool = False  # word alignments wanted (Translation.alignment)
    prefixes: list[str | None] | None = None  # per text, its target prefix (None: the options')
    observer: Observer | None = None  # sees every step of the search (a beam-search trace)
    future: Future[Result] = field(default_factory=Future)
    queued_at: float = field(default_factory=time.monotonic)
    number: int = 0

    def group_key(self) -> str:
        """Jobs with equal keys can share one Translator call."""
        if self.options.sampling and self.options.seed is not None:
            # A seeded sample must not depend on which other requests shared its batch.
            return f"alone {self.number}"
        if self.observer is not None:
            return f"alone {self.number}"  # its trace numbers sentences as the call does
        return f"{self.attention} {self.alignment} {self.options.model_dump_json()}"

    def translate_kwargs(self, group: list[Job]) -> dict[str, Any]:
        """The Translator's optional arguments for a call of ``group`` (which this job opens);
        only those in use, so a translator without them still serves plain requests."""
        kwargs: dict[str, Any] = {}
        if self.alignment:
            kwargs["return_alignment"] = True
        if any(job.prefixes is not None for job in group):
            kwargs["prefixes"] = [
                prefix for job in group for prefix in job.prefixes or [None] * len(job.texts)
            ]
        if self.observer is not None:
            kwargs["observer"] = self.observer
        return kwargs


@dataclass
class WorkerStats:
    in_flight: int = 0  # submitted, not yet answered
    requests: int = 0
    batches: int = 0  # Translator calls
    skipped: int = 0  # requests whose client hung up before their batch began: never translated
    cut_short: int = 0  # requests whose client hung up during their call: the rest not searched
    largest_batch: int = 0  # requests in one call


@dataclass
class _ThreadState:
    """What one model thread carries from batch to batch."""

    translator: NbestTranslator  # where its batches are searched
    held: Job | None = None  # a job that did not fit its last batch: it opens the next one
    last_seconds: float = 0.0  # how long its last batch took


class _ResultsByJob:
    """Collects one Translator call's translations, text by text, into each job's result, and
    answers a job as soon as all its texts are in (``add`` is the call's ``on_done``: text i of
    the call, counted across the jobs in order)."""

    def __init__(self, jobs: list[Job]) -> None:
        self.owners = [(job, j) for job in jobs for j in range(len(job.texts))]
        self.results: dict[int, list[list[Translation] | None]] = {
            job.number: [None] * len(job.texts) for job in jobs
        }
        self.missing = {job.number: len(job.texts) for job in jobs}

    def add(self, i: int, translations: list[Translation]) -> None:
        job, j = self.owners[i]
        if self.results[job.number][j] is not None:
            return  # passed on twice: the first answer stands
        self.results[job.number][j] = translations
        self.missing[job.number] -= 1
        if self.missing[job.number] == 0:
            _answer(job, cast(Result, self.results[job.number]))


CLIENTS_MEMORY = 1.0  # seconds a peak of requests in flight counts as the number of clients


class ShuttingDown(RuntimeError):
    """A request arrived after the worker was told to stop."""


# Measured on 2 cores only; beyond a few, ever smaller shares of the clients (and, without model
# processes, one GIL), so the default stops here and the cores are shared out among these.
MAX_DEFAULT_WORKERS = 4


def model_threads(
    device: str, *, workers: int | None, threads: int | None
) -> tuple[int, int | None]:
    """How many model threads translate side by side, and how many CPU threads each uses (None:
    leave PyTorch's setting). On a CPU, by default one model thread per core PyTorch would use
    (at most MAX_DEFAULT_WORKERS), single-threaded; given one of the two numbers, the other
    shares out those cores. A GPU runs one batch at a time: one model thread."""
    if check_device(device).type != "cpu":
        return workers or 1, threads
    cores = torch.get_num_threads()
    if workers is None:
        workers = max(1, min(MAX_DEFAULT_WORKERS, cores // (threads or 1)))
    return workers, threads or max(1, cores // workers)


def usable_cores() -> int:
    """The CPUs this process may run on (its affinity where the platform says, e.g. a
    container's share)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def use_cpu_threads(count: int) -> None:
    """This thread's PyTorch intra-op threads from now on. They are OpenMP's, whose count is
    kept per thread, but a thread's first parallel operation (or ``get_num_threads``) sets it
    again from a process-wide default that every ``set_num_threads`` changes: reading it at once
    keeps this thread's count whatever other threads set later."""
    torch.set_num_threads(count)
    torch.get_num_threads()


class BatchingWorker:
    """Owns ``translator``; translate through :meth:`submit` only.

    ``batching=False`` translates one request per call (the baseline the load benchmark
    compares against). ``workers``: model threads translating batches side by side;
    ``processes``: each searching in a model process of its own (``translator`` must be nmt's
    own Translator, nmt.decoding.processes.runs_apart). ``cpu_threads``: PyTorch's intra-op
    threads for each model thread (None: the constructing thread's setting).
    """

    def __init__(
        self,
        translator: NbestTranslator,
        *,
        batching: bool,
        max_wait: float,
        batch_tokens: int,
        workers: int = 1,
        fill_wait: float = 0.0,
        processes: bool = False,
        cpu_threads: int | None = None,
    ) -> None:
        if max_wait < 0 or batch_tokens < 1 or workers < 1 or fill_wait < 0:
            raise ValueError(
                "need max_wait >= 0, batch_tokens >= 1, workers >= 1 and fill_wait >= 0: "
                f"{max_wait}, {batch_tokens}, {workers}, {fill_wait}"
            )
        self.translator = translator
        self.batching = batching
        self.max_wait = max_wait
        self.batch_tokens = batch_tokens
        self.fill_wait = fill_wait
        self.stats = WorkerStats()
        # Answers as sentences finish only with one model thread (see the module docstring).
        self.answer_early = workers == 1
        self._clients = 0  # the most requests in flight lately (see CLIENTS_MEMORY)
        self._clients_at = 0.0
        self._queue: queue.Queue[Job | None] = queue.Queue()  # None: stop once drained
        self._held = 0  # jobs taken from the queue that wait for their thread's next batch
        self._numbers = count()
        # Makes "not stopping, then queued" one step; guards the stats and _held.
        self._lock = threading.Lock()
        self._stopping = False
        self._threads = [
            threading.Thread(target=self._run, args=(i,), name=f"nmt-serve-worker-{i}", daemon=True)
            for i in range(workers)
        ]
        self._searching = 0  # model threads searching a batch now
        self.cpu_threads = cpu_threads or torch.get_num_threads()  # each model thread's
        # A lone request (low load, no other search) gets every CPU thread of the model threads
        # together, in a thread of its own: a model thread's own team would stay that large
        # after it, and OpenMP teams that outnumber the cores sleep between operators
        # (nmt.serve.app.serve). On the OPUS-MT shape, two cores, one client: p50 233 ms on one
        # thread, 208 on two (docs/serve.md).
        self._lone: ThreadPoolExecutor | None = None
        lone_threads = min(workers, usable_cores())  # more model threads than cores: the cores
        if self.cpu_threads == 1 and lone_threads > 1:
            self._lone = ThreadPoolExecutor(
                1, "nmt-serve-lone", initializer=use_cpu_threads, initargs=(lone_threads,)
            )
        self._processes: list[ModelProcess] = []
        if processes:
            self._processes = [
                ModelProcess(
                    cast(Translator, translator),
                    threads=self.cpu_threads,
                    name=f"nmt-serve-model-{i}",
                )
                for i in range(workers)
            ]

    @property
    def queued(self) -> int:
        return self._queue.qsize() + self._held

    @property
    def stopping(self) -> bool:
        return self._stopping

    def start(self) -> None:
        """Start the model processes (if any: seconds, as the fork server imports torch), then
        the threads; without them (ModelProcessFailed) the threads search in this process."""
        try:
            for process in self._processes:
                process.launch()
            for process in self._processes:
                process.connect()
        except ModelProcessFailed as exc:
            log.warning("no model processes (%s): the model threads search in this process", exc)
            for process in self._processes:
                process.stop()
            self._processes = []
        if self._processes:
            pids = ", ".join(str(process.pid) for process in self._processes)
            log.info("each model thread searches in a process of its own: pids %s", pids)
        if self._lone is not None:
            default = torch.get_num_threads()
            self._lone.submit(torch.get_num_threads).result()  # its thread starts, pinned
            torch.set_num_threads(default)  # the process-wide default as it was (use_cpu_threads)
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Translate every job already queued, then end the threads."""
        with self._lock:
            if not self._stopping:
                self._stopping = True
                self._queue.put(None)  # each thread that meets it puts it back for the next
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        if not any(thread.is_alive() for thread in self._threads):
            for process in self._processes:
                process.stop()
            if self._lone is not None:
                self._lone.shutdown()

    def submit(
        self,
        texts: list[str],
        options: DecodingConfig,
        *,
        attention: bool,
        num_tokens: int,
        alignment: bool = False,
        prefixes: list[str | None] | None = None,
        observer: Observer | None = None,
    ) -> Future[Result]:
        """Queue a request; its future gets one n-best list per text, or the exception."""
        job = Job(
            texts,
            options,
            attention,
            num_tokens,
            alignment=alignment,
            prefixes=prefixes,
            observer=observer,
            number=next(self._numbers),
        )
        with self._lock:
            if self._stopping:
                raise ShuttingDown("the server is shutting down")
            self.stats.in_flight += 1
            # Counted before queueing: a thread woken by this job sees it among the clients.
            if (
                self.stats.in_flight >= self._clients
                or job.queued_at - self._clients_at > CLIENTS_MEMORY
            ):
                self._clients, self._clients_at = self.stats.in_flight, job.queued_at
            self._queue.put(job)
        job.future.add_done_callback(self._answered)
        return job.future

    def _answered(self, future: Future[Result]) -> None:
        with self._lock:
            self.stats.in_flight -= 1

    # -- the thread -------------------------------------------------------------------------

    def _run(self, number: int) -> None:
        # A thread's own setting (nmt.serve.app.serve keeps its main thread's 1).
        use_cpu_threads(self.cpu_threads)
        state = _ThreadState(self._processes[number] if self._processes else self.translator)
        while (jobs := self._gather(state)) is not None:
            started = time.monotonic()
            # A client that hung up has cancelled its future (texts.py): skip its work.
            live = [job for job in jobs if not job.future.cancelled()]
            if skipped := len(jobs) - len(live):
                with self._lock:
                    self.stats.skipped += skipped
                log.info("skipped %d request(s) whose client hung up", skipped)
            groups: dict[str, list[Job]] = {}
            for job in live:
                groups.setdefault(job.group_key(), []).append(job)
            with self._lock:
                # A lone request while no other thread searches (low load) is searched here, on
                # every model thread's CPU thread (``_lone``): a model process costs it a few
                # milliseconds (its pipe, and weights in shared memory; docs/serve.md), and
                # alone it contends for no lock. Not with several CPU threads per model thread:
                # their OpenMP teams could outnumber the cores.
                alone = len(live) == 1 and self._searching == 0 and self.cpu_threads == 1
                self._searching += 1
            try:
                for group in groups.values():
                    if alone and self._lone is not None:
                        self._lone.submit(self._translate, group, self.translator).result()
                        continue
                    # A trace is read where it is written: in this process.
                    here = alone or group[0].observer is not None
                    self._translate(group, self.translator if here else state.translator)
            finally:
                with self._lock:
                    self._searching -= 1
            state.last_seconds = time.monotonic() - started

    def _gather(self, state: _ThreadState) -> list[Job] | None:
        """The calling thread's next batch of jobs, or None once told to stop and every job is
        done."""
        if state.held is not None:
            first: Job | None = state.held
            state.held = None
            with self._lock:
                self._held -= 1
        else:
            first = self._queue.get()
        if first is None:
            self._queue.put(None)  # the stop mark, for the other threads
            return None
        jobs, tokens = [first], first.num_tokens
        if not self.batching:
            return jobs
        deadline = first.queued_at + self.max_wait
        share = None  # one thread: every queued job it can take
        if (threads := len(self._threads)) > 1:  # this thread's share of the clients: wait for it
            share = -(-self._clients // threads)
            deadline = max(deadline, time.monotonic() + self.fill_wait * state.last_seconds)
        while tokens < self.batch_tokens and (share is None or len(jobs) < share):
            try:
                # timeout 0 still takes a job that is already queued.
                job = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if job is None:
                self._queue.put(None)  # the stop mark: honoured after this batch
                break
            if tokens + job.num_tokens > self.batch_tokens:
                state.held = job
                with self._lock:
                    self._held += 1
                break
            jobs.append(job)
            tokens += job.num_tokens
        return jobs

    def _translate(self, group: list[Job], translator: NbestTranslator) -> None:
        """One Translator call for the group, each job answered as soon as its texts are
        translated; on failure, each job not answered yet alone."""
        texts = [text for job in group for text in job.texts]
        owners = [job for job in group for _ in job.texts]
        on_done = _ResultsByJob(group).add if self.answer_early else None
        try:
            results = translator.translate_nbest(
                texts,
                group[0].options,
                return_attention=group[0].attention,
                on_done=on_done,
                wanted=lambda i: not owners[i].future.cancelled(),
                **group[0].translate_kwargs(group),
            )
        except Exception as exc:
            unanswered = [job for job in group if not job.future.done()]
            if len(unanswered) < len(group):
                self._count(len(group) - len(unanswered))  # answered before the failure
            if not unanswered:
                log.exception("a batch failed after answering every request", exc_info=exc)
            elif len(group) == 1:
                self._fail(group[0], exc)
            else:
                log.info("a batch of %d requests failed; translating each alone", len(group))
                for job in unanswered:
                    self._translate([job], translator)
            return
        if gone := sum(job.future.cancelled() for job in group):
            with self._lock:
                self.stats.cut_short += gone
            never_searched = sum(not nbest for nbest in results)  # even a blank line gets one
            log.info(
                "stopped translating %d request(s) whose client hung up (%d sentences never "
                "searched)",
                gone,
                never_searched,
            )
        self._count(len(group) - gone)
        start = 0
        for job in group:  # those a translator that does not call on_done left unanswered
            if not job.future.done():
                _answer(job, results[start : start + len(job.texts)])
            start += len(job.texts)

    def _count(self, answered: int) -> None:
        """One Translator call that answered ``answered`` requests."""
        with self._lock:
            self.stats.batches += 1
            self.stats.requests += answered
            self.stats.largest_batch = max(self.stats.largest_batch, answered)

    @staticmethod
    def _fail(job: Job, exc: Exception) -> None:
        if not isinstance(exc, NmtError):  # users' mistakes need no traceback in the log
            log.exception("translating a request failed", exc_info=exc)
        with suppress(InvalidStateError):  # cancelled meanwhile: no one reads it
            job.future.set_exception(exc)


def _answer(job: Job, result: Result) -> None:
    """Settle ``job`` unless its client cancelled it meanwhile (which may come at any moment
    from the event loop's thread: checking first would race with it)."""
    with suppress(InvalidStateError):
        job.future.set_result(result)
