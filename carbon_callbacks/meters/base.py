"""The meter interface: cumulative energy in joules per component, with how each number was obtained."""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import ClassVar, Literal, Mapping

__all__ = ["COMPONENTS", "MEASURED_METHODS", "Scope", "ComponentEnergy", "Meter", "is_measured_method"]

#: Component kinds, fixed so that readings of several ranks, epochs and runs add up key by key.
COMPONENTS: tuple[str, ...] = ("gpu", "cpu", "ram")

#: Methods that read a hardware sensor; every other method (and any ``+extrapolated`` one) is an estimate.
MEASURED_METHODS: tuple[str, ...] = ("nvml_counter", "nvml_power_integral", "rapl")


def is_measured_method(method: str) -> bool:
    """True when a ledger method label names a hardware measurement (not an estimate)."""
    return method in MEASURED_METHODS


#: ``device``: this rank's accelerator. ``process``: this process only (e.g. CPU time).
#: ``host``: the whole node, read once per node (local rank 0) to avoid double counting.
Scope = Literal["device", "process", "host"]


@dataclass(frozen=True)
class ComponentEnergy:
    """Cumulative energy of one component since the meter started.

    Attributes:
        energy_j: joules since ``Meter.start()``.
        method: how it was obtained, e.g. ``nvml_counter``, ``nvml_power_integral``, ``rapl``,
            ``cpu_time_x_tdp``, ``ram_w_per_gb``, ``constant``.
        estimated: False only when a hardware sensor measured it.
        scope: ``device``, ``process`` or ``host`` (see :data:`Scope`).
    """

    energy_j: float
    method: str
    estimated: bool
    scope: Scope


class Meter(abc.ABC):
    """A source of cumulative energy per component.

    Subclasses acquire hardware handles in :meth:`start` (never in ``__init__``, so a meter pickles
    cleanly for ``ddp_spawn``), translate every backend error into :class:`~carbon_callbacks.errors.MeterError`
    in one place, and report energy in joules.
    """

    #: Short backend name recorded in the ledger metadata.
    name: ClassVar[str] = "meter"

    @classmethod
    def is_available(cls) -> bool:
        """True when this backend can read on this machine. Never raises."""
        return True

    def start(self) -> None:
        """Acquire handles and set the zero of the cumulative counters. Idempotent."""

    @abc.abstractmethod
    def read(self) -> Mapping[str, ComponentEnergy]:
        """Cumulative energy per component (keys from :data:`COMPONENTS`) since :meth:`start`.

        Raises:
            MeterError: the backend could not read.
        """

    def close(self) -> None:
        """Release handles and stop any polling thread. Idempotent."""

    def describe(self) -> Mapping[str, str]:
        """Hardware facts for the run metadata (model names, counts, sources of constants)."""
        return {"meter": self.name}

    def __getstate__(self) -> dict:
        """Pickle configuration only: live handles are reacquired by :meth:`start`."""
        state = dict(self.__dict__)
        for key in [k for k in state if k.startswith("_live")]:
            state[key] = None
        return state
