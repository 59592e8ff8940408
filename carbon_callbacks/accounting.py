"""The framework-free core of the trackers: windows -> measurements -> priced ledger rows -> running totals.

Adapters (Lightning, SpeechBrain) only wire hooks to this class and reduce measurements across ranks.
"""

from __future__ import annotations

import math
import functools
import platform
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping

from ._version import __version__
from .carbon import DEFAULT_PUE, DEFAULT_PUE_MEANING, Intensity, check_pue, resolve_intensity
from .errors import ConfigError
from .ledger import LedgerRow, LedgerWriter
from .measurement import JOULES_PER_KWH, Measurement, WindowRecorder
from .meters.base import COMPONENTS, Meter

__all__ = ["Totals", "EnergyAccountant"]


@dataclass
class Totals:
    """Running sums (never averages), so attempts, ranks and runs merge by addition."""

    it_energy_kwh: float = 0.0
    energy_kwh: float = 0.0
    co2_kg: float = 0.0
    cost: float = 0.0
    duration_s: float = 0.0
    by_stage_kwh: dict[str, float] = field(default_factory=dict)
    by_component_kwh: dict[str, float] = field(default_factory=dict)

    def add(self, row: LedgerRow) -> None:
        """Add one ledger row."""
        self.it_energy_kwh += row.it_energy_kwh
        self.energy_kwh += row.energy_kwh
        self.co2_kg += row.co2_kg
        self.cost += row.cost
        self.duration_s += row.duration_s
        self.by_stage_kwh[row.stage] = self.by_stage_kwh.get(row.stage, 0.0) + row.energy_kwh
        for comp in COMPONENTS:
            kwh = getattr(row, f"{comp}_kwh")
            self.by_component_kwh[comp] = self.by_component_kwh.get(comp, 0.0) + kwh

    def to_dict(self) -> dict[str, Any]:
        """Plain values for a checkpoint."""
        return {
            "it_energy_kwh": self.it_energy_kwh,
            "energy_kwh": self.energy_kwh,
            "co2_kg": self.co2_kg,
            "cost": self.cost,
            "duration_s": self.duration_s,
            "by_stage_kwh": dict(self.by_stage_kwh),
            "by_component_kwh": dict(self.by_component_kwh),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Totals":
        """Inverse of :meth:`to_dict`; missing keys default to zero (older checkpoints)."""
        return cls(
            it_energy_kwh=float(data.get("it_energy_kwh", 0.0)),
            energy_kwh=float(data.get("energy_kwh", 0.0)),
            co2_kg=float(data.get("co2_kg", 0.0)),
            cost=float(data.get("cost", 0.0)),
            duration_s=float(data.get("duration_s", 0.0)),
            by_stage_kwh={k: float(v) for k, v in dict(data.get("by_stage_kwh", {})).items()},
            by_component_kwh={k: float(v) for k, v in dict(data.get("by_component_kwh", {})).items()},
        )


class EnergyAccountant:
    """Meters windows, prices them in CO2 (and money), keeps totals and writes the ledger.

    Everything that can be checked without the trainer is checked here, at construction.

    Args:
        meter: a :class:`~carbon_callbacks.meters.base.Meter`, or ``"auto"`` (best available per component,
            chosen at :meth:`setup` when the device is known).
        intensity: g CO2-eq/kWh as a number, an :class:`Intensity`, or the path of an hourly CSV.
        country: ISO 3166 alpha-3 or alpha-2 code (bundled yearly data); exclusive with ``intensity``/``region``.
        region: cloud region as ``provider:region`` (e.g. ``gcp:europe-west9``).
        pue: facility power usage effectiveness, >= 1.0, recorded on every row.
        price_per_kwh: optional price of facility energy, for the cost column.
        run_id: identifies the run across attempts (resumes); a random one by default.
        heartbeat_s: seconds between writes of the open window, so a crash loses at most this much accounting.
    """

    def __init__(
        self,
        meter: Meter | str = "auto",
        *,
        intensity: float | Intensity | str | Path | None = None,
        country: str | None = None,
        region: str | None = None,
        pue: float = DEFAULT_PUE,
        price_per_kwh: float | None = None,
        run_id: str | None = None,
        heartbeat_s: float = 60.0,
    ) -> None:
        if not isinstance(meter, (Meter, str)) or (isinstance(meter, str) and meter != "auto"):
            raise ConfigError(f"meter={meter!r} is not allowed: give a Meter instance or 'auto'")
        self.meter_spec = meter
        self.intensity = resolve_intensity(intensity=intensity, country=country, region=region)
        self.pue = check_pue(pue)
        if price_per_kwh is not None and not _as_float(price_per_kwh) >= 0:
            raise ConfigError(f"price_per_kwh={price_per_kwh!r} is not allowed: give a number >= 0 or None")
        self.price_per_kwh = None if price_per_kwh is None else float(price_per_kwh)
        if not _as_float(heartbeat_s) > 0:
            raise ConfigError(f"heartbeat_s={heartbeat_s!r} is not allowed: give a number of seconds > 0")
        self.heartbeat_s = float(heartbeat_s)
        self.run_id = run_id or uuid.uuid4().hex[:12]
        self.attempt = 0
        self.totals = Totals()
        self.rows_written = 0
        self.world_size = 1
        self.num_nodes = 1
        self._recorder: WindowRecorder | None = None
        self._writer: LedgerWriter | None = None
        self._last_heartbeat = 0.0

    # -- lifecycle -------------------------------------------------------------------------------------
    def setup(
        self,
        *,
        directory: str | Path | None,
        is_writer: bool = True,
        host: bool = True,
        device: str | None = None,
        world_size: int = 1,
        num_nodes: int = 1,
        sync: Callable[[], None] | None = None,
    ) -> None:
        """Create the meter and, on the writer rank, check the ledger directory (ConfigError if not writable)."""
        meter = self.meter_spec
        if isinstance(meter, str):
            from .meters.auto import auto_meter

            meter = auto_meter(device=device)
        meter.start()  # an unreadable meter the user chose fails here, at setup, not hours into training
        self.meter = meter
        self._recorder = WindowRecorder(meter, host=host, sync=sync)
        self._writer = LedgerWriter(directory) if (is_writer and directory is not None) else None
        self.world_size, self.num_nodes = int(world_size), int(num_nodes)

    @property
    def recorder(self) -> WindowRecorder:
        if self._recorder is None:
            raise RuntimeError("EnergyAccountant.setup() must be called before metering")
        return self._recorder

    @property
    def ledger_path(self) -> Path | None:
        return self._writer.path if self._writer else None

    def start_attempt(self) -> LedgerRow | None:
        """Begin an attempt (after any checkpoint was restored): number it, book what a crash left behind.

        Returns the ``aborted`` row recovered from a crashed attempt, if any. Energy of earlier attempts that
        the restored totals do not include (windows after the last checkpoint) is added to the totals once.
        """
        if self._writer is None:
            self.attempt += 1
            return None
        rows = [r for r in self._writer.existing_rows() if r.run_id == self.run_id]
        aborted = self._writer.take_open_window()
        if aborted is not None and aborted.run_id != self.run_id:
            aborted = None
        if aborted is not None:
            self._writer.append(aborted)
            rows.append(aborted)
        self.attempt = max([r.attempt for r in rows] + [self.attempt]) + 1  # after the crashed attempt's row
        for row in rows[self.rows_written :]:
            self.totals.add(row)
        self.rows_written = len(rows)
        self._writer.write_metadata(self.metadata())
        return aborted

    def close(self) -> None:
        """Release the meter. Safe to call twice."""
        if self._recorder is not None:
            self._recorder.close()
        if self._writer is not None:
            self._writer.clear_open_window()

    # -- windows ---------------------------------------------------------------------------------------
    def begin(self, stage: str) -> None:
        """Open the window ``stage`` on this rank."""
        self.recorder.begin(stage)

    def end(self, stage: str) -> Measurement:
        """Close the window ``stage`` on this rank (reduce it across ranks before :meth:`record`)."""
        return self.recorder.end(stage)

    def is_open(self, stage: str) -> bool:
        return self._recorder is not None and self._recorder.is_open(stage)

    def heartbeat_due(self) -> bool:
        """``heartbeat_s`` have passed since the last saved open window (cheap: called at every step)."""
        return time.monotonic() - self._last_heartbeat >= self.heartbeat_s

    def heartbeat_can_fall_due(self, last_epoch_s: float | None) -> bool:
        """Whether a save of the open window can fall due before the coming epoch writes its own rows.

        Only the writer rank saves. An epoch that follows one shorter than half of ``heartbeat_s`` is expected to
        end, and write its rows, before a save is due: a crash then loses less than ``heartbeat_s`` without any
        save. ``last_epoch_s`` is None when it is unknown (the first epoch of a run).
        """
        return self._writer is not None and (last_epoch_s is None or last_epoch_s >= self.heartbeat_s / 2)

    def heartbeat(self, stage: str, epoch: int, global_step: int = 0, force: bool = False) -> None:
        """On the writer rank, at most every ``heartbeat_s``, save the open window for crash recovery.

        A crash allows no reduction across ranks, so the saved window scales this rank's device energy by the
        world size and its host energy by the node count, and says so.
        """
        if not (force or self.heartbeat_due()):
            return
        if self._writer is None or not self.is_open(stage):
            return
        self._last_heartbeat = time.monotonic()
        m = self.recorder.snapshot(stage)
        scale_device = self.world_size
        scale_host = self.num_nodes
        energy = {
            k: v * (scale_host if k != "gpu" else scale_device) for k, v in m.energy_j.items()
        }
        note = "crashed: last saved state of the window"
        if self.world_size > 1:
            note += f"; rank 0 reading scaled to {self.world_size} ranks / {self.num_nodes} nodes"
        scaled = Measurement(
            m.stage, m.start_utc, m.end_utc, m.duration_s, energy, m.methods, True, self.world_size,
            "; ".join(n for n in (m.note, note) if n),
        )
        self._writer.write_open_window(self.make_row(scaled, epoch=epoch, global_step=global_step, status="aborted"))

    # -- pricing and recording ---------------------------------------------------------------------------
    def make_row(
        self,
        m: Measurement,
        *,
        epoch: int,
        metrics: Mapping[str, float] | None = None,
        global_step: int = 0,
        status: str = "complete",
    ) -> LedgerRow:
        """Price a (reduced) measurement into a ledger row, without recording it."""
        it_kwh = m.it_energy_kwh
        energy_kwh = it_kwh * self.pue
        g_per_kwh = self.intensity.mean_g_per_kwh(m.start_utc, m.end_utc)
        comp = {k: m.energy_j.get(k, 0.0) / JOULES_PER_KWH for k in COMPONENTS}
        return LedgerRow(
            run_id=self.run_id,
            attempt=self.attempt,
            epoch=int(epoch),
            stage=m.stage,
            status=status,
            start_utc=m.start_utc.isoformat(),
            end_utc=m.end_utc.isoformat(),
            duration_s=m.duration_s,
            it_energy_kwh=it_kwh,
            pue=self.pue,
            energy_kwh=energy_kwh,
            intensity_g_per_kwh=g_per_kwh,
            co2_kg=energy_kwh * g_per_kwh / 1000.0,
            cost=energy_kwh * (self.price_per_kwh or 0.0),
            world_size=self.world_size,
            ranks=m.ranks,
            gpu_kwh=comp["gpu"],
            cpu_kwh=comp["cpu"],
            ram_kwh=comp["ram"],
            gpu_method=m.methods.get("gpu", ""),
            cpu_method=m.methods.get("cpu", ""),
            ram_method=m.methods.get("ram", ""),
            estimated=m.estimated,
            global_step=int(global_step),
            metrics=dict(metrics or {}),
            note=m.note,
        )

    def record(
        self,
        m: Measurement,
        *,
        epoch: int,
        metrics: Mapping[str, float] | None = None,
        global_step: int = 0,
        status: str = "complete",
        sync: bool = True,
    ) -> LedgerRow:
        """Price a measurement already reduced across ranks, add it to the totals and append it to the ledger.

        Call on every rank with the same reduced measurement so totals agree; only the writer rank writes.
        ``sync=False`` leaves the flush to disk to the next synced row (for rows written together).
        """
        row = self.make_row(m, epoch=epoch, metrics=metrics, global_step=global_step, status=status)
        self.totals.add(row)
        self.rows_written += 1
        if self._writer is not None:
            self._writer.append(row, sync=sync)
            self._writer.clear_open_window()
        return row

    # -- state -------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Plain values (loadable with ``torch.load(weights_only=True)``)."""
        return {
            "run_id": self.run_id,
            "attempt": self.attempt,
            "rows_written": self.rows_written,
            "totals": self.totals.to_dict(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue the accounting of a checkpointed run (call before :meth:`start_attempt`)."""
        self.run_id = str(state.get("run_id", self.run_id))
        self.attempt = int(state.get("attempt", self.attempt))
        self.rows_written = int(state.get("rows_written", 0))
        self.totals = Totals.from_dict(state.get("totals", {}))

    def metadata(self) -> dict[str, Any]:
        """Run metadata written beside the ledger."""
        meter = getattr(self, "meter", None)
        return {
            "run_id": self.run_id,
            "attempt": self.attempt,
            "written_utc": datetime.now(timezone.utc).isoformat(),
            "meter": dict(meter.describe()) if meter is not None else {},
            "intensity_source": self.intensity.source,
            "intensity_basis": self.intensity.basis,
            "pue": self.pue,
            "pue_meaning": DEFAULT_PUE_MEANING if self.pue == DEFAULT_PUE else f"PUE {self.pue:g} given by the user",
            "price_per_kwh": self.price_per_kwh,
            "world_size": self.world_size,
            "num_nodes": self.num_nodes,
            "host": platform.node(),
            "platform": "-".join((platform.system(), platform.release(), platform.machine())),  # no libc scan
            "python": platform.python_version(),
            "versions": dict(_versions()),
        }


def _as_float(value: Any) -> float:
    """``float(value)``, or NaN (which fails every range check) when it is not a number."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


#: (distribution, module) whose versions go into the run metadata, when the module is imported
_VERSIONED = (("torch", "torch"), ("lightning", "lightning"), ("speechbrain", "speechbrain"),
              ("nvidia-ml-py", "pynvml"), ("codecarbon", "codecarbon"))


@functools.lru_cache(maxsize=1)
def _versions() -> dict[str, str]:
    """Versions of this package and of the imported frameworks (``__version__``, else the installed metadata)."""
    from importlib import metadata

    out = {"carbon_callbacks": __version__}
    for dist, module_name in _VERSIONED:
        module = sys.modules.get(module_name)
        version = getattr(module, "__version__", None)
        if version is None:
            try:
                version = metadata.version(dist)
            except metadata.PackageNotFoundError:
                continue
        out[dist] = str(version)
    return out
