"""``Run``: the per-epoch table of one finished (or running) training run, whatever file it was read from.

Every reader (:mod:`carbon_callbacks.analysis.readers`) returns a :class:`Run`; every statistic
(:mod:`carbon_callbacks.analysis.stats`), replay, plot and CLI command works on it. One row per training epoch:
``energy_kwh[i]`` is the facility energy (IT energy x PUE) of epoch ``epochs[i]``, all stages together (train,
validation, sanity checks, aborted attempts of that epoch); ``metrics[name][i]`` is NaN when the metric was not
evaluated in that epoch.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import ConfigError

__all__ = ["Run", "FORMATS", "ENERGY_BASES", "metric_kind", "metric_mode"]

FORMATS = ("ledger", "lightning_csv", "speechbrain", "generic_csv", "ecapa_score")
ENERGY_BASES = ("measured", "estimated", "duration", "equal")

# Metric kinds in order of preference when the user names none (lower index wins), with their direction.
_KINDS: tuple[tuple[str, str], ...] = (
    ("wer", "min"),
    ("cer", "min"),
    ("per", "min"),
    ("eer", "min"),
    ("error", "min"),
    ("loss", "min"),
    ("si-snr", "min"),  # SpeechBrain logs the NEGATIVE SI-SNR (a loss); sign decides, see metric_mode
    ("accuracy", "max"),
    ("quality", "max"),  # PESQ, STOI, SDR, F1, BLEU, SNR: higher is better
)
_VALIDATION_WORDS = ("valid", "val", "validation", "dev", "eval")


def _tokens(name: str) -> list[str]:
    spaced = re.sub(r"([a-z])([A-Z])", r"\1 \2", name)  # ErrorRate -> Error Rate
    return [t for t in re.split(r"[^a-z0-9]+", spaced.lower()) if t]


def metric_kind(name: str) -> str | None:
    """The kind of a metric name (``wer``, ``cer``, ``per``, ``eer``, ``error``, ``loss``, ``si-snr``,
    ``accuracy``, ``quality``) or None when the name says nothing about its direction."""
    tokens = _tokens(name)
    joined = "".join(tokens)
    if "wer" in tokens:
        return "wer"
    if "cer" in tokens:
        return "cer"
    if tokens and tokens[-1] == "per":  # valid_PER, not samples_per_sec
        return "per"
    if "eer" in tokens or joined.endswith("eer"):
        return "eer"
    if {"error", "err", "errors", "errorrate"} & set(tokens):
        return "error"
    if {"loss", "nll", "ctc"} & set(tokens):
        return "loss"
    if "sisnr" in joined or "sisdr" in joined:
        return "si-snr"
    if {"acc", "accuracy", "top1", "top5"} & set(tokens):
        return "accuracy"
    if {"pesq", "stoi", "sdr", "snr", "f1", "bleu", "auc"} & set(tokens):
        return "quality"
    return None


def metric_mode(name: str, values: Sequence[float] | None = None) -> str | None:
    """``min`` or ``max`` for a metric name, None when unknown.

    SI-SNR / SI-SDR: SpeechBrain's recipes log the negative SI-SNR loss (e.g. ``si-snr: -10.4``, lower is
    better), whereas papers report SI-SNR in dB (higher is better). The sign of the median logged value decides:
    negative -> ``min`` (SpeechBrain's loss), positive -> ``max``; without values -> ``min`` (SpeechBrain).
    """
    kind = metric_kind(name)
    if kind is None:
        return None
    if kind == "si-snr" and values is not None:
        finite = [v for v in values if math.isfinite(v)]
        if finite and float(np.median(finite)) > 0:
            return "max"
    return dict(_KINDS)[kind]


def _stage_rank(name: str) -> int:
    tokens = _tokens(name)
    if any(t in _VALIDATION_WORDS for t in tokens):
        return 0
    if "test" in tokens:
        return 2
    if "train" in tokens or "training" in tokens:
        return 3
    return 1


def _float_tuple(values: Sequence[float] | None, what: str, n: int) -> tuple[float, ...]:
    out = tuple(float(v) for v in values) if values is not None else ()
    if len(out) != n:
        raise ConfigError(f"Run: {what} has {len(out)} values for {n} epochs; give one per epoch")
    return out


@dataclass(frozen=True, eq=False)
class Run:
    """One run, one row per training epoch (all tuples have ``len(epochs)`` entries).

    Attributes:
        name: display name (file stem or directory name unless given).
        source: the path read.
        format: one of :data:`FORMATS`.
        epochs: epoch numbers, strictly increasing (as the log numbers them: 1-based for SpeechBrain).
        energy_kwh: facility energy of each epoch (kWh; 1.0 per epoch when ``energy_basis == "equal"``).
        co2_kg: CO2-eq of each epoch (kg).
        duration_s: wall time of each epoch (s), NaN when unknown.
        metrics: metric name -> per-epoch values, NaN where not evaluated.
        stage_kwh: stage (``train``, ``validate``, ``sanity``...) -> per-epoch facility energy (kWh).
        component_kwh: component (``gpu``, ``cpu``, ``ram``) -> per-epoch facility energy (kWh).
        energy_basis: ``measured`` (meters), ``estimated`` (a meter modelled some component), ``duration``
            (duration x assumed power), ``equal`` (nothing known: fractions only).
        energy_note: one sentence saying how the energy was obtained.
        intensity_g_per_kwh: mean carbon intensity used (g/kWh), None when mixed/unknown.
        intensity_source: where the intensity comes from.
        pue: facility PUE applied to IT energy.
        cost: per-epoch cost in the ledger's currency, None when not priced.
        unattributed_kwh / unattributed_co2_kg: energy and CO2 outside training epochs (test, predict, setup).
        notes: reader messages (skipped lines, repeated epochs, units).
        metadata: extra run metadata (e.g. ``energy.meta.json``, SpeechBrain test results).
        start_utc / end_utc: per-epoch wall-clock bounds (aware datetimes, None where unknown), used to price
            epochs with a time-varying intensity; None when the format has no timestamps at all.
    """

    name: str
    source: str
    format: str
    epochs: tuple[int, ...]
    energy_kwh: tuple[float, ...]
    co2_kg: tuple[float, ...]
    duration_s: tuple[float, ...]
    metrics: Mapping[str, tuple[float, ...]]
    stage_kwh: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    component_kwh: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    energy_basis: str = "measured"
    energy_note: str = ""
    intensity_g_per_kwh: float | None = None
    intensity_source: str = ""
    pue: float = 1.0
    cost: tuple[float, ...] | None = None
    unattributed_kwh: float = 0.0
    unattributed_co2_kg: float = 0.0
    notes: tuple[str, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)
    start_utc: tuple[datetime | None, ...] | None = None
    end_utc: tuple[datetime | None, ...] | None = None

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ConfigError(f"Run: format={self.format!r} is not allowed: use one of {', '.join(FORMATS)}")
        if self.energy_basis not in ENERGY_BASES:
            raise ConfigError(
                f"Run: energy_basis={self.energy_basis!r} is not allowed: use one of {', '.join(ENERGY_BASES)}"
            )
        epochs = tuple(int(e) for e in self.epochs)
        if any(b <= a for a, b in zip(epochs, epochs[1:])):
            raise ConfigError(f"Run: epochs {epochs[:10]}... must be strictly increasing")
        n = len(epochs)
        set_ = object.__setattr__
        set_(self, "epochs", epochs)
        set_(self, "energy_kwh", _float_tuple(self.energy_kwh, "energy_kwh", n))
        set_(self, "co2_kg", _float_tuple(self.co2_kg, "co2_kg", n))
        set_(self, "duration_s", _float_tuple(self.duration_s, "duration_s", n))
        if self.cost is not None:
            set_(self, "cost", _float_tuple(self.cost, "cost", n))
        for attr in ("metrics", "stage_kwh", "component_kwh"):
            table = {str(k): _float_tuple(v, f"{attr}[{k!r}]", n) for k, v in dict(getattr(self, attr)).items()}
            set_(self, attr, MappingProxyType(table))
        set_(self, "metadata", MappingProxyType(dict(self.metadata)))
        for attr in ("start_utc", "end_utc"):
            times = getattr(self, attr)
            if times is not None:
                times = tuple(times)
                if len(times) != n:
                    raise ConfigError(f"Run: {attr} has {len(times)} values for {n} epochs; give one per epoch")
                set_(self, attr, times)
        set_(self, "notes", tuple(str(x) for x in self.notes))
        set_(self, "pue", float(self.pue))
        set_(self, "unattributed_kwh", float(self.unattributed_kwh))
        set_(self, "unattributed_co2_kg", float(self.unattributed_co2_kg))

    def __len__(self) -> int:
        return len(self.epochs)

    @property
    def energy_is_estimated(self) -> bool:
        """True unless every component of every epoch was measured by a meter."""
        return self.energy_basis != "measured"

    @property
    def metric_names(self) -> tuple[str, ...]:
        """The metric names, in reader order."""
        return tuple(self.metrics)

    def cumulative_energy_kwh(self) -> np.ndarray:
        """Facility energy spent up to the end of each epoch (kWh)."""
        return np.cumsum(np.asarray(self.energy_kwh, dtype=float))

    def cumulative_co2_kg(self) -> np.ndarray:
        """CO2-eq emitted up to the end of each epoch (kg)."""
        return np.cumsum(np.asarray(self.co2_kg, dtype=float))

    def metric(self, name: str) -> np.ndarray:
        """Per-epoch values of one metric (NaN where not evaluated).

        Raises:
            ConfigError: no metric of that name (the message lists the available ones).
        """
        if name not in self.metrics:
            raise ConfigError(
                f"metric {name!r} is not in run {self.name!r}: available {', '.join(self.metrics) or '(none)'}"
            )
        return np.asarray(self.metrics[name], dtype=float)

    def infer_metric(self, name: str | None = None, mode: str | None = None) -> tuple[str, str]:
        """The metric to analyse and its direction (``min`` or ``max``).

        With no name: prefer WER > CER > PER > EER > error > loss > SI-SNR > accuracy > quality metrics, and
        validation metrics over unprefixed, test and train ones. With a name and no mode: the direction is
        inferred from the name (``wer``, ``error``, ``loss``... -> min; ``acc``, ``pesq``... -> max; SI-SNR by
        the sign of its values, see :func:`metric_mode`).

        Raises:
            ConfigError: unknown name or mode, or no unambiguous choice (asks for --metric / --mode).
        """
        if mode is not None and mode not in ("min", "max"):
            raise ConfigError(f"mode={mode!r} is not allowed: use 'min' or 'max'")
        if name is None:
            name = self._pick_metric()
        else:
            self.metric(name)
        if mode is None:
            mode = metric_mode(name, self.metrics[name])
            if mode is None:
                raise ConfigError(
                    f"cannot tell whether lower or higher {name!r} is better in run {self.name!r}: "
                    "give --mode min or --mode max"
                )
        return name, mode

    def _pick_metric(self) -> str:
        order = [kind for kind, _ in _KINDS]
        ranked = []
        for candidate in self.metrics:
            kind = metric_kind(candidate)
            if kind is None or not np.isfinite(self.metric(candidate)).any():
                continue
            ranked.append(((order.index(kind), _stage_rank(candidate)), candidate))
        if not ranked:
            raise ConfigError(
                f"run {self.name!r} has no metric whose direction is known "
                f"({', '.join(self.metrics) or 'no metrics'}): give --metric NAME and --mode min|max"
            )
        ranked.sort()
        best_key = ranked[0][0]
        tied = [c for key, c in ranked if key == best_key]
        if len(tied) > 1:
            raise ConfigError(
                f"run {self.name!r} has several equally likely metrics ({', '.join(tied)}): give --metric NAME"
            )
        return tied[0]
