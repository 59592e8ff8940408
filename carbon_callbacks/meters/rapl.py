"""RAPL energy counters through the Linux powercap tree (Intel, and AMD since Linux 5.8).

Domains are hierarchical: ``core``/``uncore`` lie inside ``package-N`` and ``psys`` contains the packages, so
``cpu`` = sum of packages (psys only where no package exists) and ``ram`` = sum of ``dram`` domains. The
``intel-rapl-mmio`` zones duplicate the package domain and are ignored.

Counters wrap at ``max_energy_range_uj`` (about 262 kJ on many parts: ~20 min at 200 W). A wrap is only seen
if the counter is read at least once per wrap period, so :meth:`RaplMeter.start` starts one daemon thread that
calls :meth:`RaplMeter.poll` every ``max_energy_range / 1000 W / 2`` seconds (two minutes for 262 kJ), and
every :meth:`RaplMeter.read` polls too.
"""

from __future__ import annotations

import re
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from ..errors import ConfigError, MeterError
from ._poller import Poller
from .base import ComponentEnergy, Meter

__all__ = ["DEFAULT_ROOT", "POWER_CEILING_W", "RaplDomain", "rapl_domains", "rapl_unavailable_reason", "RaplMeter"]

DEFAULT_ROOT = "/sys/class/powercap"
#: Upper bound of one domain's power used to derive the sampling interval from the wrap range.
POWER_CEILING_W = 1000.0
_ZONE = re.compile(r"^intel-rapl(:\d+)+$")
_PERMISSION_HINT = (
    "energy_uj is readable by root only since CVE-2020-8694 (PLATYPUS); run as root, or make it readable, "
    "e.g. `sudo chmod o+r /sys/class/powercap/intel-rapl:*/energy_uj` (sysfsutils: "
    "`mode class/powercap/intel-rapl:0/energy_uj = 0444`); in a container also mount /sys/class/powercap"
)
_warned: set[str] = set()


@dataclass(frozen=True)
class RaplDomain:
    """One powercap zone: its directory, kernel name (``package-0``, ``dram``, ``psys``...) and wrap range."""

    path: Path
    name: str
    max_energy_range_uj: int

    @property
    def energy_file(self) -> Path:
        return self.path / "energy_uj"


def _read_int(path: Path) -> int:
    """An integer sysfs file. Raises OSError or ValueError."""
    return int(path.read_text().strip())


def rapl_domains(root: str | Path = DEFAULT_ROOT) -> list[RaplDomain]:
    """The zones whose energy counts toward ``cpu`` (packages, or psys without packages) and ``ram`` (dram).

    Raises:
        OSError, ValueError: a zone's name or range file cannot be read.
    """
    root = Path(root)
    zones = sorted(p for p in root.iterdir() if _ZONE.match(p.name)) if root.is_dir() else []
    found = [RaplDomain(z, (z / "name").read_text().strip(), _read_int(z / "max_energy_range_uj")) for z in zones]
    packages = [d for d in found if d.name.startswith("package")]
    cpu = packages or [d for d in found if d.name == "psys"]
    return cpu + [d for d in found if d.name == "dram"]


def rapl_unavailable_reason(root: str | Path = DEFAULT_ROOT) -> str | None:
    """Why RAPL cannot be read under ``root`` (None when it can). Never raises."""
    root = Path(root)
    if not root.is_dir():
        return f"no {root} (virtual machine, container without the mount, or not Linux)"
    try:
        domains = rapl_domains(root)
    except (OSError, ValueError) as exc:
        return f"cannot read the RAPL zones under {root}: {exc}"
    if not domains:
        return f"no package, psys or dram zone under {root} (virtual machines expose none)"
    for domain in domains:
        try:
            _read_int(domain.energy_file)
        except PermissionError:
            return f"cannot read {domain.energy_file}: permission denied; {_PERMISSION_HINT}"
        except (OSError, ValueError) as exc:
            return f"cannot read {domain.energy_file}: {exc}"
    return None


def warn_unavailable_once(reason: str) -> None:
    """One RuntimeWarning per distinct reason per process (e.g. a permission problem the user can fix)."""
    if reason not in _warned:
        _warned.add(reason)
        warnings.warn(f"carbon_callbacks: RAPL unavailable: {reason}", RuntimeWarning, stacklevel=3)


