"""Render utterances: espeak-ng -> 16 kHz float -> silence padding -> seeded noise -> wav file.

libespeak-ng's output depends on what the process rendered before (its wave generator keeps state) and on its
random generator (seeded from the clock), so every chunk of utterances is rendered in a fresh process and every
utterance reseeds the generator: the same specs then give the same bytes, whatever the number of workers. All random choices are drawn beforehand into :class:`UtteranceSpec` (none depend on audio length).
"""

from __future__ import annotations

import multiprocessing
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .audio import TARGET_RATE_HZ, add_noise, resample, write_wav
from .espeak import engine
from .manifest import Utterance

__all__ = ["CHUNK_SIZE", "Style", "UtteranceSpec", "draw_padding", "render_one", "render_all"]

CHUNK_SIZE = 400  # utterances per fresh process


@dataclass(frozen=True)
class Style:
    """How an utterance is spoken: espeak voice name, rate (wpm), pitch (0-100), pitch range, SNR (dB)."""

    voice: str
    rate_wpm: int
    pitch: int
    pitch_range: int
    snr_db: float


@dataclass(frozen=True)
class UtteranceSpec:
    """Everything needed to render one utterance; ``lead``/``tail`` are samples of silence, ``noise_seed`` seeds it."""

    path: str
    utt_id: str
    text: str
    words: str
    spk_id: str
    style: Style
    lead: int
    tail: int
    noise_seed: int


def draw_padding(rng: np.random.Generator) -> tuple[int, int, int]:
    """(lead, tail, noise_seed): up to 0.2 s of silence on each side and a seed for the noise."""
    lead, tail = rng.integers(0, TARGET_RATE_HZ // 5, size=2)
    return int(lead), int(tail), int(rng.integers(2**31))


def render_one(spec: UtteranceSpec) -> Utterance:
    """Synthesise ``spec``, write its wav (16 kHz, 16 bit) and return its manifest row."""
    tts = engine()
    style = spec.style
    raw = tts.render(spec.text, style.voice, style.rate_wpm, style.pitch, style.pitch_range, seed=spec.noise_seed)
    x = resample(raw, tts.sample_rate_hz)
    x = np.concatenate([np.zeros(spec.lead, np.float32), x, np.zeros(spec.tail, np.float32)])
    x = add_noise(x, style.snr_db, np.random.default_rng(spec.noise_seed))
    path = Path(spec.path)
    write_wav(path, x)
    return Utterance(spec.utt_id, len(x) / TARGET_RATE_HZ, str(path.resolve()), spec.spk_id, spec.words)


def _render_chunk(specs: Sequence[UtteranceSpec]) -> list[Utterance]:
    return [render_one(spec) for spec in specs]


def render_all(specs: Sequence[UtteranceSpec], workers: int = 2) -> list[Utterance]:
    """Render ``specs`` in chunks of :data:`CHUNK_SIZE`, each in a fresh process (``workers`` at a time)."""
    chunks = [list(specs[i:i + CHUNK_SIZE]) for i in range(0, len(specs), CHUNK_SIZE)]
    if not chunks:
        return []
    for spec in specs:
        Path(spec.path).parent.mkdir(parents=True, exist_ok=True)
    context = multiprocessing.get_context("spawn")
    with context.Pool(processes=max(1, min(workers, len(chunks))), maxtasksperchild=1) as pool:
        parts = pool.map(_render_chunk, chunks, chunksize=1)
    return [utt for part in parts for utt in part]
