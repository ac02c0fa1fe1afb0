"""The one thread that runs the model, coalescing concurrent requests into batches.

The event loop only parses requests and queues them (:meth:`BatchingWorker.submit` returns a
future it awaits); this thread takes queued jobs, groups those with the same decoding options,
and translates each group with one Translator call, which sorts its sentences by length and cuts
them into token-budget batches. Batching requests is what lets a server keep up with many
clients: one beam-search step over 50 sentences costs little more than over one.

How a batch is gathered: the first queued job opens it; more jobs join while the batch has
fewer than ``batch_tokens`` source tokens, for at most ``max_wait`` seconds after the first job
was queued. Under load the queue is never empty, so batches fill without waiting; a lone request
waits ``max_wait`` at most.

A failure stays with its request: if a group's call raises, each of its jobs is translated
alone, so only the job at fault gets the exception.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from itertools import count
from typing import Protocol

from nmt.config import DecodingConfig
from nmt.decoding.translator import Translation
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
    ) -> Result: ...


@dataclass
class Job:
    """One request's texts, waiting for the model."""

    texts: list[str]
    options: DecodingConfig
    attention: bool
    num_tokens: int  # source subwords (with EOS) of all texts: the batch budget counts these
    future: Future[Result] = field(default_factory=Future)
    queued_at: float = field(default_factory=time.monotonic)
    number: int = 0

    def group_key(self) -> str:
        """Jobs with equal keys can share one Translator call."""
        if self.options.sampling and self.options.seed is not None:
            # A seeded sample must not depend on which other requests shared its batch.
            return f"alone {self.number}"
        return f"{self.attention} {self.options.model_dump_json()}"


@dataclass
class WorkerStats:
    in_flight: int = 0  # submitted, not yet answered
    requests: int = 0
    batches: int = 0  # Translator calls
    largest_batch: int = 0  # requests in one call


class ShuttingDown(RuntimeError):
    """A request arrived after the worker was told to stop."""


class BatchingWorker:
    """Owns ``translator``; translate through :meth:`submit` only.

    ``batching=False`` translates one request per call (the baseline the load benchmark
    compares against).
    """

    def __init__(
        self,
        translator: NbestTranslator,
        *,
        batching: bool,
        max_wait: float,
        batch_tokens: int,
    ) -> None:
        if max_wait < 0 or batch_tokens < 1:
            raise ValueError(
                f"need max_wait >= 0 and batch_tokens >= 1: {max_wait}, {batch_tokens}"
            )
        self.translator = translator
        self.batching = batching
        self.max_wait = max_wait
        self.batch_tokens = batch_tokens
        self.stats = WorkerStats()
        self._queue: queue.Queue[Job | None] = queue.Queue()  # None: stop once drained
        self._held: Job | None = None  # a job that did not fit the last batch
        self._numbers = count()
        self._lock = threading.Lock()  # makes "not stopping, then queued" one step
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="nmt-serve-worker", daemon=True)

    @property
    def queued(self) -> int:
        return self._queue.qsize() + (self._held is not None)

    @property
    def stopping(self) -> bool:
        return self._stopping

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Translate every job already queued, then end the thread."""
        with self._lock:
            if not self._stopping:
                self._stopping = True
                self._queue.put(None)
        self._thread.join(timeout)

    def submit(
        self, texts: list[str], options: DecodingConfig, *, attention: bool, num_tokens: int
    ) -> Future[Result]:
        """Queue a request; its future gets one n-best list per text, or the exception."""
        job = Job(texts, options, attention, num_tokens, number=next(self._numbers))
        with self._lock:
            if self._stopping:
                raise ShuttingDown("the server is shutting down")
            self._queue.put(job)
            self.stats.in_flight += 1
        job.future.add_done_callback(self._answered)
        return job.future

    def _answered(self, future: Future[Result]) -> None:
        with self._lock:
            self.stats.in_flight -= 1

    # -- the thread -------------------------------------------------------------------------

    def _run(self) -> None:
        while (jobs := self._gather()) is not None:
            # A client that hung up has cancelled its future: skip its work.
            live = [job for job in jobs if job.future.set_running_or_notify_cancel()]
            groups: dict[str, list[Job]] = {}
            for job in live:
                groups.setdefault(job.group_key(), []).append(job)
            for group in groups.values():
                self._translate(group)

    def _gather(self) -> list[Job] | None:
        """The next batch of jobs, or None once told to stop and every job is done."""
        first = self._held if self._held is not None else self._queue.get()
        self._held = None
        if first is None:
            return None
        jobs, tokens = [first], first.num_tokens
        if not self.batching:
            return jobs
        deadline = first.queued_at + self.max_wait
        while tokens < self.batch_tokens:
            try:
                # timeout 0 still takes a job that is already queued.
                job = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if job is None:
                self._queue.put(None)  # the stop mark: honoured after this batch
                break
            if tokens + job.num_tokens > self.batch_tokens:
                self._held = job  # it opens the next batch
                break
            jobs.append(job)
            tokens += job.num_tokens
        return jobs

    def _translate(self, group: list[Job]) -> None:
        """One Translator call for the group; on failure, each job alone."""
        texts = [text for job in group for text in job.texts]
        try:
            results = self.translator.translate_nbest(
                texts, group[0].options, return_attention=group[0].attention
            )
        except Exception as exc:
            if len(group) == 1:
                self._fail(group[0], exc)
                return
            log.info("a batch of %d requests failed; translating each alone", len(group))
            for job in group:
                self._translate([job])
            return
        self.stats.batches += 1
        self.stats.requests += len(group)
        self.stats.largest_batch = max(self.stats.largest_batch, len(group))
        start = 0
        for job in group:
            job.future.set_result(results[start : start + len(job.texts)])
            start += len(job.texts)

    @staticmethod
    def _fail(job: Job, exc: Exception) -> None:
        if not isinstance(exc, NmtError):  # users' mistakes need no traceback in the log
            log.exception("translating a request failed", exc_info=exc)
        job.future.set_exception(exc)
