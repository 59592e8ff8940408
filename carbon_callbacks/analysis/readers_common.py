"""Shared pieces of the readers: GPU power table, intensity resolution and energy inference for logs.

Logs written without our trackers (SpeechBrain ``train_log.txt``, Lightning CSVs, generic CSVs) carry no energy.
:func:`build_run` then infers it, in this order: energy logged by carbon_callbacks (``measured``), epoch duration
x an assumed power (``duration``), one unit per epoch (``equal``: only fractions mean anything).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from .._files import read_limited
from ..carbon import ConstantIntensity, Intensity, check_pue, resolve_intensity
from ..errors import ConfigError, ReadError
from .run import Run

__all__ = [
    "GPU_POWER_W",
    "GPU_POWER_SOURCE",
    "DEFAULT_POWER_W",
    "gpu_power_w",
    "resolve_power_w",
    "resolve_analysis_intensity",
    "intensity_from",
    "EpochTable",
    "build_run",
    "parse_duration_s",
    "read_text",
    "note_units",
]

# Board power (TDP) in watts, from NVIDIA's product pages, as tabulated by the ML CO2 Impact calculator
# (Lacoste et al. 2019, data/gpus.csv) where listed there. A training GPU draws less on average than its TDP
# (anchors.md: V100/A40 never reach TDP), so duration x TDP is an upper estimate.
GPU_POWER_W: dict[str, float] = {
    "h100": 700.0,  # H100 SXM5 (gpus.csv: H100 SXM 700 W)
    "h100 pcie": 350.0,
    "h200": 700.0,
    "a100": 400.0,  # A100 SXM4 80GB (gpus.csv 400 W)
    "a100 pcie": 250.0,  # gpus.csv 250 W
    "v100": 300.0,  # V100 PCIe 16GB / SXM2 32GB (gpus.csv 300 W)
    "v100 sxm2 16gb": 250.0,
    "p100": 250.0,
    "k80": 300.0,
    "t4": 70.0,  # gpus.csv 70 W
    "l4": 72.0,
    "a10": 150.0,
    "a40": 300.0,
    "l40s": 350.0,
    "a6000": 300.0,
    "rtx 2080 ti": 250.0,  # gpus.csv 250 W
    "rtx 3090": 350.0,
    "rtx 4090": 450.0,
}
GPU_POWER_SOURCE = "NVIDIA board power (TDP), as in the ML CO2 Impact calculator's gpus.csv (Lacoste et al. 2019)"
DEFAULT_POWER_W = 200.0  # Green Algorithms' "Any" GPU (TDP_gpu.csv); only used when the user names no power


def _gpu_key(name: str) -> str:
    text = re.sub(r"[^a-z0-9]+", " ", name.lower())
    words = [w for w in text.split() if w not in ("nvidia", "tesla", "geforce", "gpu")]
    return " ".join(words)


def gpu_power_w(name: str) -> float:
    """Board power (W) of a GPU model name such as ``"A100"``, ``"Tesla V100"`` or ``"RTX 3090"``.

    Raises:
        ConfigError: an unknown model (the message lists the known ones).
    """
    key = _gpu_key(name)
    if key in GPU_POWER_W:
        return GPU_POWER_W[key]
    for known in sorted(GPU_POWER_W, key=len, reverse=True):
        if key.startswith(known):
            return GPU_POWER_W[known]
    raise ConfigError(
        f"gpu={name!r} is not in the power table: use one of {', '.join(sorted(GPU_POWER_W))} or give power_w="
    )


def resolve_power_w(power_w: float | None, gpu: str | None, n_gpus: int) -> tuple[float, str]:
    """The assumed average power draw (W) of the whole job and a phrase saying where it comes from."""
    if isinstance(n_gpus, bool) or not isinstance(n_gpus, int) or n_gpus < 1:
        raise ConfigError(f"n_gpus={n_gpus!r} is not allowed: give a whole number >= 1")
    if power_w is not None:
        if gpu is not None:
            raise ConfigError(f"give power_w= or gpu=, not both (got power_w={power_w!r}, gpu={gpu!r})")
        value = float(power_w)
        if not math.isfinite(value) or value <= 0:
            raise ConfigError(f"power_w={power_w!r} is not allowed: give the average draw in watts, > 0")
        return value * n_gpus, f"{value:g} W x {n_gpus} (given)"
    if gpu is not None:
        value = gpu_power_w(gpu)
        return value * n_gpus, f"{gpu} {value:g} W x {n_gpus} ({GPU_POWER_SOURCE})"
    return DEFAULT_POWER_W * n_gpus, (
        f"{DEFAULT_POWER_W:g} W x {n_gpus}, an assumed GPU draw (Green Algorithms' 'any GPU'): "
        "pass power_w= or gpu= for absolute numbers"
    )


def intensity_from(
    intensity: float | Intensity | str | Path | None, country: str | None = None, region: str | None = None
) -> Intensity:
    """An intensity from g/kWh, an :class:`Intensity`, a CSV path or a country code given as ``intensity``."""
    if isinstance(intensity, str) and not intensity.lower().endswith(".csv") and not Path(intensity).is_file():
        if country is not None:
            raise ConfigError(f"give the country once (intensity={intensity!r}, country={country!r})")
        intensity, country = None, intensity
    return resolve_intensity(intensity=intensity, country=country, region=region)


def resolve_analysis_intensity(intensity: float | Intensity | str | Path | None) -> Intensity:
    """The intensity used to price a log that has no CO2 figures (world average when none is given)."""
    if intensity is None:
        try:
            return resolve_intensity()
        except ImportError:  # the country table is optional; keep the documented world figure
            return ConstantIntensity(475.0, source="world average 475 g/kWh (IEA 2019)", basis="average")
    return intensity_from(intensity)


def parse_duration_s(text: str) -> float:
    """Seconds in ``05:33:00``, ``00:16`` (min:s), ``5h33m``, ``1h2m3s``, ``53.2s`` or ``53.2``; NaN if unreadable."""
    text = text.strip()
    if re.fullmatch(r"\d+(:\d{1,2}){1,2}(\.\d+)?", text):
        parts = [float(p) for p in text.split(":")]
        seconds = 0.0
        for part in parts:
            seconds = seconds * 60 + part
        return seconds
    match = re.fullmatch(r"(?:(\d+(?:\.\d+)?)d)?(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?", text)
    if match and any(match.groups()):
        d, h, m, s = (float(g) if g else 0.0 for g in match.groups())
        return ((d * 24 + h) * 60 + m) * 60 + s
    try:
        value = float(text)
    except ValueError:
        return math.nan
    return value if math.isfinite(value) and value >= 0 else math.nan


def read_text(path: Path) -> str:
    """The text of a log file, or :class:`ReadError` naming it (also for files over ``MAX_FILE_BYTES``)."""
    return read_limited(path, "the log").decode("utf-8", errors="replace")


@dataclass
class EpochTable:
    """What a log reader collected, before energy inference: one entry per kept epoch, in epoch order."""

    epochs: list[int] = field(default_factory=list)
    metrics: dict[str, list[float]] = field(default_factory=dict)
    duration_s: list[float] = field(default_factory=list)
    energy_kwh: list[float] = field(default_factory=list)  # logged by carbon_callbacks, NaN where absent
    co2_kg: list[float] = field(default_factory=list)
    stage_kwh: dict[str, list[float]] = field(default_factory=dict)
    start_utc: list[datetime | None] = field(default_factory=list)
    end_utc: list[datetime | None] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    metadata: dict[str, object] = field(default_factory=dict)


def _finite_all(values: Sequence[float]) -> bool:
    return bool(values) and all(math.isfinite(v) and v >= 0 for v in values)


def _fill_durations(table: EpochTable) -> list[float] | None:
    known = [d for d in table.duration_s if math.isfinite(d) and d > 0]
    if not known:
        return None
    if len(known) == len(table.duration_s):
        return list(table.duration_s)
    median = float(np.median(known))
    missing = [e for e, d in zip(table.epochs, table.duration_s) if not (math.isfinite(d) and d > 0)]
    table.notes.append(f"duration of epoch(s) {_span(missing)} unknown: used the median epoch ({median:.0f} s)")
    return [d if math.isfinite(d) and d > 0 else median for d in table.duration_s]


def _span(epochs: Sequence[int]) -> str:
    shown = ", ".join(str(e) for e in epochs[:8])
    return shown + (f" and {len(epochs) - 8} more" if len(epochs) > 8 else "")


def _epoch_intensity(intensity: Intensity, table: EpochTable) -> list[float]:
    fixed = getattr(intensity, "g_per_kwh", None)
    if isinstance(fixed, (int, float)):
        return [float(fixed)] * len(table.epochs)
    out = []
    for start, end in zip(table.start_utc, table.end_utc):
        if start is None or end is None:
            raise ConfigError(
                f"intensity {intensity.source!r} varies in time but this log has no timestamps for every epoch: "
                "give a number (g/kWh) or a country instead"
            )
        out.append(float(intensity.mean_g_per_kwh(start, end)))
    return out


def build_run(
    table: EpochTable,
    *,
    name: str,
    source: Path,
    fmt: str,
    power_w: float | None,
    gpu: str | None,
    n_gpus: int,
    intensity: float | Intensity | str | Path | None,
    pue: float | None,
) -> Run:
    """Turn a log's epoch table into a :class:`Run`, inferring energy and CO2 where the log has none."""
    if not table.epochs:
        raise ReadError(f"{source}: no training epoch found")
    if not any(any(math.isfinite(v) for v in vals) for vals in table.metrics.values()):
        raise ReadError(f"{source}: no metric found in any epoch")
    pue_value = check_pue(1.0 if pue is None else pue)
    power, power_note = resolve_power_w(power_w, gpu, n_gpus)
    source_obj = resolve_analysis_intensity(intensity)
    stage_kwh: dict[str, list[float]] = {}
    if _finite_all(table.energy_kwh):
        basis, it_kwh = "measured", list(table.energy_kwh)
        note = "energy as logged by carbon_callbacks in the training log"
        stage_kwh = {k: v for k, v in table.stage_kwh.items() if _finite_all(v)}
    else:
        if any(math.isfinite(v) for v in table.energy_kwh):
            table.notes.append("energy logged for some epochs only: ignored, estimated for all epochs instead")
        durations = _fill_durations(table)
        if durations is not None:
            basis = "duration"
            it_kwh = [d * power / 3.6e6 for d in durations]
            note = f"estimated: epoch duration x {power_note}"
        else:
            basis, it_kwh = "equal", [1.0] * len(table.epochs)
            note = "equal energy per epoch (nothing known): fractions only, 1 unit per epoch"
    if basis == "measured":  # the tracker already applied its PUE
        if pue is not None:
            table.notes.append(f"pue={pue:g} ignored: the logged energy already includes the tracker's PUE")
        pue_value = float(table.metadata.get("pue", 1.0))  # type: ignore[arg-type]
        energy = list(it_kwh)
    else:
        energy = [e * pue_value for e in it_kwh]
        stage_kwh = {}
    if basis == "measured" and intensity is None and _finite_all(table.co2_kg):
        co2 = list(table.co2_kg)
        g_mean = 1000.0 * sum(co2) / sum(energy) if sum(energy) > 0 else None
        source_text = "as logged by carbon_callbacks in the training log"
    else:
        g = _epoch_intensity(source_obj, table)
        co2 = [e * gi / 1000.0 for e, gi in zip(energy, g)]
        g_mean = float(np.average(g, weights=energy)) if sum(energy) > 0 else float(np.mean(g))
        source_text = source_obj.source
    has_times = any(t is not None for t in table.start_utc)
    return Run(
        name=name,
        source=str(source),
        format=fmt,
        epochs=tuple(table.epochs),
        energy_kwh=tuple(energy),
        co2_kg=tuple(co2),
        duration_s=tuple(table.duration_s),
        metrics={k: tuple(v) for k, v in table.metrics.items()},
        stage_kwh={k: tuple(v) for k, v in stage_kwh.items()},
        energy_basis=basis,
        energy_note=note,
        intensity_g_per_kwh=g_mean,
        intensity_source=source_text,
        pue=pue_value,
        notes=tuple(table.notes),
        metadata=dict(table.metadata),
        start_utc=tuple(table.start_utc) if has_times else None,
        end_utc=tuple(table.end_utc) if has_times else None,
    )


def note_units(metrics: Mapping[str, Sequence[float]]) -> list[str]:
    """One note saying, for each error-rate metric, whether it is printed in percent or as a fraction."""
    from .run import metric_kind

    parts = []
    for name, values in metrics.items():
        if metric_kind(name) not in ("wer", "cer", "per", "eer", "error", "accuracy"):
            continue
        finite = [v for v in values if math.isfinite(v)]
        if finite:
            parts.append(f"{name} in {'percent' if max(finite) > 1.0 else 'fraction (0-1)'}")
    return [f"metrics kept as printed: {', '.join(parts)}"] if parts else []
