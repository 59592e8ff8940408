"""Spoken digit sequences ("three one four") for CTC ASR; validation/test voices never occur in training."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

import numpy as np

from .dataset import GeneratedData, check_count, check_range, write_summary
from .manifest import write_manifest
from .render import Style, UtteranceSpec, draw_padding, render_all
from .voices import Voice, english_voices, split_voices

__all__ = ["DIGIT_WORDS", "ASR_SPLITS", "generate_asr"]

DIGIT_WORDS: tuple[str, ...] = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
ASR_SPLITS: tuple[str, ...] = ("train", "valid", "test")


def generate_asr(
    out_dir: str | Path,
    *,
    n_train: int = 2000,
    n_valid: int = 200,
    n_test: int = 200,
    min_digits: int = 2,
    max_digits: int = 5,
    seed: int = 0,
    rate_wpm: tuple[float, float] = (140, 220),
    pitch: tuple[float, float] = (25, 75),
    snr_db: tuple[float, float] = (15.0, 40.0),
    voice_fractions: Sequence[float] = (0.7, 0.15, 0.15),
    workers: int = 2,
) -> GeneratedData:
    """Write ``train/valid/test.csv`` and 16 kHz wavs under ``out_dir``; the same seed gives identical files.

    Voices are split by variant (timbre) with ``voice_fractions``; rate, pitch and SNR are drawn per utterance.
    ``workers`` processes render in parallel (the output does not depend on it).
    """
    counts = {
        "train": check_count("n_train", n_train, 1),
        "valid": check_count("n_valid", n_valid, 1),
        "test": check_count("n_test", n_test, 1),
    }
    check_count("min_digits", min_digits, 1)
    check_count("max_digits", max_digits, min_digits)
    check_count("workers", workers, 1)
    ranges = {
        "rate_wpm": check_range("rate_wpm", rate_wpm, 80, 450),
        "pitch": check_range("pitch", pitch, 0, 100),
        "snr_db": check_range("snr_db", snr_db, -10, 120),
    }
    started = time.perf_counter()
    out = Path(out_dir)
    groups = dict(zip(ASR_SPLITS, split_voices(english_voices(), voice_fractions, seed)))
    specs = {
        split: _specs(out / "wav" / split, split, counts[split], groups[split],
                      np.random.default_rng([seed, index]), (min_digits, max_digits), ranges)
        for index, split in enumerate(ASR_SPLITS)
    }
    rows = render_all([s for split in ASR_SPLITS for s in specs[split]], workers)
    manifests, durations, start = {}, {}, 0
    for split in ASR_SPLITS:
        part, start = rows[start:start + counts[split]], start + counts[split]
        manifests[split] = out / f"{split}.csv"
        write_manifest(manifests[split], part)
        durations[split] = sum(r.duration_s for r in part)
    data = GeneratedData(
        kind="asr",
        out_dir=out,
        manifests=manifests,
        utterances=counts,
        duration_s=durations,
        speakers={s: tuple(v.name for v in groups[s]) for s in ASR_SPLITS},
        elapsed_s=time.perf_counter() - started,
    )
    config = {"seed": seed, "min_digits": min_digits, "max_digits": max_digits, "voice_fractions": list(voice_fractions)}
    write_summary(data, {**config, **{k: list(v) for k, v in ranges.items()}})
    return data


def _specs(
    folder: Path,
    split: str,
    count: int,
    voices: list[Voice],
    rng: np.random.Generator,
    n_digits: tuple[int, int],
    ranges: dict[str, tuple[float, float]],
) -> list[UtteranceSpec]:
    specs = []
    for i in range(count):
        voice = voices[int(rng.integers(len(voices)))]
        digits = rng.integers(0, 10, size=int(rng.integers(n_digits[0], n_digits[1] + 1)))
        text = " ".join(DIGIT_WORDS[d] for d in digits)
        style = Style(
            voice=voice.name,
            rate_wpm=int(rng.uniform(*ranges["rate_wpm"])),
            pitch=int(rng.uniform(*ranges["pitch"])),
            pitch_range=int(rng.uniform(30, 70)),
            snr_db=float(rng.uniform(*ranges["snr_db"])),
        )
        utt_id = f"{split}-{i:06d}"
        specs.append(UtteranceSpec(str(folder / f"{utt_id}.wav"), utt_id, text, text.upper(), voice.name, style,
                                   *draw_padding(rng)))
    return specs
