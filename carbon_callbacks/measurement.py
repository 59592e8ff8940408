"""Named windows of training time and the frozen measurement each one yields."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Callable, Mapping, Sequence

from .meters.base import COMPONENTS, ComponentEnergy, Meter
from .meters.safe import DegradingMeter

__all__ = ["Measurement", "WindowRecorder", "JOULES_PER_KWH"]

JOULES_PER_KWH = 3.6e6
_CLOCK_JUMP_S = 2.0


@dataclass(frozen=True)
class Measurement:
    """Energy of one window (an epoch's train stage, its validation stage, a test run).

    Stores sums, not averages: measurements of several ranks merge by addition (:meth:`merged`).

    Attributes:
        stage: window name (``train``, ``validate``, ``test``, ``predict``, ...).
        start_utc, end_utc: UTC bounds; ``end_utc - start_utc == duration_s`` (monotonic clock).
        duration_s: seconds, from the monotonic clock.
        energy_j: joules per component (keys of :data:`~carbon_callbacks.meters.base.COMPONENTS`).
        methods: how each component was obtained.
        estimated: True if any component is an estimate.
        ranks: how many ranks' readings are summed here.
        note: what went wrong, if anything (meter failure, clock jump); empty otherwise.
    """

    stage: str
    start_utc: datetime
    end_utc: datetime
    duration_s: float
    energy_j: Mapping[str, float]
    methods: Mapping[str, str]
    estimated: bool
    ranks: int = 1
    note: str = ""

    @property
    def it_energy_j(self) -> float:
        """Joules of all components (IT energy, before PUE)."""
        return float(sum(self.energy_j.values()))

    @property
    def it_energy_kwh(self) -> float:
        """kWh of all components (IT energy, before PUE)."""
        return self.it_energy_j / JOULES_PER_KWH

    def merged(self, other: "Measurement") -> "Measurement":
        """The sum of two measurements of the same window on different ranks."""
        energy = {k: self.energy_j.get(k, 0.0) + other.energy_j.get(k, 0.0) for k in COMPONENTS}
        methods = {k: _join(self.methods.get(k), other.methods.get(k)) for k in COMPONENTS}
        return replace(
            self,
            start_utc=min(self.start_utc, other.start_utc),
            end_utc=max(self.end_utc, other.end_utc),
            duration_s=max(self.duration_s, other.duration_s),
            energy_j=energy,
            methods={k: v for k, v in methods.items() if v},
            estimated=self.estimated or other.estimated,
            ranks=self.ranks + other.ranks,
            note="; ".join(n for n in (self.note, other.note) if n),
        )

    def to_vector(self) -> list[float]:
        """Numbers to all-reduce with SUM across ranks: joules per component, estimated flag, ranks."""
        return [self.energy_j.get(k, 0.0) for k in COMPONENTS] + [float(self.estimated), float(self.ranks)]

    def with_reduced(self, vector: Sequence[float]) -> "Measurement":
        """This rank's measurement with the energies and counts of a SUM-reduced :meth:`to_vector`."""
        n = len(COMPONENTS)
        return replace(
            self,
            energy_j={k: float(vector[i]) for i, k in enumerate(COMPONENTS)},
            estimated=bool(vector[n] > 0),
            ranks=int(round(vector[n + 1])),
        )


def _join(a: str | None, b: str | None) -> str:
    """Union of two method labels; ``extrapolated`` stays a suffix (``nvml_counter+extrapolated``)."""
    if not a or a == b:
        return b or ""
    if not b:
        return a
    parts = {*a.split("+"), *b.split("+")} - {""}
    suffix = ["extrapolated"] if "extrapolated" in parts else []
    return "+".join(sorted(parts - set(suffix)) + suffix)


@dataclass
class _Open:
    start_wall: float
    start_mono: float
    start: Mapping[str, ComponentEnergy]
    notes: list[str] = field(default_factory=list)


class WindowRecorder:
    """Begins and ends named windows on one meter; several windows may be open at once.

    Args:
        meter: any meter; it is wrapped so that a failure degrades to a labelled estimate and never raises.
        host: read host-scope components (True on local rank 0 only, so a node's CPU is counted once).
        sync: called before each read, e.g. ``torch.cuda.synchronize``, so queued GPU work is counted.
        wall_clock: seconds since the epoch (UTC); monotonic_clock: seconds, for durations.
    """

    def __init__(
        self,
        meter: Meter,
        *,
        host: bool = True,
        sync: Callable[[], None] | None = None,
        wall_clock: Callable[[], float] = time.time,
        monotonic_clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.meter = meter if isinstance(meter, DegradingMeter) else DegradingMeter(meter, monotonic_clock)
        self.host = host
        self.sync = sync
        self.wall_clock = wall_clock
        self.monotonic_clock = monotonic_clock
        self._open: dict[str, _Open] = {}
        self._started = False

    def _read(self) -> Mapping[str, ComponentEnergy]:
        if not self._started:
            self.meter.start()
            self._started = True
        if self.sync is not None:
            self.sync()
        readings = self.meter.read()
        return {k: r for k, r in readings.items() if self.host or r.scope != "host"}

    def is_open(self, name: str) -> bool:
        """Whether window ``name`` has begun and not ended."""
        return name in self._open

    def begin(self, name: str) -> None:
        """Open window ``name`` (re-opening an open window restarts it)."""
        self._open[name] = _Open(self.wall_clock(), self.monotonic_clock(), self._read())

    def snapshot(self, name: str) -> Measurement:
        """The energy of open window ``name`` so far, without closing it."""
        return self._measure(name, self._open[name])

    def end(self, name: str) -> Measurement:
        """Close window ``name`` and return its measurement.

        Raises:
            KeyError: the window was never begun.
        """
        return self._measure(name, self._open.pop(name))

    def close(self) -> None:
        """Forget open windows and release the meter."""
        self._open.clear()
        self.meter.close()
        self._started = False

    def _measure(self, name: str, window: _Open) -> Measurement:
        now = self._read()
        duration_s = max(0.0, self.monotonic_clock() - window.start_mono)
        wall_s = self.wall_clock() - window.start_wall
        notes = list(window.notes)
        if abs(wall_s - duration_s) > _CLOCK_JUMP_S:
            notes.append(f"wall clock moved {wall_s - duration_s:+.0f} s; duration from the monotonic clock")
        if self.meter.failure:
            notes.append(self.meter.failure)
        energy, methods, estimated = {}, {}, False
        for key, reading in now.items():
            before = window.start.get(key)
            joules = reading.energy_j - (before.energy_j if before else 0.0)
            energy[key] = max(0.0, joules)
            methods[key] = reading.method
            estimated = estimated or reading.estimated
        start = datetime.fromtimestamp(window.start_wall, tz=timezone.utc)
        return Measurement(
            stage=name,
            start_utc=start,
            end_utc=start + timedelta(seconds=duration_s),
            duration_s=duration_s,
            energy_j=energy,
            methods=methods,
            estimated=estimated,
            note="; ".join(notes),
        )
