"""Model processes: a child searches exactly as the Translator does here, its callbacks and
errors cross back, it maps the parent's weights instead of copying them, Ctrl-C does not reach
it, and one that dies fails only its call."""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import time
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
import torch

from nmt.config import DecodingConfig
from nmt.decoding.processes import ModelProcess, ModelProcessDied, runs_apart
from nmt.decoding.shortlist import build_for_model
from nmt.decoding.trace import BeamTrace
from nmt.decoding.translator import Translation, Translator
from nmt.errors import NmtError
from nmt.models import packed
from nmt.models.packed import PackedLinear
from nmt.serve.worker import BatchingWorker
from tests.serve.app_client import client_for
from tests.serve.test_worker import FakeTranslator

SENTENCES = ["the dog eats", "", "big red cat sees small blue dog", "a cat", "the bird runs"]
TIMEOUT = 120.0


@pytest.fixture(autouse=True)
def one_thread_here() -> Iterator[None]:
    """The children search on one thread, and so does this process while it compares: on some
    CPUs (an AMD EPYC) a few float32 sums (MKL's GEMM at some row counts, the flash attention
    kernel) round otherwise on two threads, which moves a score's last digits."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model_process(translator: Translator) -> Iterator[ModelProcess]:
    process = ModelProcess(translator, threads=1, name="test-model")
    process.start()
    yield process
    process.stop()


def fields(translation: Translation) -> tuple[object, ...]:
    attention = translation.attention
    return (
        translation.text,
        translation.tokens,
        translation.score,
        translation.token_log_probs,
        translation.alignment,
        None if attention is None else attention.tolist(),
    )


def test_a_model_process_translates_as_the_translator_does(
    translator: Translator, model_process: ModelProcess
) -> None:
    options = DecodingConfig(beam_size=4, nbest=2)
    kwargs = {"return_alignment": True, "prefixes": [None, None, None, "eine", None]}
    here = translator.translate_nbest(SENTENCES, options, return_attention=True, **kwargs)
    there = model_process.translate_nbest(SENTENCES, options, return_attention=True, **kwargs)
    assert [[fields(t) for t in nbest] for nbest in there] == [
        [fields(t) for t in nbest] for nbest in here
    ]
    assert any(t.attention is not None for nbest in there for t in nbest)


def test_packed_int8_and_shortlisted_translators_search_there_as_here(
    trained_model_dir: Path,
    toy_corpus: Path,
    tmp_path: Path,
    every_layer_int8: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Packed float32 layers travel as their plain weights and int8 ones as their int8 values,
    and are packed again (neither oneDNN's nor fbgemm's packed weights survive shared memory:
    before, a packed model, every model the size people deploy, never reached its model
    processes); a shortlist travels as it is."""
    model_dir = tmp_path / "model"
    shutil.copytree(trained_model_dir, model_dir)
    build_for_model(model_dir, toy_corpus, per_source=2, frequent=3)
    sources = (toy_corpus / "test.en").read_text(encoding="utf-8").splitlines()[:20]
    monkeypatch.setattr(packed, "min_width", lambda: 1)  # pack the toy model's narrow layers
    every_layer_packed = Translator.load(model_dir)
    assert isinstance(every_layer_packed.model.generator, PackedLinear)  # type: ignore[attr-defined]
    for translator in (
        every_layer_packed,
        Translator.load(model_dir, int8=True),
        Translator.load(model_dir, int8=True, shortlist=True),
    ):
        process = ModelProcess(translator, threads=1, name="variant")
        process.start()
        try:
            there = process.translate_nbest(sources)
        finally:
            process.stop()
        here = translator.translate_nbest(sources)
        assert [[fields(t) for t in n] for n in there] == [[fields(t) for t in n] for n in here]


def test_wanted_and_on_done_are_answered_here(
    translator: Translator, model_process: ModelProcess
) -> None:
    def run(engine: Translator | ModelProcess) -> tuple[list[list[Translation]], dict[int, str]]:
        done: dict[int, str] = {}
        results = engine.translate_nbest(
            SENTENCES,
            on_done=lambda i, translations: done.__setitem__(i, translations[0].text),
            wanted=lambda i: i != 2,  # sentence 2's client hung up
        )
        return results, done

    here, done_here = run(translator)
    there, done_there = run(model_process)
    assert there[2] == [] and 2 not in done_there  # never searched, never passed on
    assert [[t.text for t in nbest] for nbest in there] == [[t.text for t in n] for n in here]
    assert done_there == done_here and set(done_there) == {0, 1, 3, 4}


def test_the_child_maps_the_parents_weights(
    translator: Translator, model_process: ModelProcess
) -> None:
    assert model_process.pid is not None
    shared = 0
    for line in Path(f"/proc/{model_process.pid}/maps").read_text().splitlines():
        # torch names its shared segments after the process that made them: this one.
        if f"/torch_{os.getpid()}_" in line:
            start, end = (int(a, 16) for a in line.split()[0].split("-"))
            shared += end - start
    weights = sum(p.numel() * p.element_size() for p in translator.model.parameters())
    assert shared >= weights > 0


