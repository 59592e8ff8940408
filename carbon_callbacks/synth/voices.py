"""The catalogue of English synthetic voices: accent x voice variant (a timbre), plus helpers to split them."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import ConfigError

__all__ = ["ACCENTS", "Voice", "english_voices", "split_voices", "voice_variants"]

ACCENTS: tuple[str, ...] = (
    "en", "en-us", "en-029", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-gb-x-rp", "en-us-nyc",
)
# Variants that are deliberately non-human (robots, whisper, effects) or have odd names.
_EXCLUDED = {
    "Demonic", "UniRobot", "anikaRobot", "whisper", "whisperf", "Tweaky", "Mr serious", "croak", "kaukovalta",
    "robosoft", "robosoft2", "robosoft3", "robosoft4", "robosoft5", "robosoft6", "robosoft7", "robosoft8",
}


@dataclass(frozen=True, order=True)
class Voice:
    """One synthetic voice: an English accent and a voice variant, spoken as ``accent+variant``."""

    accent: str
    variant: str

    @property
    def name(self) -> str:
        """The espeak-ng voice name, e.g. ``en-us+m3``."""
        return f"{self.accent}+{self.variant}"


@functools.lru_cache(maxsize=1)
def voice_variants() -> tuple[str, ...]:
    """Sorted names of the usable voice variants shipped with espeak-ng."""
    from .espeak import espeak_data_path

    folder = Path(espeak_data_path()) / "voices" / "!v"
    return tuple(sorted(p.name for p in folder.iterdir() if p.is_file() and p.name not in _EXCLUDED))


def english_voices(accents: Sequence[str] = ACCENTS) -> list[Voice]:
    """Every accent x variant voice, sorted."""
    bad = [a for a in accents if a not in ACCENTS]
    if bad:
        raise ConfigError(f"accents {bad!r} are not allowed: choose from {ACCENTS}")
    return sorted(Voice(a, v) for a in accents for v in voice_variants())


def split_voices(
    voices: Sequence[Voice], fractions: Sequence[float], seed: int
) -> list[list[Voice]]:
    """Split ``voices`` into disjoint groups by *variant* (a timbre never appears in two groups).

    ``fractions`` are the shares of variants per group (they must sum to 1); each group gets at least one variant.
    """
    if not fractions or any(f <= 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-6:
        raise ConfigError(f"fractions={list(fractions)!r} are not allowed: give positive shares summing to 1")
    variants = sorted({v.variant for v in voices})
    if len(variants) < len(fractions):
        raise ConfigError(f"{len(variants)} variants cannot fill {len(fractions)} groups")
    order = [variants[i] for i in np.random.default_rng(seed).permutation(len(variants))]
    counts = [max(1, int(round(f * len(order)))) for f in fractions[1:]]
    counts.insert(0, len(order) - sum(counts))
    groups, start = [], 0
    for count in counts:
        chosen = set(order[start:start + count])
        groups.append(sorted(v for v in voices if v.variant in chosen))
        start += count
    return groups
