"""The batching worker with a fake translator whose calls the tests can hold and inspect (and
nmt's real one where cancelling must stop its search)."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from pathlib import Path

import pytest
import torch

from nmt.config import DecodingConfig
from nmt.decoding.translator import Translation, TranslationDone, Translator, Wanted
from nmt.serve import worker as worker_module
from nmt.serve.worker import BatchingWorker, ShuttingDown, model_threads

TIMEOUT = 10.0  # seconds: generous, only reached when something is broken
SLACK = 1.5  # seconds a timed wait may overrun on a busy 2-core machine (far below TIMEOUT)


class FakeTranslator:
    """Upper-cases its sentences; can be held inside a call; fails on a sentence "boom"."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.asked_early: list[bool] = []  # per call: was on_done given?
        self.entered = threading.Event()
        self.release = threading.Event()
        self.release.set()

    def translate_nbest(
        self,
        sentences: Sequence[str],
        options: DecodingConfig | None = None,
        *,
        return_attention: bool = False,
        on_done: TranslationDone | None = None,  # not called: the worker answers at the end
        wanted: Wanted | None = None,  # not asked: every sentence is translated
    ) -> list[list[Translation]]:
        self.calls.append(list(sentences))
        self.asked_early.append(on_done is not None)
        self.entered.set()
        assert self.release.wait(TIMEOUT)
        if "boom" in sentences:
            raise RuntimeError("the model fell over")
        return [[Translation(text=s.upper(), tokens=[], score=-1.0)] for s in sentences]


def make_worker(translator: FakeTranslator, **kwargs: object) -> BatchingWorker:
    settings: dict[str, object] = {"batching": True, "max_wait": 0.0, "batch_tokens": 1000}
    worker = BatchingWorker(translator, **{**settings, **kwargs})  # type: ignore[arg-type]
    worker.start()
    return worker


def submit(
    worker: BatchingWorker, *texts: str, options: DecodingConfig | None = None
) -> Future[list[list[Translation]]]:
    return worker.submit(
        list(texts), options or DecodingConfig(), attention=False, num_tokens=10 * len(texts)
    )


def texts_of(future: Future[list[list[Translation]]]) -> list[str]:
    return [nbest[0].text for nbest in future.result(TIMEOUT)]


def hold_first_call(translator: FakeTranslator, worker: BatchingWorker) -> Future:
    """Submit one request and keep the worker busy inside its call."""
    translator.release.clear()
    first = submit(worker, "first")
    assert translator.entered.wait(TIMEOUT)
    return first


def test_requests_queued_while_the_model_works_share_the_next_call() -> None:
    translator = FakeTranslator()
    worker = make_worker(translator)
    first = hold_first_call(translator, worker)
    waiting = [submit(worker, f"text {i}", f"more {i}") for i in range(5)]
    translator.release.set()
    assert texts_of(first) == ["FIRST"]
    for i, future in enumerate(waiting):
        assert texts_of(future) == [f"TEXT {i}", f"MORE {i}"]  # each gets its own, in order
    worker.stop(TIMEOUT)
    assert len(translator.calls) == 2  # five requests, one call
    assert translator.calls[1] == [t for i in range(5) for t in (f"text {i}", f"more {i}")]
    assert worker.stats.batches == 2 and worker.stats.requests == 6
    assert worker.stats.largest_batch == 5


def test_a_lone_request_waits_at_most_max_wait_for_company() -> None:
    translator = FakeTranslator()
    worker = make_worker(translator, max_wait=0.3)
    first = submit(worker, "one")
    time.sleep(0.05)
    second = submit(worker, "two")  # within the 300 ms: joins the first
    assert texts_of(first) == ["ONE"] and texts_of(second) == ["TWO"]
    assert translator.calls == [["one", "two"]]
    # Alone, a request waits out max_wait for company, and then no longer.
    started = time.monotonic()
    assert texts_of(submit(worker, "alone")) == ["ALONE"]
    waited = time.monotonic() - started
    worker.stop(TIMEOUT)
    assert 0.3 <= waited < 0.3 + SLACK, waited
    assert translator.calls[1:] == [["alone"]]