class RaplMeter(Meter):
    """Measured CPU-package and DRAM energy of the host (scope ``host``, method ``rapl``).

    Args:
        root: the powercap directory.
        sample_interval_s: seconds between background polls that catch counter wraps; None derives it from
            the smallest ``max_energy_range_uj`` (range / 1000 W / 2); 0 disables the thread (then call
            :meth:`poll` or :meth:`read` at least once per wrap period yourself).
    """

    name = "rapl"

    def __init__(self, root: str | Path = DEFAULT_ROOT, sample_interval_s: float | None = None) -> None:
        if sample_interval_s is not None and not float(sample_interval_s) >= 0:
            raise ConfigError(f"sample_interval_s={sample_interval_s!r} is not allowed: give seconds >= 0 or None")
        self.root = str(root)
        self.sample_interval_s = None if sample_interval_s is None else float(sample_interval_s)
        self.domains: list[RaplDomain] = []
        self._live_lock: threading.Lock | None = None
        self._live_poller: Poller | None = None
        self._last_uj: dict[str, int] | None = None
        self._total_uj: dict[str, int] = {}

    @classmethod
    def is_available(cls, root: str | Path = DEFAULT_ROOT) -> bool:
        return rapl_unavailable_reason(root) is None

    def start(self) -> None:
        if self._last_uj is not None and self._live_lock is not None:
            return
        reason = rapl_unavailable_reason(self.root)
        if reason is not None:
            raise MeterError(f"RAPL unavailable: {reason}")
        self.domains = rapl_domains(self.root)
        self._live_lock = threading.Lock()
        if self._last_uj is None:  # a fresh meter; an unpickled one keeps its totals and re-bases below
            self._total_uj = {str(d.path): 0 for d in self.domains}
        self._last_uj = self._read_raw()
        self._start_thread()

    def _interval_s(self) -> float:
        if self.sample_interval_s is not None:
            return self.sample_interval_s
        smallest_j = min(d.max_energy_range_uj for d in self.domains) / 1e6
        return max(1.0, smallest_j / POWER_CEILING_W / 2)

    def _start_thread(self) -> None:
        interval_s = self._interval_s()
        if interval_s <= 0:
            return
        # a MeterError ends the thread; the next read() raises the same error in the training thread
        self._live_poller = Poller(self.poll, lambda: interval_s, "carbon-callbacks-rapl")

    def _read_raw(self) -> dict[str, int]:
        try:
            return {str(d.path): _read_int(d.energy_file) for d in self.domains}
        except PermissionError as exc:
            raise MeterError(f"RAPL read failed: {exc}; {_PERMISSION_HINT}") from exc
        except (OSError, ValueError) as exc:
            raise MeterError(f"RAPL read failed: {exc}") from exc

    def poll(self) -> None:
        """Read every counter once and add the increments, counting at most one wrap per domain."""
        if self._live_lock is None or self._last_uj is None:
            raise MeterError("RaplMeter.poll() called before start()")
        with self._live_lock:
            now = self._read_raw()
            for domain in self.domains:
                key = str(domain.path)
                delta = now[key] - self._last_uj[key]
                if delta < 0:
                    delta += domain.max_energy_range_uj
                self._total_uj[key] += delta
            self._last_uj = now

    def read(self) -> Mapping[str, ComponentEnergy]:
        self.start()
        self.poll()
        out: dict[str, ComponentEnergy] = {}
        for domain in self.domains:
            comp = "ram" if domain.name == "dram" else "cpu"
            joules = self._total_uj[str(domain.path)] / 1e6
            prev = out[comp].energy_j if comp in out else 0.0
            out[comp] = ComponentEnergy(prev + joules, "rapl", False, "host")
        return out

    def close(self) -> None:
        if self._live_poller is not None:
            self._live_poller.stop()
            self._live_poller = None

    def describe(self) -> Mapping[str, str]:
        return {
            "meter": self.name,
            "rapl_root": self.root,
            "rapl_domains": ", ".join(f"{d.path.name}={d.name}" for d in self.domains) or "not started",
            "rapl_sample_interval_s": f"{self._interval_s():g}" if self.domains else "not started",
        }
