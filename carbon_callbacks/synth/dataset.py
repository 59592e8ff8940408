"""What a generator run produced (frozen result) and the shared argument checks."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ..errors import ConfigError

__all__ = ["GeneratedData", "check_count", "check_range", "write_summary"]

SUMMARY_FILENAME = "synth.json"


@dataclass(frozen=True)
class GeneratedData:
    """Manifests (split -> CSV), trial lists (split -> txt, verification only), counts and durations per split."""

    kind: str
    out_dir: Path
    manifests: Mapping[str, Path]
    trials: Mapping[str, Path] = field(default_factory=dict)
    utterances: Mapping[str, int] = field(default_factory=dict)
    duration_s: Mapping[str, float] = field(default_factory=dict)
    speakers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    elapsed_s: float = 0.0


def check_count(name: str, value: int, minimum: int) -> int:
    """``value`` as an int >= ``minimum`` or ConfigError."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name}={value!r} is not allowed: give an integer >= {minimum}")
    return value


def check_range(name: str, value: tuple[float, float], low: float, high: float) -> tuple[float, float]:
    """A ``(min, max)`` pair inside ``[low, high]`` with min <= max, or ConfigError."""
    try:
        a, b = float(value[0]), float(value[1])
    except (TypeError, ValueError, IndexError) as err:
        raise ConfigError(f"{name}={value!r} is not allowed: give a (min, max) pair") from err
    if not low <= a <= b <= high:
        raise ConfigError(f"{name}={value!r} is not allowed: give min <= max within [{low}, {high}]")
    return a, b


def write_summary(data: GeneratedData, config: Mapping[str, Any]) -> Path:
    """Write ``synth.json`` (configuration, splits, speakers) next to the manifests."""
    path = data.out_dir / SUMMARY_FILENAME
    payload = {
        "kind": data.kind,
        "config": dict(config),
        "manifests": {k: str(v) for k, v in data.manifests.items()},
        "trials": {k: str(v) for k, v in data.trials.items()},
        "utterances": dict(data.utterances),
        "duration_s": {k: round(v, 3) for k, v in data.duration_s.items()},
        "speakers": {k: list(v) for k, v in data.speakers.items()},
        "elapsed_s": round(data.elapsed_s, 3),
    }
    path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return path