class ThreadCountingTranslator(FakeTranslator):
    """Also notes the CPU threads each call searches on."""

    def __init__(self) -> None:
        super().__init__()
        self.cpu_threads: list[int] = []

    def translate_nbest(self, sentences: Sequence[str], *args, **kwargs):  # type: ignore[no-untyped-def]
        self.cpu_threads.append(torch.get_num_threads())
        return super().translate_nbest(sentences, *args, **kwargs)


def test_a_lone_request_is_searched_on_every_model_threads_cpu_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """At low load a request has the machine to itself: two single-threaded model threads give
    it two CPU threads. A request searched while another is gets its model thread's one."""
    translator = ThreadCountingTranslator()
    monkeypatch.setattr(worker_module, "usable_cores", lambda: 2)
    worker = make_worker(translator, workers=2, cpu_threads=1)
    assert texts_of(submit(worker, "alone")) == ["ALONE"]
    deadline = time.monotonic() + TIMEOUT
    while worker._searching and time.monotonic() < deadline:  # answered, not yet counted done
        time.sleep(0.01)
    translator.entered.clear()
    first = hold_first_call(translator, worker)  # alone too, held inside its call
    second = submit(worker, "second")  # the other model thread's, while the first searches
    deadline = time.monotonic() + TIMEOUT
    while len(translator.calls) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    translator.release.set()
    assert texts_of(first) == ["FIRST"] and texts_of(second) == ["SECOND"]
    worker.stop(TIMEOUT)
    assert translator.calls == [["alone"], ["first"], ["second"]]
    assert translator.cpu_threads == [2, 2, 1]


def test_a_lone_request_gets_no_more_threads_than_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    """Four model threads on two cores: a lone request gets two CPU threads, not four."""
    translator = ThreadCountingTranslator()
    monkeypatch.setattr(worker_module, "usable_cores", lambda: 2)
    worker = make_worker(translator, workers=4, cpu_threads=1)
    assert texts_of(submit(worker, "alone")) == ["ALONE"]
    worker.stop(TIMEOUT)
    assert translator.cpu_threads == [2]


def test_different_options_are_translated_in_different_calls() -> None:
    translator = FakeTranslator()
    worker = make_worker(translator)
    first = hold_first_call(translator, worker)
    greedy = submit(worker, "a", options=DecodingConfig(beam_size=1))
    beam = submit(worker, "b", options=DecodingConfig(beam_size=5))
    greedy_too = submit(worker, "c", options=DecodingConfig(beam_size=1))
    translator.release.set()
    assert [texts_of(f) for f in (first, greedy, beam, greedy_too)] == [
        ["FIRST"],
        ["A"],
        ["B"],
        ["C"],
    ]
    worker.stop(TIMEOUT)
    assert sorted(translator.calls[1:]) == [["a", "c"], ["b"]]


def test_a_seeded_sample_is_never_batched_with_others() -> None:
    translator = FakeTranslator()
    worker = make_worker(translator)
    first = hold_first_call(translator, worker)
    sampled = DecodingConfig(sampling=True, seed=7)
    futures = [submit(worker, text, options=sampled) for text in ("x", "y")]
    translator.release.set()
    for future in [first, *futures]:
        future.result(TIMEOUT)
    worker.stop(TIMEOUT)
    assert translator.calls[1:] == [["x"], ["y"]]  # its draws must not depend on the company


def test_a_failing_request_fails_alone() -> None:
    translator = FakeTranslator()
    worker = make_worker(translator)
    first = hold_first_call(translator, worker)
    before = submit(worker, "fine")
    bad = submit(worker, "boom")
    after = submit(worker, "also fine")
    translator.release.set()
    assert texts_of(first) == ["FIRST"]
    assert texts_of(before) == ["FINE"] and texts_of(after) == ["ALSO FINE"]
    with pytest.raises(RuntimeError, match="fell over"):
        bad.result(TIMEOUT)
    # The worker survives: a later request is served.
    assert texts_of(submit(worker, "later")) == ["LATER"]
    worker.stop(TIMEOUT)


