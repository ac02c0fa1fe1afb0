"""Model processes: a Translator's searches in child processes, on a CPU.

With several model threads (nmt.serve.worker), each hands its batches to a process of its own
that holds the same Translator.

Why processes: a beam-search step is many small operations with Python between them, and the
threads of one process take turns at the interpreter lock for that Python, with each other and
with the event loop that parses the requests. On 2 cores, two one-thread processes side
by side translated 198.2 sentences/s where two threads of one process translated 179.8
(benchmarks/parallel_batches.py), and the server answered 50 clients 186.4 sentences/s against
149.6 with threads (benchmarks/serve_load.py; docs/serve.md).

The weights are not copied: the Translator is sent once through torch.multiprocessing, which
moves its tensors into shared memory, so every process maps the same pages. The children are
forked from multiprocessing's fork server, which has imported torch and nothing else (a fork of
the server itself would inherit its threads mid-flight): they share its pages of torch, where
spawned children each held their own (with two children, the processes summed to 542 MB of
proportional set size after 400 sentences, against 726 MB spawned). After that, calls
and answers travel pickled by the standard library between this process and the children it
started. The call is the Translator's own (``translate_nbest``), its callbacks cross back as
messages: the child asks ``wanted(i)`` and waits for the answer, and passes each finished
sentence to ``on_done``; its log records are logged by the parent, as its own.

A child ignores SIGINT and SIGTERM: Ctrl-C in a terminal reaches the whole process group, and
the server first finishes the requests in flight, then stops its model processes. A child also
exits when the pipe to its parent closes (the parent died). One that dies (killed, out of
memory) fails the call it was running with :class:`ModelProcessDied`, and a new one is started
for the next call.

The weights need room in /dev/shm. Where it is too small (a container's default is 64 MB:
``docker run --shm-size``), or a child cannot start for any other reason,
:class:`ModelProcessFailed` says why, and the server keeps its searches in its own process
(nmt.serve.worker).
"""

from __future__ import annotations

import logging
import pickle
import shutil
import signal
import traceback
from collections.abc import Sequence
from contextlib import suppress
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

import torch
import torch.multiprocessing

from nmt.config import DecodingConfig
from nmt.decoding.translator import Translation, TranslationDone, Translator, Wanted

log = logging.getLogger(__name__)

START_TIMEOUT = 120.0  # seconds for a child to import torch and receive the Translator
STOP_TIMEOUT = 10.0  # seconds for a child to exit when told, before it is killed


class ModelProcessDied(RuntimeError):
    """The model process exited while it was translating."""


class ModelProcessFailed(RuntimeError):
    """A model process could not be started."""


def runs_apart(translator: object, workers: int) -> bool:
    """Should ``workers`` model threads of ``translator`` search in model processes? For nmt's
    own engine on a CPU, with several model threads: they would take turns at the interpreter
    lock. One model thread, whatever its CPU threads, searches as fast in the server's process
    (faster: no pipe, and its weights in its own memory; docs/serve.md). CTranslate2 searches
    outside the interpreter lock already, and a GPU runs one batch at a time."""
    nmt_on_cpu = type(translator) is Translator and translator.device.type == "cpu"
    return nmt_on_cpu and workers > 1


