"""SpeechBrain adapter: energy and CO2 per epoch next to WER/EER in existing recipes, with energy-aware stopping.

YAML path (no Python change): ``EnergyTracker`` + ``EnergyTrainLogger`` + ``EnergyAwareEpochCounter`` and the
recoverable line ``energy: !ref <energy_tracker>``. Code path: ``with_energy(ASR)(...)``. See docs/speechbrain.md.
"""

from .brain import EnergyBrainMixin, with_energy
from .counter import EnergyAwareEpochCounter, infer_metric
from .eer import score_trials, trial_label
from .logger import ENERGY_KEYS, EnergyTrainLogger
from .records import EpochEnergy, InferenceEnergy
from .tracker import MISSING_RECOVERABLE, EnergyTracker

__all__ = [
    "EnergyTracker",
    "EnergyTrainLogger",
    "EnergyAwareEpochCounter",
    "EnergyBrainMixin",
    "with_energy",
    "score_trials",
    "trial_label",
    "EpochEnergy",
    "InferenceEnergy",
    "ENERGY_KEYS",
    "MISSING_RECOVERABLE",
    "infer_metric",
]