def test_an_error_in_the_child_is_raised_here_with_its_traceback(
    translator: Translator, model_process: ModelProcess
) -> None:
    with pytest.raises(NmtError) as here:
        translator.translate_nbest(["a cat"], prefixes=["eine", "ein"])
    with pytest.raises(NmtError) as there:
        model_process.translate_nbest(["a cat"], prefixes=["eine", "ein"])
    assert str(there.value) == str(here.value)
    assert "in the model process test-model" in there.value.__notes__[0]
    assert "Traceback" in there.value.__notes__[0]
    assert model_process.translate_nbest(["a cat"])[0][0].text == translator.translate(["a cat"])[0]


def test_the_childs_warnings_are_logged_here(
    translator: Translator, model_process: ModelProcess, caplog: pytest.LogCaptureFixture
) -> None:
    """A source longer than the model takes is truncated with a warning naming its line: the
    child's log record is logged by this process, through its own logging."""
    assert translator.max_positions is not None
    long = " ".join(["big red cat"] * translator.max_positions)
    with caplog.at_level(logging.WARNING, logger="nmt"):
        there = model_process.translate_nbest(["a cat", long], first_line=7)
    assert there[1][0].truncated
    warnings = [r for r in caplog.records if "more than the model's limit" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].getMessage().startswith("line 8: ")
    assert warnings[0].name == "nmt.decoding.translator"


def test_ctrl_c_does_not_reach_the_child(
    translator: Translator, model_process: ModelProcess
) -> None:
    pid = model_process.pid
    assert pid is not None
    os.kill(pid, signal.SIGINT)  # what a terminal sends the whole process group
    os.kill(pid, signal.SIGTERM)
    assert model_process.translate_nbest(["a cat"])[0][0].text == translator.translate(["a cat"])[0]
    assert model_process.pid == pid


def test_a_child_that_dies_fails_its_call_and_is_replaced(translator: Translator) -> None:
    process = ModelProcess(translator, threads=1, name="doomed")
    process.start()
    try:
        first = process.pid
        assert first is not None

        def kill_it(i: int) -> bool:  # asked while the child waits for the answer
            os.kill(first, signal.SIGKILL)
            return True

        with pytest.raises(ModelProcessDied, match=re.escape("doomed exited (killed by SIGKILL)")):
            process.translate_nbest(SENTENCES, wanted=kill_it)
        assert process.pid not in (None, first)
        assert process.translate_nbest(["a cat"])[0][0].text == translator.translate(["a cat"])[0]

        def fail(i: int, translations: list[Translation]) -> None:
            raise RuntimeError("a callback fell over")

        second = process.pid
        with pytest.raises(RuntimeError, match="a callback fell over"):
            process.translate_nbest(SENTENCES, on_done=fail)
        # The exchange was cut short: a new child, which answers the next call, not the last.
        assert process.pid not in (None, second)
        assert process.translate_nbest(["a cat"])[0][0].text == translator.translate(["a cat"])[0]
    finally:
        process.stop()
    assert process.pid is None