class ModelProcess:
    """A child process holding ``translator``, searching with ``threads`` CPU threads; has
    the Translator's ``translate_nbest`` (without ``observer``: a beam-search trace stays in
    the process that reads it)."""

    def __init__(self, translator: Translator, *, threads: int, name: str) -> None:
        self.translator, self.threads, self.name = translator, threads, name
        self._process: BaseProcess | None = None
        self._connection: Connection | None = None
        self._ready = False  # the child has the Translator and waits for calls

    # -- the parent's side -------------------------------------------------------------------

    def launch(self) -> None:
        """Start the child, forked from the fork server (which imports torch the first time:
        seconds); launch several, then :meth:`connect` each, so that they unpickle at once."""
        try:
            context = torch.multiprocessing.get_context("forkserver")
        except ValueError as exc:  # Windows has none
            raise ModelProcessFailed(f"no fork server on this platform: {exc}") from exc
        context.set_forkserver_preload([__name__])  # torch, for every child to share
        parent_end, child_end = context.Pipe()
        process = context.Process(
            target=_serve_calls,
            args=(child_end, self.threads, logging.getLogger().getEffectiveLevel()),
            name=self.name,
            daemon=True,
        )
        try:
            process.start()
        except OSError as exc:  # no fork server (its socket, a process limit)
            parent_end.close()
            raise ModelProcessFailed(f"{self.name} could not be started: {exc}") from exc
        finally:
            child_end.close()
        self._process, self._connection = process, parent_end

    def connect(self) -> None:
        """Send the Translator (its tensors through shared memory) and wait until the child
        has it."""
        connection = self._live_connection()
        try:
            connection.send(self.translator)  # torch's pickler: tensors go by shared memory
        except NotImplementedError as exc:  # a tensor without storage (an opaque one)
            self._kill()
            raise ModelProcessFailed(f"the model cannot be sent to a model process: {exc}") from exc
        except RuntimeError as exc:  # a tensor could not be moved into shared memory
            self._kill()
            raise ModelProcessFailed(
                f"the model's weights do not fit in shared memory ({_shared_memory_free()}): {exc}"
            ) from exc
        try:
            if not connection.poll(START_TIMEOUT):
                raise ModelProcessFailed(f"{self.name} did not start within {START_TIMEOUT:.0f} s")
            answer = self._receive()
        except (EOFError, OSError) as exc:
            raise ModelProcessFailed(f"{self.name} did not start ({self._exit_status()})") from exc
        if answer != ("ready",):
            raise ModelProcessFailed(f"{self.name} did not start: {answer!r}")
        self._ready = True

    def start(self) -> None:
        self.launch()
        self.connect()

    def stop(self) -> None:
        """Tell the child to exit; kill it if it has not within STOP_TIMEOUT (or if it never
        got the Translator: it would not understand)."""
        if self._process is None or self._connection is None:
            return
        if not self._ready:
            self._kill()
            return
        with suppress(OSError):  # it is gone already
            self._send(None)
        self._process.join(STOP_TIMEOUT)
        self._kill()  # if it is still there; closes the pipe either way

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def translate_nbest(
        self,
        sentences: Sequence[str],
        options: DecodingConfig | None = None,
        *,
        return_attention: bool = False,
        on_done: TranslationDone | None = None,
        wanted: Wanted | None = None,
        **kwargs: Any,
    ) -> list[list[Translation]]:
        """The Translator's ``translate_nbest``, searched in the child."""
        if "observer" in kwargs:
            raise TypeError("an observer sees the search in its own process: not in a child's")
        if self._connection is None:
            self.start()  # the last restart failed: try again (ModelProcessFailed if it fails)
        call = (list(sentences), options, return_attention, kwargs, wanted is not None)
        try:
            outcome = self._exchange(call, on_done, wanted)
        except (EOFError, OSError) as exc:
            how = self._exit_status()
            self._restart()
            raise ModelProcessDied(
                f"{self.name} exited ({how}) during a batch of {len(sentences)} sentences; a "
                "new one takes the next batch"
            ) from exc
        except BaseException:
            # A callback failed, or this thread was interrupted, in the middle of the exchange:
            # the child's next message would answer the wrong question.
            self._restart()
            raise
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def _exchange(
        self, call: tuple[Any, ...], on_done: TranslationDone | None, wanted: Wanted | None
    ) -> list[list[Translation]] | Exception:
        """Send one call; answer the child's questions until its results (or its error)."""
        self._send(("translate", call, on_done is not None))
        while True:
            kind, *payload = self._receive()
            if kind == "wanted":
                assert wanted is not None
                self._send(wanted(payload[0]))
            elif kind == "done":
                assert on_done is not None
                on_done(*payload)
            elif kind == "log":  # the child's warnings, through this process's logging
                name, level, text = payload
                logging.getLogger(name).log(level, "%s", text)
            elif kind == "failed":
                error, trace = payload
                error.add_note(f"in the model process {self.name}:\n{trace}")
                return error
            else:
                return payload[0]

    def _kill(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.join()
        if self._connection is not None:
            self._connection.close()
        self._process = self._connection = None
        self._ready = False

    def _restart(self) -> None:
        self._kill()
        log.warning("restarting %s", self.name)
        try:
            self.start()
        except ModelProcessFailed:
            log.exception("%s could not be restarted; the next batch tries again", self.name)

    def _exit_status(self) -> str:
        if self._process is None:
            return "not started"
        self._process.join(STOP_TIMEOUT)
        code = self._process.exitcode
        if code is None:
            return "its pipe closed"
        if code < 0:
            return f"killed by {signal.Signals(-code).name}"
        return f"exit status {code}"

    def _live_connection(self) -> Connection:
        if self._connection is None:
            raise RuntimeError(f"{self.name} is not running")
        return self._connection

    def _send(self, message: object) -> None:
        self._live_connection().send_bytes(pickle.dumps(message, pickle.HIGHEST_PROTOCOL))

    def _receive(self) -> Any:
        # Only our own child writes to this pipe.
        return pickle.loads(self._live_connection().recv_bytes())


# -- the child's side ---------------------------------------------------------------------------


def _serve_calls(connection: Connection, threads: int, log_level: int) -> None:
    """The child's main loop: one call at a time until told to stop or the parent is gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    torch.set_num_threads(threads)

    def send(message: object) -> None:
        connection.send_bytes(pickle.dumps(message, pickle.HIGHEST_PROTOCOL))

    class ToParent(logging.Handler):
        """Log records go to the parent, which logs them as it logs its own (a truncated
        source's warning names its line there)."""

        def emit(self, record: logging.LogRecord) -> None:
            send(("log", record.name, record.levelno, record.getMessage()))

    def receive() -> Any:
        return pickle.loads(connection.recv_bytes())

    def ask_wanted(i: int) -> bool:
        send(("wanted", i))
        answer: bool = receive()
        return answer

    def pass_on(i: int, translations: list[Translation]) -> None:
        send(("done", i, translations))

    try:
        translator: Translator = connection.recv()
        send(("ready",))
        logging.basicConfig(level=log_level, handlers=[ToParent()], force=True)
        while (message := receive()) is not None:
            _, (sentences, options, attention, kwargs, asks_wanted), passes_on = message
            try:
                results = translator.translate_nbest(
                    sentences,
                    options,
                    return_attention=attention,
                    on_done=pass_on if passes_on else None,
                    wanted=ask_wanted if asks_wanted else None,
                    **kwargs,
                )
            except Exception as exc:  # the parent raises it where the call was made
                send(("failed", _portable(exc), traceback.format_exc()))
            else:
                send(("translated", results))
    except (EOFError, OSError):
        return  # the parent is gone


def _shared_memory_free() -> str:
    try:
        free = shutil.disk_usage("/dev/shm").free
    except OSError:
        return "no /dev/shm"
    return f"/dev/shm has {free / 2**20:.0f} MiB free; a container's is set by --shm-size"


def _portable(exc: Exception) -> Exception:
    """``exc`` if it survives pickling (its class and message), else a RuntimeError that
    names it."""
    try:
        copy = pickle.loads(pickle.dumps(exc))
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")
    return exc if isinstance(copy, type(exc)) else RuntimeError(f"{type(exc).__name__}: {exc}")
