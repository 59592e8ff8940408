"""Speaker verification data: many synthetic speakers (accent x variant x pitch), trials on unseen speakers.

Training speakers (``train.csv``, ``spk_id`` = class) and the speakers of ``valid`` and ``test`` are built from
disjoint voice variants. Each evaluation split has ``<split>_enrol.csv``, ``<split>_probe.csv`` and a balanced
``<split>_trials.txt`` (per probe utterance: as many different-speaker as same-speaker trials).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import ConfigError
from .dataset import GeneratedData, check_count, write_summary
from .manifest import Trial, Utterance, write_manifest, write_trials
from .render import Style, UtteranceSpec, draw_padding, render_all
from .voices import english_voices, split_voices

__all__ = ["PITCH_LEVELS", "SV_WORDS", "Speaker", "generate_sv"]

PITCH_LEVELS: tuple[int, ...] = (20, 40, 60, 80)
SV_WORDS: tuple[str, ...] = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "yes", "no", "up", "down",
    "left", "right", "on", "off", "stop", "go", "the", "cat", "sat", "on", "a", "mat", "blue", "green", "red",
    "house", "river", "morning", "evening", "happy", "quiet", "voice", "speech", "energy", "water", "light",
    "open", "close", "window", "garden", "music", "paper", "number", "simple", "station", "north", "south",
)
_ENROL_PER_SPEAKER = 2


@dataclass(frozen=True)
class Speaker:
    """A synthetic speaker: espeak voice, pitch level, and a habitual speaking rate (wpm)."""

    voice: str
    pitch: int
    rate_wpm: int

    @property
    def spk_id(self) -> str:
        """Speaker label, e.g. ``en-us+m3@p40``."""
        return f"{self.voice}@p{self.pitch}"


def generate_sv(
    out_dir: str | Path,
    *,
    n_train_speakers: int = 200,
    utts_per_speaker: int = 20,
    n_valid_speakers: int = 20,
    n_test_speakers: int = 40,
    eval_utts_per_speaker: int = 6,
    seed: int = 0,
    snr_db: tuple[float, float] = (15.0, 40.0),
    voice_fractions: Sequence[float] = (0.6, 0.15, 0.25),
    workers: int = 2,
) -> GeneratedData:
    """Write the verification manifests and wavs under ``out_dir``; the same seed gives identical files.

    ``workers`` processes render in parallel (the output does not depend on it).
    """
    check_count("n_train_speakers", n_train_speakers, 2)
    check_count("utts_per_speaker", utts_per_speaker, 1)
    check_count("n_valid_speakers", n_valid_speakers, 2)
    check_count("n_test_speakers", n_test_speakers, 2)
    check_count("eval_utts_per_speaker", eval_utts_per_speaker, _ENROL_PER_SPEAKER + 1)
    check_count("workers", workers, 1)
    started = time.perf_counter()
    out = Path(out_dir)
    groups = split_voices(english_voices(), voice_fractions, seed)
    wanted = {"train": n_train_speakers, "valid": n_valid_speakers, "test": n_test_speakers}
    rngs, pools, specs = {}, {}, []
    for index, (split, voices) in enumerate(zip(wanted, groups)):
        rngs[split] = np.random.default_rng([seed, index])
        pools[split] = _speakers(split, [v.name for v in voices], wanted[split], rngs[split])
        per_speaker = utts_per_speaker if split == "train" else eval_utts_per_speaker
        specs.extend(_specs(out / "wav" / split, split, pools[split], per_speaker, rngs[split], snr_db))
    rendered = render_all(specs, workers)
    manifests, trials, counts, durations = {}, {}, {}, {}
    for split in wanted:
        rows = [r for r in rendered if r.id.startswith(f"{split}-")]
        if split == "train":
            parts = {"train": rows}
        else:
            enrol, probe = _enrol_probe(rows, eval_utts_per_speaker)
            parts = {f"{split}_enrol": enrol, f"{split}_probe": probe}
            trials[split] = out / f"{split}_trials.txt"
            write_trials(trials[split], _balanced_trials(enrol, probe, rngs[split]))
        for name, part in parts.items():
            manifests[name] = out / f"{name}.csv"
            write_manifest(manifests[name], part)
            counts[name], durations[name] = len(part), sum(r.duration_s for r in part)
    speakers = {split: tuple(s.spk_id for s in pool) for split, pool in pools.items()}
    data = GeneratedData("sv", out, manifests, trials, counts, durations, speakers, time.perf_counter() - started)
    write_summary(data, {"seed": seed, "snr_db": list(snr_db), "voice_fractions": list(voice_fractions)})
    return data


def _speakers(split: str, voices: list[str], count: int, rng: np.random.Generator) -> list[Speaker]:
    combos = [(v, p) for v in voices for p in PITCH_LEVELS]
    if count > len(combos):
        raise ConfigError(f"{count} {split} speakers requested but only {len(combos)} voice x pitch combinations exist")
    chosen = rng.choice(len(combos), size=count, replace=False)
    return [Speaker(combos[i][0], combos[i][1], int(rng.uniform(140, 220))) for i in sorted(chosen)]


def _specs(
    folder: Path, split: str, pool: list[Speaker], per_speaker: int, rng: np.random.Generator,
    snr_db: tuple[float, float],
) -> list[UtteranceSpec]:
    specs = []
    for s_index, speaker in enumerate(pool):
        for u_index in range(per_speaker):
            words = [SV_WORDS[i] for i in rng.integers(0, len(SV_WORDS), size=int(rng.integers(3, 7)))]
            style = Style(
                voice=speaker.voice,
                rate_wpm=int(speaker.rate_wpm + rng.uniform(-15, 15)),
                pitch=int(np.clip(speaker.pitch + rng.uniform(-4, 4), 0, 100)),
                pitch_range=int(rng.uniform(40, 60)),
                snr_db=float(rng.uniform(*snr_db)),
            )
            utt_id = f"{split}-s{s_index:04d}-u{u_index:03d}"
            text = " ".join(words)
            specs.append(UtteranceSpec(str(folder / f"{utt_id}.wav"), utt_id, text, text.upper(), speaker.spk_id,
                                       style, *draw_padding(rng)))
    return specs


def _enrol_probe(rows: list[Utterance], per_speaker: int) -> tuple[list[Utterance], list[Utterance]]:
    enrol = [r for i, r in enumerate(rows) if i % per_speaker < _ENROL_PER_SPEAKER]
    probe = [r for i, r in enumerate(rows) if i % per_speaker >= _ENROL_PER_SPEAKER]
    return enrol, probe


def _balanced_trials(enrol: list[Utterance], probe: list[Utterance], rng: np.random.Generator) -> list[Trial]:
    """Per probe: a target trial with each enrolment utterance of its speaker, as many non-target trials."""
    trials = []
    for utt in probe:
        same = [e for e in enrol if e.spk_id == utt.spk_id]
        other = [e for e in enrol if e.spk_id != utt.spk_id]
        trials.extend(Trial(1, e.id, utt.id) for e in same)
        picks = rng.choice(len(other), size=min(len(same), len(other)), replace=False)
        trials.extend(Trial(0, other[int(i)].id, utt.id) for i in picks)
    return trials