def test_without_room_in_shared_memory_the_worker_searches_here(
    trained_model_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A container's /dev/shm is 64 MB unless it is given more: a model that does not fit
    there is searched in the server's process, and the log says why and what to change."""
    translator = Translator.load(trained_model_dir)  # tensors of its own, not shared yet

    def no_room(storage: torch.UntypedStorage) -> None:
        raise RuntimeError("unable to allocate shared memory(shm): No space left on device (28)")

    monkeypatch.setattr(torch.UntypedStorage, "_share_fd_cpu_", no_room)
    worker = BatchingWorker(
        translator, batching=True, max_wait=0.0, batch_tokens=1000, workers=2, processes=True
    )
    with caplog.at_level(logging.WARNING, logger="nmt.serve.worker"):
        worker.start()
    try:
        assert worker._processes == []
        future = worker.submit(["a cat"], translator.default_options, attention=False, num_tokens=3)
        answer = future.result(TIMEOUT)[0][0].text
    finally:
        worker.stop(TIMEOUT)
    assert answer == translator.translate(["a cat"])[0]
    assert "do not fit in shared memory" in caplog.text and "--shm-size" in caplog.text


def test_only_nmts_own_engine_on_a_cpu_runs_apart(
    translator: Translator, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert runs_apart(translator, 2)
    assert not runs_apart(FakeTranslator(), 2)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    assert not runs_apart(translator, 1)  # one model thread, on two CPU threads: here


def test_a_worker_with_model_processes_answers_as_one_without(translator: Translator) -> None:
    texts = [f"{a} {b} {c}" for a in ("the", "a") for b in ("dog", "cat", "bird") for c in "xyz"]
    expected = translator.translate(texts)
    worker = BatchingWorker(
        translator, batching=True, max_wait=0.01, batch_tokens=1000, workers=2, processes=True
    )
    worker.start()
    children = [process.pid for process in worker._processes]
    try:
        futures: list[Future[list[list[Translation]]]] = [
            worker.submit([text], translator.default_options, attention=False, num_tokens=4)
            for text in texts
        ]
        trace = BeamTrace()  # a trace is searched here, where it is read
        traced = worker.submit(
            ["the dog eats"],
            translator.default_options,
            attention=False,
            num_tokens=4,
            observer=trace,
        )
        got = [future.result(TIMEOUT)[0][0].text for future in futures]
        assert traced.result(TIMEOUT)[0][0].text == translator.translate(["the dog eats"])[0]
    finally:
        worker.stop(TIMEOUT)
    assert got == expected
    assert trace.steps  # the observer saw the search: it ran in this process
    assert len(children) == 2 and all(pid is not None for pid in children)
    assert not any(Path(f"/proc/{pid}").exists() for pid in children)  # stopped with the worker


def test_a_lone_request_is_searched_here_a_batch_in_a_model_process(
    translator: Translator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At low load a model process only adds its pipe: a lone request, while no other thread
    searches, stays in this process (with one CPU thread a model thread); a batch goes to the
    model process."""
    calls: list[int] = []
    real = ModelProcess.translate_nbest

    def counted(self: ModelProcess, sentences: list[str], *args: Any, **kwargs: Any) -> Any:
        calls.append(len(sentences))
        return real(self, sentences, *args, **kwargs)

    monkeypatch.setattr(ModelProcess, "translate_nbest", counted)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    worker = BatchingWorker(
        translator, batching=True, max_wait=0.2, batch_tokens=1000, workers=1, processes=True
    )
    worker.start()
    texts = ["the dog eats", "a cat", "big red cat sees small blue dog"]
    try:
        lone = worker.submit([texts[0]], translator.default_options, attention=False, num_tokens=4)
        lone_text = lone.result(TIMEOUT)[0][0].text
        assert calls == []  # searched here
        batch = [
            worker.submit([text], translator.default_options, attention=False, num_tokens=4)
            for text in texts
        ]
        batch_texts = [future.result(TIMEOUT)[0][0].text for future in batch]
    finally:
        worker.stop(TIMEOUT)
    assert calls == [3]  # the three requests, one call in the model process
    assert lone_text == translator.translate([texts[0]])[0]
    assert batch_texts == translator.translate(texts)


def test_a_batch_whose_child_died_is_searched_again_in_a_new_one(translator: Translator) -> None:
    worker = BatchingWorker(
        translator, batching=True, max_wait=0.2, batch_tokens=1000, workers=1, processes=True
    )
    worker.start()
    try:
        first = worker._processes[0].pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        deadline = time.monotonic() + TIMEOUT
        while "State:\tZ" not in _status(first) and Path(f"/proc/{first}").exists():
            assert time.monotonic() < deadline
            time.sleep(0.01)
        texts = ["the dog eats", "a cat", "big red cat sees small blue dog"]
        futures = [
            worker.submit([text], translator.default_options, attention=False, num_tokens=4)
            for text in texts
        ]
        got = [future.result(TIMEOUT)[0][0].text for future in futures]
        replaced = worker._processes[0].pid
    finally:
        worker.stop(TIMEOUT)
    assert got == translator.translate(texts)  # each request searched again, alone
    assert replaced not in (None, first)
    assert worker.stats.batches >= 3


def _status(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return ""


def test_the_app_uses_model_processes_as_the_settings_say(
    translator: Translator, trained_model_dir: Path
) -> None:
    for processes in (True, False):
        with client_for(translator, trained_model_dir, workers=2, model_processes=processes) as c:
            worker = c.app.state.worker  # type: ignore[attr-defined]
            assert len(worker._processes) == (2 if processes else 0)
            answer = c.post("/v1/translate", json={"texts": ["the dog eats"]})
            assert (
                answer.json()["translations"][0]["text"]
                == translator.translate(["the dog eats"])[0]
            )
            assert c.get("/v1/model").json()["server"]["model_processes"] is processes


def test_serve_keeps_its_main_thread_at_one_cpu_thread(
    trained_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # OpenMP's teams: once this thread had loaded the model on two threads, a model thread's
    # own two ran at a quarter of their speed (docs/serve.md).
    import uvicorn

    from nmt.serve.app import serve
    from nmt.serve.limits import ServeSettings

    seen: dict[str, Any] = {}

    def run(app: Any, **_: object) -> None:
        seen["main"] = torch.get_num_threads()
        seen["worker"] = app.state.worker

    monkeypatch.setattr(uvicorn, "run", run)
    before = torch.get_num_threads()
    try:
        serve([trained_model_dir], threads=2, settings=ServeSettings(workers=1))
    finally:
        torch.set_num_threads(before)
    assert seen["main"] == 1
    assert seen["worker"].cpu_threads == 2
    assert not seen["worker"]._processes  # one model thread on two CPU threads: here
