"""Synthetic speech data without downloads: espeak-ng voices rendered to 16 kHz wavs with SpeechBrain manifests.

``generate_asr`` writes spoken digit sequences for CTC ASR; ``generate_sv`` writes many synthetic speakers with
trial lists for speaker verification. Command line: ``python -m carbon_callbacks.synth asr|sv --out DIR ...``.
"""

from .asr import ASR_SPLITS, DIGIT_WORDS, generate_asr
from .audio import TARGET_RATE_HZ, read_wav
from .dataset import GeneratedData
from .manifest import MANIFEST_FIELDS, Trial, Utterance, read_manifest, read_trials, write_manifest, write_trials
from .sv import PITCH_LEVELS, Speaker, generate_sv
from .voices import ACCENTS, Voice, english_voices, split_voices

__all__ = [
    "ASR_SPLITS",
    "DIGIT_WORDS",
    "generate_asr",
    "TARGET_RATE_HZ",
    "read_wav",
    "GeneratedData",
    "MANIFEST_FIELDS",
    "Trial",
    "Utterance",
    "read_manifest",
    "read_trials",
    "write_manifest",
    "write_trials",
    "PITCH_LEVELS",
    "Speaker",
    "generate_sv",
    "ACCENTS",
    "Voice",
    "english_voices",
    "split_voices",
]