def test_batches_keep_to_the_token_budget() -> None:
    translator = FakeTranslator()
    worker = make_worker(translator, batch_tokens=25)  # each text counts 10 tokens here
    first = hold_first_call(translator, worker)
    futures = [submit(worker, f"t{i}") for i in range(5)]
    translator.release.set()
    assert [texts_of(f) for f in futures] == [[f"T{i}"] for i in range(5)]
    first.result(TIMEOUT)
    worker.stop(TIMEOUT)
    assert translator.calls[1:] == [["t0", "t1"], ["t2", "t3"], ["t4"]]


def test_without_batching_every_request_is_one_call() -> None:
    translator = FakeTranslator()
    worker = make_worker(translator, batching=False)
    first = hold_first_call(translator, worker)
    futures = [submit(worker, f"t{i}") for i in range(3)]
    translator.release.set()
    for future in [first, *futures]:
        future.result(TIMEOUT)
    worker.stop(TIMEOUT)
    assert translator.calls == [["first"], ["t0"], ["t1"], ["t2"]]


@pytest.mark.parametrize("workers", [1, 3])
def test_stop_translates_what_is_queued_then_refuses_new_work(workers: int) -> None:
    translator = FakeTranslator()
    worker = make_worker(translator, workers=workers)
    first = hold_first_call(translator, worker)
    queued = [submit(worker, f"t{i}") for i in range(3)]
    stopper = threading.Thread(target=worker.stop, args=(TIMEOUT,))
    stopper.start()
    deadline = time.monotonic() + TIMEOUT
    while not worker.stopping:
        assert time.monotonic() < deadline, "stop() never marked the worker as stopping"
        time.sleep(0.001)
    with pytest.raises(ShuttingDown):
        submit(worker, "too late")
    translator.release.set()
    stopper.join(TIMEOUT)
    assert not stopper.is_alive()
    assert not any(thread.is_alive() for thread in worker._threads)
    assert [texts_of(f) for f in [first, *queued]] == [["FIRST"], ["T0"], ["T1"], ["T2"]]


def test_a_request_whose_client_left_is_skipped() -> None:
    translator = FakeTranslator()
    worker = make_worker(translator)
    first = hold_first_call(translator, worker)
    gone = submit(worker, "gone")
    kept = submit(worker, "kept")
    assert gone.cancel()
    translator.release.set()
    assert texts_of(kept) == ["KEPT"]
    first.result(TIMEOUT)
    worker.stop(TIMEOUT)
    assert translator.calls[1:] == [["kept"]]


def test_two_model_threads_translate_two_batches_at_once() -> None:
    translator = FakeTranslator()
    worker = make_worker(translator, workers=2)
    first = hold_first_call(translator, worker)
    translator.entered.clear()
    second = submit(worker, "second")
    # The other thread starts the second call while the first is still held inside its own.
    assert translator.entered.wait(TIMEOUT)
    assert translator.calls == [["first"], ["second"]]
    translator.release.set()
    assert texts_of(first) == ["FIRST"] and texts_of(second) == ["SECOND"]
    worker.stop(TIMEOUT)
    assert worker.stats.batches == 2 and worker.stats.requests == 2


class AnswersAsItGoes(FakeTranslator):
    """Passes its first sentence on (``on_done``) at once, then holds until released; the
    others are passed on after that. Fails on "boom" (first: at once; later: once released)."""

    def translate_nbest(
        self,
        sentences: Sequence[str],
        options: DecodingConfig | None = None,
        *,
        return_attention: bool = False,
        on_done: TranslationDone | None = None,
        wanted: Wanted | None = None,
    ) -> list[list[Translation]]:
        self.calls.append(list(sentences))
        results = [[Translation(text=s.upper(), tokens=[], score=-1.0)] for s in sentences]
        assert on_done is not None
        if sentences[0] == "boom":
            raise RuntimeError("the model fell over")
        on_done(0, results[0])
        self.entered.set()
        assert self.release.wait(TIMEOUT)
        if "boom" in sentences:
            raise RuntimeError("the model fell over")
        for i in range(1, len(sentences)):
            on_done(i, results[i])
        return results


