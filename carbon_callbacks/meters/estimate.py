"""Estimates for machines without sensors: CPU time x per-core power, resident memory x W/GB."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable, Mapping

from ..errors import ConfigError
from .base import ComponentEnergy, Meter
from .cpu_power import CpuPower, cpu_power_per_core

try:
    import resource
except ImportError:  # not on Windows: os.times() and no RSS
    resource = None  # type: ignore[assignment]

__all__ = ["RAM_W_PER_GB", "RAM_SOURCE", "EstimateMeter", "process_cpu_s", "process_rss_bytes"]

#: Green Algorithms ``referenceValues.csv`` memoryPower (Lannelongue et al. 2021), watts per GB (1e9 bytes).
RAM_W_PER_GB = 0.3725
RAM_SOURCE = "Green Algorithms memoryPower 0.3725 W/GB"
_BYTES_PER_GB = 1e9


def process_cpu_s(include_children: bool = False) -> float:
    """User + system CPU seconds of all threads of this process (plus its waited-for children if asked).

    Uses getrusage (microsecond resolution) where available, else os.times (clock ticks).
    """
    if resource is None:
        times = os.times()
        return times.user + times.system + (times.children_user + times.children_system if include_children else 0.0)
    own = resource.getrusage(resource.RUSAGE_SELF)
    cpu_s = own.ru_utime + own.ru_stime
    if include_children:
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu_s += kids.ru_utime + kids.ru_stime
    return cpu_s


def process_rss_bytes() -> int:
    """Resident memory of this process now (/proc/self/statm); peak RSS (getrusage) where /proc is absent."""
    try:
        resident_pages = int(Path("/proc/self/statm").read_text().split()[1])
        return resident_pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, IndexError, ValueError, AttributeError):
        if resource is None:
            return 0
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux


def _check_nonneg(name: str, value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    if not value >= 0.0 or value == float("inf"):
        raise ConfigError(f"{name}={value!r} is not allowed: give a finite number >= 0 or None")
    return value


class EstimateMeter(Meter):
    """CPU energy = this process's CPU seconds x watts per core; RAM energy = resident GB x W/GB x time.

    Both components have scope ``process`` (every rank counts its own process) and are labelled estimated,
    with methods ``cpu_time_x_tdp`` and ``ram_w_per_gb``. RAM is integrated with the trapezoid rule between
    successive :meth:`read` calls (window boundaries), so short memory peaks between reads are missed.

    Args:
        cpu_w_per_core: watts per busy core; None looks up the CPU model in codecarbon's TDP table
            (TDP / physical cores per socket), else uses Green Algorithms' 12 W/core.
        ram_w_per_gb: watts per GB of resident memory.
        include_children: add the CPU time of child processes that have been waited for (e.g. finished
            DataLoader workers); live children are not seen.
        cpuinfo_path: where the CPU model name is read.
        table_path: a ``Name,TDP`` CSV replacing codecarbon's table.
        clock: monotonic clock in seconds; cpu_s/rss_bytes: probes (tests may pass fakes).
    """

    name = "estimate"

    def __init__(
        self,
        cpu_w_per_core: float | None = None,
        ram_w_per_gb: float = RAM_W_PER_GB,
        include_children: bool = False,
        cpuinfo_path: str | Path = "/proc/cpuinfo",
        table_path: str | Path | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cpu_w_per_core = _check_nonneg("cpu_w_per_core", cpu_w_per_core)
        self.ram_w_per_gb = float(_check_nonneg("ram_w_per_gb", ram_w_per_gb))  # type: ignore[arg-type]
        self.include_children = bool(include_children)
        self.cpuinfo_path = str(cpuinfo_path)
        self.table_path = None if table_path is None else str(table_path)
        self.clock = clock
        self._power: CpuPower | None = None
        self._cpu0_s: float | None = None
        self._t_last = 0.0
        self._rss_last = 0
        self._ram_j = 0.0

    @property
    def power(self) -> CpuPower:
        """The per-core power used and its provenance (looked up once)."""
        if self._power is None:
            if self.cpu_w_per_core is not None:
                self._power = CpuPower(self.cpu_w_per_core, "given as cpu_w_per_core")
            else:
                self._power = cpu_power_per_core(self.cpuinfo_path, self.table_path)
        return self._power

    def start(self) -> None:
        if self._cpu0_s is None:
            self.power  # noqa: B018 - look the constant up before the first window, not inside it
            self._cpu0_s = process_cpu_s(self.include_children)
            self._t_last = self.clock()
            self._rss_last = process_rss_bytes()

    def read(self) -> Mapping[str, ComponentEnergy]:
        self.start()
        assert self._cpu0_s is not None
        cpu_j = max(0.0, process_cpu_s(self.include_children) - self._cpu0_s) * self.power.w_per_core
        now, rss = self.clock(), process_rss_bytes()
        mean_gb = (self._rss_last + rss) / 2 / _BYTES_PER_GB
        self._ram_j += self.ram_w_per_gb * mean_gb * max(0.0, now - self._t_last)
        self._t_last, self._rss_last = now, rss
        return {
            "cpu": ComponentEnergy(cpu_j, "cpu_time_x_tdp", True, "process"),
            "ram": ComponentEnergy(self._ram_j, "ram_w_per_gb", True, "process"),
        }

    def describe(self) -> Mapping[str, str]:
        power = self.power
        return {
            "meter": self.name,
            "cpu_model": power.model or "unknown",
            "cpu_w_per_core": f"{power.w_per_core:g}",
            "cpu_w_per_core_source": power.source,
            "cpu_time": "user+sys of this process" + (" and waited-for children" if self.include_children else ""),
            "ram_w_per_gb": f"{self.ram_w_per_gb:g}",
            "ram_w_per_gb_source": RAM_SOURCE if self.ram_w_per_gb == RAM_W_PER_GB else "given as ram_w_per_gb",
            "ram_basis": "resident memory of this process, trapezoid between reads",
        }
