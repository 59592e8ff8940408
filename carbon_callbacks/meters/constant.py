"""Meters of fixed power: for tests, what-if runs and documentation examples."""

from __future__ import annotations

import time
from typing import Callable, Mapping

from ..errors import ConfigError
from .base import ComponentEnergy, Meter

__all__ = ["ConstantPower"]


def _check_power(name: str, value: float) -> float:
    value = float(value)
    if not value >= 0.0 or value == float("inf"):
        raise ConfigError(f"{name}={value!r} is not allowed: give a finite power in watts >= 0")
    return value


class ConstantPower(Meter):
    """Fixed power per accelerator (``device_w``, one per rank) and per host (``host_w``, once per node).

    Energy is power x wall time since :meth:`start`. Host power is booked under ``cpu``, the optional
    ``ram_w`` under ``ram``. Every component is labelled ``constant`` and estimated.

    Args:
        device_w: watts of this rank's accelerator; 0 for none.
        host_w: watts of the host (CPU, board), counted once per node.
        ram_w: watts of memory, counted once per node.
        clock: monotonic clock in seconds (tests may pass a fake one).
    """

    name = "constant"

    def __init__(
        self,
        device_w: float = 0.0,
        host_w: float = 0.0,
        ram_w: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.device_w = _check_power("device_w", device_w)
        self.host_w = _check_power("host_w", host_w)
        self.ram_w = _check_power("ram_w", ram_w)
        self.clock = clock
        self._t0: float | None = None

    def start(self) -> None:
        if self._t0 is None:
            self._t0 = self.clock()

    def read(self) -> Mapping[str, ComponentEnergy]:
        self.start()
        assert self._t0 is not None
        elapsed_s = max(0.0, self.clock() - self._t0)
        return {
            "gpu": ComponentEnergy(self.device_w * elapsed_s, "constant", True, "device"),
            "cpu": ComponentEnergy(self.host_w * elapsed_s, "constant", True, "host"),
            "ram": ComponentEnergy(self.ram_w * elapsed_s, "constant", True, "host"),
        }

    def describe(self) -> Mapping[str, str]:
        return {
            "meter": self.name,
            "device_w": repr(self.device_w),
            "host_w": repr(self.host_w),
            "ram_w": repr(self.ram_w),
        }
