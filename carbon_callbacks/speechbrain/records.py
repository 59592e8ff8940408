"""Frozen per-epoch and inference energy summaries kept by :class:`~carbon_callbacks.speechbrain.EnergyTracker`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

__all__ = ["EpochEnergy", "InferenceEnergy", "scalar_stats"]


@dataclass(frozen=True)
class EpochEnergy:
    """One training epoch as the stopping rules see it.

    Attributes:
        epoch: SpeechBrain's epoch number (1-based).
        energy_kwh / co2_kg: facility energy and CO2 of the epoch recorded up to its ``log_stats`` (this attempt).
        total_kwh / total_co2_kg: run totals (all epochs and attempts) right after the epoch's ``log_stats``.
        metrics: the epoch's logged stats, prefixed by stage (``valid_WER``, ``train_loss``).
    """

    epoch: int
    energy_kwh: float
    co2_kg: float
    total_kwh: float
    total_co2_kg: float
    metrics: Mapping[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain values for a checkpoint."""
        return {
            "epoch": self.epoch,
            "energy_kwh": self.energy_kwh,
            "co2_kg": self.co2_kg,
            "total_kwh": self.total_kwh,
            "total_co2_kg": self.total_co2_kg,
            "metrics": dict(self.metrics),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "EpochEnergy":
        """Inverse of :meth:`to_dict`."""
        return cls(
            epoch=int(data["epoch"]),
            energy_kwh=float(data.get("energy_kwh", 0.0)),
            co2_kg=float(data.get("co2_kg", 0.0)),
            total_kwh=float(data.get("total_kwh", 0.0)),
            total_co2_kg=float(data.get("total_co2_kg", 0.0)),
            metrics={str(k): float(v) for k, v in dict(data.get("metrics", {})).items()},
        )


@dataclass(frozen=True)
class InferenceEnergy:
    """Energy of one ``evaluate()`` (all ranks summed: under DDP every rank runs the whole test set).

    Attributes:
        energy_kwh / co2_kg / duration_s: of the test window.
        ranks: how many ranks' energy is summed in ``energy_kwh``.
        utterances: utterances evaluated by one rank (None when not counted: YAML path).
        audio_s: seconds of audio in the test set, when the user gave it.
        kwh_per_utterance / kwh_per_audio_hour: None when the denominator is unknown.
    """

    energy_kwh: float
    co2_kg: float
    duration_s: float
    ranks: int
    utterances: int | None = None
    audio_s: float | None = None

    @property
    def kwh_per_utterance(self) -> float | None:
        return self.energy_kwh / self.utterances if self.utterances else None

    @property
    def kwh_per_audio_hour(self) -> float | None:
        return self.energy_kwh / (self.audio_s / 3600.0) if self.audio_s else None

    def as_metrics(self) -> dict[str, float]:
        """The known figures, for the ledger row's ``metrics``."""
        out: dict[str, float] = {}
        if self.utterances:
            out["utterances"] = float(self.utterances)
            out["kwh_per_utterance"] = float(self.kwh_per_utterance or 0.0)
        if self.audio_s:
            out["audio_hours"] = self.audio_s / 3600.0
            out["kwh_per_audio_hour"] = float(self.kwh_per_audio_hour or 0.0)
        return out


def _to_float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    item = getattr(value, "item", None)  # torch / numpy scalars
    numel = getattr(value, "numel", None)
    if callable(item) and (numel is None or numel() == 1):
        try:
            return float(item())
        except (TypeError, ValueError, RuntimeError):
            return None
    return None


def scalar_stats(prefix: str, stats: Mapping[str, Any] | None) -> dict[str, float]:
    """``{"<prefix>_<key>": float}`` for the scalar entries of a SpeechBrain stats dict (lists are skipped)."""
    out: dict[str, float] = {}
    for key, value in (stats or {}).items():
        number = _to_float(value)
        if number is not None and not math.isnan(number):
            out[f"{prefix}_{key}"] = number
    return out
