"""Stopping rules as pure functions of the past: (cumulative energy, metric) history -> decision with a reason.

PLACEHOLDER implementation: the API (Decision, EnergyAwareRule, PatienceRule, .decide) is fixed; the algorithm
is being designed and benchmarked on real curves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from ..errors import ConfigError

__all__ = ["Decision", "EnergyAwareRule", "PatienceRule"]


@dataclass(frozen=True)
class Decision:
    """What a rule decided after the last point of a history.

    Attributes:
        stop: stop training now.
        reason: why (empty when not stopping).
        rate_per_unit: recent metric gain per unit of energy (per kWh, or per kg CO2), positive when improving;
            None while not estimable (warm-up, too few points).
        threshold_per_unit: the exchange rate below which the rule counts an evaluation as not worth its cost.
    """

    stop: bool
    reason: str = ""
    rate_per_unit: float | None = None
    threshold_per_unit: float | None = None


def _check_mode(mode: str) -> str:
    if mode not in ("min", "max"):
        raise ConfigError(f"mode={mode!r} is not allowed: use 'min' or 'max'")
    return mode


class PatienceRule:
    """Lightning ``EarlyStopping`` semantics: stop after ``patience`` evaluations without improving by ``min_delta``."""

    def __init__(self, patience: int = 3, min_delta: float = 0.0, mode: str = "min") -> None:
        if int(patience) < 0:
            raise ConfigError(f"patience={patience!r} is not allowed: give an integer >= 0")
        self.patience, self.min_delta, self.mode = int(patience), abs(float(min_delta)), _check_mode(mode)

    def decide(self, energy: Sequence[float], metric: Sequence[float]) -> Decision:
        sign = 1.0 if self.mode == "min" else -1.0
        best, wait = math.inf, 0
        for value in metric:
            if value is None or math.isnan(value):
                continue
            if sign * value - self.min_delta < best:  # same comparison as Lightning's monitor_op(current - min_delta, best)
                best, wait = sign * value, 0
            else:
                wait += 1
        if wait >= self.patience and self.patience >= 0 and any(not math.isnan(v) for v in metric):
            return Decision(True, f"no improvement in the last {wait} evaluations (patience {self.patience})")
        return Decision(False)


class EnergyAwareRule:
    """Stop when the recent metric gain per unit of energy stays below an exchange rate.

    Args:
        threshold: metric units gained per kWh (or per kg CO2 with ``unit="kg_co2"``) below which an evaluation
            is not worth its cost; None: a scale-free default relative to the run's own average gain rate.
        unit: ``kwh`` or ``kg_co2``: what ``energy`` in :meth:`decide` is measured in.
        mode: ``min`` (WER, EER) or ``max`` (accuracy).
    """

    def __init__(self, threshold: float | None = None, *, unit: str = "kwh", mode: str = "min") -> None:
        if threshold is not None and not float(threshold) >= 0:
            raise ConfigError(f"threshold={threshold!r} is not allowed: give a rate >= 0 or None")
        if unit not in ("kwh", "kg_co2"):
            raise ConfigError(f"unit={unit!r} is not allowed: use 'kwh' or 'kg_co2'")
        self.threshold, self.unit, self.mode = threshold, unit, _check_mode(mode)

    def decide(self, energy: Sequence[float], metric: Sequence[float]) -> Decision:
        """Decide after the last point. ``energy``: cumulative, one per evaluation; ``metric``: NaN = not evaluated."""
        return Decision(False)
