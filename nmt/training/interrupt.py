"""Ctrl-C and SIGTERM during training: finish the update, save it, then stop.

Schedulers, container runtimes and torchrun send SIGTERM (and Ctrl-C sends SIGINT) some seconds
before they kill. Stopping at once would lose every update since the last checkpoint; instead
the signal is noted, the update under way finishes, a checkpoint of it is written, and training
stops with ``Interrupted``. A rerun resumes from that checkpoint exactly. A second signal stops at
once: whatever the save had written is temporary and is removed on the next start.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any

log = logging.getLogger(__name__)

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(BaseException):
    """Training stopped by a signal; ``checkpoint`` names what was saved (None: nothing new).

    A BaseException like KeyboardInterrupt, so that no ``except Exception`` swallows it.
    """

    def __init__(self, signum: int, checkpoint: str | None) -> None:
        name = signal.Signals(signum).name
        saved = f"saved {checkpoint}" if checkpoint else "nothing saved since the last checkpoint"
        super().__init__(f"stopped by {name}; {saved}; rerun the same command to resume")
        self.exit_status = 128 + signum


class StopSignals:
    """While active, SIGINT and SIGTERM ask training to stop after the current update.

    Before ``arm()`` (while setting up) and for a second signal they stop at once, by raising
    Interrupted. Outside the main thread (where Python cannot set handlers) it does nothing.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self.armed = False
        self._previous: dict[int, Callable[[int, FrameType | None], Any] | int | None] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for signum in SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def arm(self) -> None:
        """From now on a first signal waits for the end of the update."""
        self.armed = True

    @property
    def requested(self) -> float:
        """1.0 once a signal asked to stop, else 0.0 (a number, to be summed over processes)."""
        return float(self.signum is not None)

    def interrupted(self, checkpoint: str | None) -> Interrupted:
        return Interrupted(self.signum or signal.SIGTERM, checkpoint)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if not self.armed or self.signum is not None:
            raise Interrupted(signum, None)
        self.signum = signum
        log.warning(
            "%s: finishing this update and saving a checkpoint; signal again to stop at once",
            signal.Signals(signum).name,
        )
