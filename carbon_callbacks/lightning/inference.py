"""The energy of an inference run (``trainer.test/validate/predict``) per batch, per utterance, per hour of audio."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["InferenceCost"]


@dataclass(frozen=True)
class InferenceCost:
    """Facility energy and CO2 of one inference run, summed over ranks.

    Attributes:
        stage: ``validate``, ``test`` or ``predict``.
        energy_kwh: facility energy (IT energy x PUE) of the run.
        co2_kg: its emissions.
        batches: batches processed by all ranks.
        utterances: examples processed by all ranks (the leading size of each batch).
        audio_s: seconds of audio processed, when an ``audio_seconds_fn`` was given; else None.
    """

    stage: str
    energy_kwh: float
    co2_kg: float
    batches: int
    utterances: int
    audio_s: float | None = None

    @property
    def wh_per_batch(self) -> float | None:
        """Watt-hours per batch (None without batches)."""
        return self.energy_kwh * 1000.0 / self.batches if self.batches else None

    @property
    def wh_per_utterance(self) -> float | None:
        """Watt-hours per utterance (None without utterances)."""
        return self.energy_kwh * 1000.0 / self.utterances if self.utterances else None

    @property
    def wh_per_audio_hour(self) -> float | None:
        """Watt-hours per hour of audio (None without an audio duration)."""
        return self.energy_kwh * 1000.0 / (self.audio_s / 3600.0) if self.audio_s else None

    def as_metrics(self) -> dict[str, float]:
        """The numbers that are known, for the ledger's ``metrics`` column and the loggers."""
        values = {
            "batches": float(self.batches),
            "utterances": float(self.utterances),
            "audio_s": self.audio_s,
            "wh_per_batch": self.wh_per_batch,
            "wh_per_utterance": self.wh_per_utterance,
            "wh_per_audio_hour": self.wh_per_audio_hour,
        }
        return {k: float(v) for k, v in values.items() if v is not None}