def test_a_request_is_answered_as_soon_as_its_texts_are_translated() -> None:
    translator = AnswersAsItGoes()
    translator.release.clear()
    worker = make_worker(translator, max_wait=0.3)
    early = submit(worker, "early")
    time.sleep(0.05)
    later = submit(worker, "two", "texts")  # joins the first: one call for both
    assert translator.entered.wait(TIMEOUT)
    # The call is still running: its first text is translated, the second request's are not.
    assert texts_of(early) == ["EARLY"]
    assert not later.done() and worker.stats.batches == 0
    translator.release.set()
    assert texts_of(later) == ["TWO", "TEXTS"]
    worker.stop(TIMEOUT)
    assert translator.calls == [["early", "two", "texts"]]


@pytest.mark.parametrize("workers", [1, 2])
def test_only_one_model_thread_answers_before_the_batch_ends(workers: int) -> None:
    translator = FakeTranslator()
    worker = make_worker(translator, workers=workers)
    assert texts_of(submit(worker, "x")) == ["X"]
    worker.stop(TIMEOUT)
    assert translator.asked_early == [workers == 1]


def test_a_failure_after_an_early_answer_retranslates_only_the_unanswered() -> None:
    translator = AnswersAsItGoes()
    translator.release.clear()
    worker = make_worker(translator, max_wait=0.3)
    early = submit(worker, "early")
    time.sleep(0.05)
    bad = submit(worker, "boom")
    fine = submit(worker, "fine")
    assert texts_of(early) == ["EARLY"]
    translator.release.set()
    with pytest.raises(RuntimeError, match="fell over"):
        bad.result(TIMEOUT)
    assert texts_of(fine) == ["FINE"]
    worker.stop(TIMEOUT)
    assert translator.calls == [["early", "boom", "fine"], ["boom"], ["fine"]]
    # The failed call still answered one request; "fine" was answered alone; "boom" never.
    assert worker.stats.batches == 2 and worker.stats.requests == 2


def test_model_threads_share_out_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker_module.torch, "get_num_threads", lambda: 4)
    assert model_threads("cpu", workers=None, threads=None) == (4, 1)  # one per core
    assert model_threads("cpu", workers=1, threads=None) == (1, 4)
    assert model_threads("cpu", workers=None, threads=2) == (2, 2)
    assert model_threads("cpu", workers=3, threads=3) == (3, 3)  # as asked
    assert model_threads("cpu", workers=None, threads=8) == (1, 8)
    monkeypatch.setattr(worker_module.torch, "get_num_threads", lambda: 16)
    assert model_threads("cpu", workers=None, threads=None) == (4, 4)  # at most 4 by default
    monkeypatch.setattr(worker_module, "check_device", lambda name: torch.device("cuda"))
    assert model_threads("cuda", workers=None, threads=None) == (1, None)  # a GPU: one at a time


class GatedTranslator(FakeTranslator):
    """A call holding one of ``gated`` waits until that sentence's gate is opened (``calls``
    records each call as it ends)."""

    def __init__(self, *gated: str) -> None:
        super().__init__()
        self.gates = {text: threading.Event() for text in gated}
        self.inside = {text: threading.Event() for text in gated}

    def translate_nbest(
        self,
        sentences: Sequence[str],
        options: DecodingConfig | None = None,
        *,
        return_attention: bool = False,
        on_done: TranslationDone | None = None,
        wanted: Wanted | None = None,
    ) -> list[list[Translation]]:
        for text in sentences:
            if text in self.gates:
                self.inside[text].set()
                assert self.gates[text].wait(TIMEOUT)
        return super().translate_nbest(sentences, options, return_attention=return_attention)


