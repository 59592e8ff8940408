"""The one background thread a polling backend may start: lazily, as a daemon, stopped cleanly."""

from __future__ import annotations

import threading
from typing import Callable

from ..errors import MeterError

__all__ = ["Poller"]


class Poller:
    """Calls ``sample()`` every ``interval_s()`` seconds on one daemon thread until :meth:`stop`.

    A :class:`MeterError` from ``sample`` ends the thread and is kept in :attr:`error`, for the training thread's
    next ``read()`` to raise (so failures surface in one place, where the adapters degrade gracefully).
    """

    def __init__(self, sample: Callable[[], None], interval_s: Callable[[], float], name: str) -> None:
        self.error: MeterError | None = None
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, args=(sample, interval_s), name=name, daemon=True)
        self.thread.start()

    def _loop(self, sample: Callable[[], None], interval_s: Callable[[], float]) -> None:
        while not self._stop.wait(interval_s()):
            try:
                sample()
            except MeterError as exc:
                self.error = exc
                return

    def stop(self) -> None:
        """Stop the thread and wait for it (at most 5 s). Idempotent."""
        self._stop.set()
        if self.thread is not threading.current_thread():
            self.thread.join(timeout=5.0)
