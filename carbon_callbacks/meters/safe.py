"""A meter wrapper that never raises into the training loop: it degrades to a labelled estimate."""

from __future__ import annotations

import time
import warnings
from typing import Callable, Mapping

from ..errors import MeterError
from .base import ComponentEnergy, Meter

__all__ = ["DegradingMeter"]


class DegradingMeter(Meter):
    """Wraps a meter; after its first read failure, extrapolates each component at its average power so far.

    The extrapolated components keep their scope, are labelled ``<method>+extrapolated`` and estimated, and one
    warning says what failed. A failure before any good read extrapolates at 0 W and says so.
    ``failure`` holds the reason once degraded (for the ledger's ``note`` column).
    """

    def __init__(self, inner: Meter, clock: Callable[[], float] = time.monotonic) -> None:
        self.inner = inner
        self.clock = clock
        self.name = inner.name  # type: ignore[misc]
        self.failure: str | None = None
        self._t0: float | None = None
        self._last: Mapping[str, ComponentEnergy] = {}
        self._t_last = 0.0

    def start(self) -> None:
        if self.failure is None:
            try:
                self.inner.start()
            except MeterError as exc:
                self._degrade(exc)
        if self._t0 is None:
            self._t0 = self.clock()
            self._t_last = self._t0

    def read(self) -> Mapping[str, ComponentEnergy]:
        self.start()
        if self.failure is None:
            try:
                self._last = dict(self.inner.read())
                self._t_last = self.clock()
                return self._last
            except MeterError as exc:
                self._degrade(exc)
        return self._extrapolate()

    def _degrade(self, exc: MeterError) -> None:
        power = "their average power so far" if self._last else "0 W (no good reading yet)"
        self.failure = f"{self.inner.name} meter failed ({exc}); extrapolated at {power} since"
        warnings.warn(f"carbon_callbacks: {self.failure}. Training continues.", RuntimeWarning, stacklevel=3)

    def _extrapolate(self) -> Mapping[str, ComponentEnergy]:
        assert self._t0 is not None
        span_s = self._t_last - self._t0
        extra_s = self.clock() - self._t_last
        out = {}
        for key, last in self._last.items():
            power_w = last.energy_j / span_s if span_s > 0 else 0.0
            method = last.method if last.method.endswith("+extrapolated") else last.method + "+extrapolated"
            out[key] = ComponentEnergy(last.energy_j + power_w * extra_s, method, True, last.scope)
        return out

    def close(self) -> None:
        self.inner.close()

    def describe(self) -> Mapping[str, str]:
        return self.inner.describe()