def occupy_both_threads(translator: GatedTranslator, worker: BatchingWorker) -> list[Future]:
    futures = []
    for text in ("first", "second"):
        futures.append(submit(worker, text))
        assert translator.inside[text].wait(TIMEOUT)
    return futures


def test_a_thread_takes_only_its_share_of_the_clients() -> None:
    translator = GatedTranslator("first", "second")
    worker = make_worker(translator, workers=2)
    first, second = occupy_both_threads(translator, worker)
    queued = [submit(worker, f"x{i}") for i in range(6)]  # 8 in flight: 4 per thread
    translator.gates["first"].set()  # one thread turns free while the other stays busy
    assert [texts_of(f) for f in queued] == [[f"X{i}"] for i in range(6)]
    translator.gates["second"].set()
    assert texts_of(first) == ["FIRST"] and texts_of(second) == ["SECOND"]
    worker.stop(TIMEOUT)
    # Not all six at once: the other thread's clients are left for it (or for the next batch).
    assert [c for c in translator.calls if c[0].startswith("x")] == [
        ["x0", "x1", "x2", "x3"],
        ["x4", "x5"],
    ]


def test_a_thread_waits_a_little_for_its_share_to_come_back() -> None:
    translator = GatedTranslator("first", "second")
    worker = make_worker(translator, workers=2, fill_wait=20.0)
    first, second = occupy_both_threads(translator, worker)
    queued = submit(worker, "x")  # 3 in flight: a share of 2
    time.sleep(0.5)  # the first call takes 0.5 s: its thread may wait 20 times as long
    translator.gates["first"].set()
    assert texts_of(first) == ["FIRST"]
    again = submit(worker, "again")  # the answered client comes back
    assert texts_of(queued) == ["X"] and texts_of(again) == ["AGAIN"]
    translator.gates["second"].set()
    assert texts_of(second) == ["SECOND"]
    worker.stop(TIMEOUT)
    assert ["x", "again"] in translator.calls


def test_the_fill_wait_ends_when_the_share_does_not_come() -> None:
    translator = GatedTranslator("first", "second")
    worker = make_worker(translator, workers=2, fill_wait=1.0)
    first, second = occupy_both_threads(translator, worker)
    queued = submit(worker, "x")  # a share of 2 that will not be reached
    time.sleep(0.2)
    translator.gates["first"].set()
    assert texts_of(first) == ["FIRST"]
    freed = time.monotonic()
    assert texts_of(queued) == ["X"]
    # The first call took >= 0.2 s, so its thread waited about that long (fill_wait 1.0) for a
    # second client, then translated "x" alone.
    waited = time.monotonic() - freed
    assert 0.15 <= waited < 0.2 + SLACK, waited
    translator.gates["second"].set()
    assert texts_of(second) == ["SECOND"]
    worker.stop(TIMEOUT)
    assert ["x"] in translator.calls


class RecordsOptionalArguments(FakeTranslator):
    """Records the optional arguments each call was given."""

    def __init__(self) -> None:
        super().__init__()
        self.extras: list[dict[str, object]] = []

    def translate_nbest(  # type: ignore[override]
        self, sentences: Sequence[str], options: DecodingConfig | None = None, **kwargs: object
    ) -> list[list[Translation]]:
        self.extras.append({k: v for k, v in kwargs.items() if k not in ("on_done", "wanted")})
        return super().translate_nbest(sentences, options)


def test_prefixes_follow_their_texts_into_a_shared_call() -> None:
    translator = RecordsOptionalArguments()
    worker = make_worker(translator)
    first = hold_first_call(translator, worker)
    options = DecodingConfig()
    plain = worker.submit(["a", "b"], options, attention=False, num_tokens=20)
    steered = worker.submit(
        ["c", "d"], options, attention=False, num_tokens=20, prefixes=["ein", ""]
    )
    translator.release.set()
    for future in (first, plain, steered):
        future.result(TIMEOUT)
    worker.stop(TIMEOUT)
    assert translator.calls[1:] == [["a", "b", "c", "d"]]
    # None: the options' own prefix; each text's prefix at its place in the call.
    assert translator.extras[1:] == [
        {"return_attention": False, "prefixes": [None, None, "ein", ""]}
    ]
    assert translator.extras[0] == {"return_attention": False}  # nothing asked: nothing passed


def test_a_traced_request_is_searched_alone() -> None:
    translator = RecordsOptionalArguments()
    worker = make_worker(translator)
    first = hold_first_call(translator, worker)
    steps: list[object] = []
    others = submit(worker, "x")
    traced = worker.submit(
        ["y"], DecodingConfig(), attention=False, num_tokens=10, observer=steps.append
    )
    translator.release.set()
    for future in (first, others, traced):
        future.result(TIMEOUT)
    worker.stop(TIMEOUT)
    assert sorted(translator.calls[1:]) == [["x"], ["y"]]
    calls = zip(translator.extras, translator.calls, strict=True)
    (traced_call,) = [extras for extras, sentences in calls if sentences == ["y"]]
    assert traced_call["observer"] == steps.append


class HangsUpAfterItsFirstSentence:
    """nmt's real Translator, whose request's client hangs up (cancels the request's future,
    as nmt.serve.texts does) as soon as the first sentence is translated; records which
    sentences were searched."""

    def __init__(self, translator: Translator) -> None:
        self.translator = translator
        self.searched: list[int] = []
        self.request: Future[list[list[Translation]]] | None = None
        self.submitted = threading.Event()

    def translate_nbest(
        self,
        sentences: Sequence[str],
        options: DecodingConfig | None = None,
        *,
        return_attention: bool = False,
        on_done: TranslationDone | None = None,
        wanted: Wanted | None = None,
    ) -> list[list[Translation]]:
        assert self.submitted.wait(TIMEOUT)

        def hang_up(i: int, translations: list[Translation]) -> None:
            self.searched.append(i)
            assert self.request is not None
            self.request.cancel()
            if on_done is not None:
                on_done(i, translations)

        return self.translator.translate_nbest(sentences, options, on_done=hang_up, wanted=wanted)


def test_a_request_cancelled_during_its_call_is_not_searched_further(
    trained_model_dir: Path,
) -> None:
    translator = HangsUpAfterItsFirstSentence(Translator.load(trained_model_dir))
    worker = make_worker(translator)  # type: ignore[arg-type]
    texts = ["the cat sees the dog", "a dog", "the red house is big", "a big cat", "the dog"]
    # A budget below one sentence: each sentence is a batch of its own, searched in turn.
    request = worker.submit(texts, DecodingConfig(max_tokens=1), attention=False, num_tokens=30)
    translator.request = request
    translator.submitted.set()
    worker.stop(TIMEOUT)
    assert request.cancelled()
    assert len(translator.searched) == 1  # the batch under way ended; no later one began
    assert worker.stats.cut_short == 1 and worker.stats.requests == 0
    assert worker.stats.in_flight == 0


class RecordsCpuThreads(FakeTranslator):
    """Notes PyTorch's intra-op thread count in the model thread that calls it."""

    def translate_nbest(  # type: ignore[override]
        self, sentences: Sequence[str], options: DecodingConfig | None = None, **kwargs: object
    ) -> list[list[Translation]]:
        self.cpu_threads = torch.get_num_threads()
        return super().translate_nbest(sentences, options, **kwargs)  # type: ignore[arg-type]


def test_each_model_thread_sets_its_own_cpu_threads() -> None:
    # The server's main thread stays at one (nmt.serve.app.serve); a model thread must not
    # inherit that, nor OpenMP's default for a new thread.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        translator = RecordsCpuThreads()
        worker = make_worker(translator, cpu_threads=3)
        assert texts_of(submit(worker, "a")) == ["A"]
        worker.stop(TIMEOUT)
        assert torch.get_num_threads() == 1  # this thread's own setting is left alone
    finally:
        torch.set_num_threads(before)
    assert translator.cpu_threads == 3
