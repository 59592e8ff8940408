"""Stopping rules as pure functions of the past: (cumulative energy, metric) history -> decision with a reason.

:class:`EnergyAwareRule` states early stopping as an exchange rate with a noise allowance: it stops when even an
optimistic forecast (the lower confidence bound of the recent Theil-Sen slope of the metric on cumulative energy,
extended over as much energy again) buys less than the threshold per kWh (or per kg CO2), when the best value
has not moved over a long share of the energy spent, or when the metric reached its ideal value (an error rate
of 0); a stop is vetoed while a finer-grained companion metric of the same outputs (CER next to WER) still
pays. The default threshold is relative (2% of the best value per doubling of energy), so one default works
whatever the energy scale; an absolute threshold in metric units per kWh (or per kg CO2) is what
:func:`carbon_callbacks.analysis.replay.suggest` outputs. :class:`PatienceRule` is Lightning's ``EarlyStopping``.
Both are pure: ``decide(energy, metric)`` sees only the history it is given.
"""

from __future__ import annotations

import functools
import inspect
import math
import statistics
from statistics import NormalDist
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from ..errors import ConfigError

_STANDARD_NORMAL = NormalDist()

__all__ = [
    "Decision", "EnergyAwareRule", "PatienceRule", "UNITS", "call_decide", "companion_metric", "sen_lower_slope",
    "theil_sen_slope", "unit_label",
]

UNITS = ("kwh", "kg_co2")
_UNIT_LABELS = {"kwh": "kWh", "kg_co2": "kg CO2"}


def unit_label(unit: str) -> str:
    """``kWh`` or ``kg CO2`` for a machine unit of :data:`UNITS`."""
    return _UNIT_LABELS[unit]


#: coarse error rate -> the finer-grained error rate of the same recognition output
_FINER = {"wer": "cer"}


def companion_metric(metric: str, available: Iterable[str]) -> str | None:
    """The finer-grained companion of ``metric`` among ``available`` names, or None.

    ``valid_WER`` -> ``valid_CER``, ``val/wer`` -> ``val/cer`` (same prefix, same case): the character error
    rate of the same hypotheses counts about five times more tokens, so its best value moves when the word
    error rate is still quantised on a small validation set.
    """
    names = set(available)
    lowered = metric.lower()
    for coarse, fine in _FINER.items():
        if lowered.endswith(coarse):
            tail = metric[-len(coarse):]
            swapped = fine.upper() if tail.isupper() else fine
            candidate = metric[: -len(coarse)] + swapped
            if candidate in names and candidate != metric:
                return candidate
    return None


def call_decide(
    rule: Any, energy: Sequence[float], metric: Sequence[float], companion: Sequence[float] | None = None
) -> "Decision":
    """``rule.decide(energy, metric)``, with ``companion=`` when given and the rule accepts it."""
    if companion is not None and _takes_companion(getattr(rule.decide, "__func__", rule.decide)):
        return rule.decide(energy, metric, companion=companion)
    return rule.decide(energy, metric)


@functools.lru_cache(maxsize=64)
def _takes_companion(decide: Any) -> bool:
    """Whether a ``decide`` function has a ``companion`` parameter (looked up once per function: replay and
    suggest call rules millions of times)."""
    return "companion" in inspect.signature(decide).parameters


@dataclass(frozen=True)
class Decision:
    """What a rule decided after the last point of a history.

    Attributes:
        stop: stop training now.
        reason: why, as a sentence with the numbers (also filled while not stopping, once a rate is known).
        rate_per_unit: EnergyAwareRule: the optimistic forecast gain on the best value per unit of energy (per
            kWh, or per kg CO2) over as much energy again as spent, positive when improving; None while not
            estimable (no energy spent yet).
        threshold_per_unit: the absolute exchange rate in effect (metric units per kWh or per kg CO2) below
            which an evaluation is not worth its cost; with a relative rule, the equivalent absolute rate now.
        evaluations_below: consecutive evaluations, ending with the last, whose rate was below the threshold.
        warmed_up: the warm-up is over (the rule may stop the run).
    """

    stop: bool
    reason: str = ""
    rate_per_unit: float | None = None
    threshold_per_unit: float | None = None
    evaluations_below: int = 0
    warmed_up: bool = False

    @property
    def equivalent_threshold(self) -> float | None:
        """The absolute exchange rate in effect (alias of ``threshold_per_unit``)."""
        return self.threshold_per_unit


def _check_mode(mode: str) -> str:
    if mode not in ("min", "max"):
        raise ConfigError(f"mode={mode!r} is not allowed: use 'min' or 'max'")
    return mode


def _check_number(name: str, value: Any, low: float, high: float = math.inf, *, low_open: bool = False) -> float:
    """``value`` as a float in [low, high] (or (low, high] with ``low_open``), else ConfigError."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    below = number <= low if low_open else number < low
    if isinstance(value, bool) or not math.isfinite(number) or below or number > high:
        bracket = "(" if low_open else "["
        raise ConfigError(f"{name}={value!r} is not allowed: give a number in {bracket}{low}, {high}]")
    return number


def _check_int(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{name}={value!r} is not allowed: give an integer >= {low}")
    return value


def _evaluated(energy: Sequence[float], metric: Sequence[float], sign: float) -> tuple[list[float], list[float]]:
    """The (cumulative energy, signed metric: lower is better) pairs of the evaluated points."""
    if len(energy) != len(metric):
        raise ConfigError(f"decide: {len(energy)} energy values for {len(metric)} metric values; give one per point")
    xs, ys = [], []
    for e, m in zip(energy, metric):
        if m is None or e is None or not math.isfinite(float(m)) or not math.isfinite(float(e)):
            continue
        xs.append(float(e))
        ys.append(sign * float(m))
    return xs, ys


def theil_sen_slope(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Median of the pairwise slopes (dy/dx) over pairs with distinct x; None when no such pair exists."""
    slopes = _pairwise_slopes(xs, ys)
    if not slopes:
        return None
    mid = len(slopes) // 2
    return slopes[mid] if len(slopes) % 2 else 0.5 * (slopes[mid - 1] + slopes[mid])


def _pairwise_slopes(xs: Sequence[float], ys: Sequence[float]) -> list[float]:
    return sorted(
        (ys[j] - ys[i]) / (xs[j] - xs[i]) for i in range(len(xs)) for j in range(i + 1, len(xs)) if xs[j] != xs[i]
    )


def _normal_quantile(p: float) -> float:
    """z with P(Z <= z) = p for a standard normal (p in (0, 1))."""
    return _STANDARD_NORMAL.inv_cdf(p)


def sen_lower_slope(xs: Sequence[float], ys: Sequence[float], confidence: float) -> float | None:
    """Lower confidence bound of the Theil-Sen slope (Sen 1968): the pairwise slope of rank
    ``(N - z sqrt(Var S)) / 2``, with N pairs, Kendall's S variance (ties corrected) and z the ``confidence``
    quantile of the normal. With too few points for the bound to exclude anything, the smallest slope."""
    slopes = _pairwise_slopes(xs, ys)
    if not slopes:
        return None
    n = len(ys)
    ties: dict[float, int] = {}
    for y in ys:
        ties[y] = ties.get(y, 0) + 1
    var_s = (n * (n - 1) * (2 * n + 5) - sum(t * (t - 1) * (2 * t + 5) for t in ties.values())) / 18.0
    spread = _normal_quantile(confidence) * math.sqrt(max(var_s, 0.0))
    rank = math.floor((len(slopes) - spread) / 2.0)  # 1-based rank of the lower bound
    return slopes[min(max(rank - 1, 0), len(slopes) - 1)]


class PatienceRule:
    """Lightning ``EarlyStopping`` semantics: stop after ``patience`` evaluations without improving by more than
    ``min_delta`` on the best so far (equal values are not improvements). NaN points (not evaluated) are skipped.
    """

    def __init__(self, patience: int = 3, min_delta: float = 0.0, mode: str = "min") -> None:
        self.patience = _check_int("patience", patience, 0)
        self.min_delta = abs(_check_number("min_delta", min_delta, -math.inf))
        self.mode = _check_mode(mode)

    def describe(self) -> str:
        """One line naming the rule and its parameters."""
        return f"patience {self.patience} (min_delta {self.min_delta:g}, mode {self.mode})"

    def decide(
        self, energy: Sequence[float], metric: Sequence[float], companion: Sequence[float] | None = None
    ) -> Decision:
        """Decide after the last evaluated point (``energy`` and ``companion`` are not used: Lightning's rule)."""
        sign = 1.0 if self.mode == "min" else -1.0
        best, wait, stop = math.inf, 0, False
        for value in metric:
            if value is None or math.isnan(value):
                continue
            current = sign * float(value)
            if current + self.min_delta < best:  # Lightning: monitor_op(current - min_delta, best), sign-adjusted
                best, wait, stop = current, 0, False
            else:
                wait += 1
                stop = wait >= self.patience
        if stop:
            return Decision(True, f"no improvement in the last {wait} evaluations (patience {self.patience})",
                            evaluations_below=wait, warmed_up=True)
        return Decision(False, evaluations_below=wait, warmed_up=True)


def _vetoed(decision: Decision, why: str) -> Decision:
    """``decision`` turned into "continue" because the companion metric ``why``."""
    return Decision(
        False, f"{decision.reason}; vetoed: the finer-grained companion metric {why}", decision.rate_per_unit,
        decision.threshold_per_unit, decision.evaluations_below, decision.warmed_up,
    )


_MAX_FIT = 100  # evaluations at most in one slope fit (the latest): keeps decide() O(1) on very long runs


@dataclass(frozen=True)
class _Check:
    """The rule's view after one evaluation (signed: lower is better)."""

    best: float
    spent: float
    rate: float | None  # optimistic forecast gain on the best per unit of energy, over as much energy again
    threshold: float | None  # absolute threshold in effect (per unit of energy)
    fitted: int  # evaluations in the forecast fit
    plateau: bool  # no improvement over the last plateau_share of the energy
    warmed: bool

    @property
    def forecast_below(self) -> bool:
        return self.rate is not None and self.threshold is not None and self.rate <= self.threshold

    @property
    def below(self) -> bool:
        return self.plateau or self.forecast_below


class EnergyAwareRule:
    """Stop when even an optimistic forecast says more energy will not buy enough metric.

    After each evaluation (NaN metrics, epochs without evaluation, are skipped) the run stops when, past the
    warm-up, one of these holds for ``patience`` evaluations in a row:

    * **forecast** (noise-aware exchange rate): a line is drawn through the evaluations of the last
      ``window_share`` of the energy spent (at least the last ``window`` evaluations) with the *lower*
      ``confidence`` bound of their Theil-Sen slope (Sen 1968, from Kendall's S: the steepest descent the noisy
      recent points still allow). Extended over as much energy again as spent so far, it predicts what the
      metric could optimistically reach; the gain on the best value so far, per unit of energy, is the rate.
      It is *below* when at most the threshold: ``threshold`` (metric units per kWh, or per kg CO2 with
      ``unit="kg_co2"``) or, with ``threshold=None``, ``relative x |best|`` over the energy spent ("doubling the
      energy would optimistically improve the best by less than 2%"; energy units and metric scale cancel). A
      noisy window has a wide bound and keeps the run going; a rising metric (overfitting) predicts no gain.
    * **plateau**: the best value has not improved by more than ``min_delta`` over the last ``plateau_share``
      of the energy spent (``None``: off).

    and at once, without warm-up, when the best value reaches the metric's ``ideal`` value (``"auto"``: 0 for a
    ``min`` metric that is never negative, an error rate of 0 cannot improve).

    **Companion veto**: given the finer-grained error rate of the same outputs (``companion=`` in
    :meth:`decide`: the CER next to a WER), a forecast or plateau stop is vetoed while the same test on the
    companion still says continue (an absolute threshold is scaled by the ratio of the two best values): a WER
    quantised by a small validation set can sit on a plateau while the CER shows the model still improving.

    Warm-up: no stop before ``window`` evaluations and before the best value improved on the first one by
    ``warmup x |first value|`` (a flat start that has not taken off yet).

    Args:
        threshold: absolute exchange rate (metric units per unit of energy), or None for the relative default.
        unit: ``kwh`` or ``kg_co2``: what ``energy`` in :meth:`decide` is measured in.
        mode: ``min`` (WER, EER) or ``max`` (accuracy, PESQ).
        window: minimum number of evaluations in the forecast fit and in a plateau (>= 2).
        window_share: share of the energy spent covered by the forecast fit, in [0, 0.99].
        confidence: one-sided confidence of the slope bound, in [0.5, 0.999] (0.5: the Theil-Sen slope itself;
            default 0.9, the one-sided bound of an 80% two-sided interval).
        relative: the relative threshold (share of the best value per doubling of energy), in [0, 1].
        plateau_share: share of the energy spent without improvement that stops the run, in (0, 0.99], or None.
        min_delta: improvement of the best value too small to end a plateau (metric units, >= 0).
        patience: consecutive evaluations below that stop the run (>= 1).
        warmup: improvement on the first value, as a share of ``|first value|``, required before any stop.
        ideal: best possible metric value (reaching it stops the run), ``"auto"`` or None (never).
    """

    _KEYS = (
        "threshold", "unit", "mode", "window", "window_share", "confidence", "relative", "plateau_share",
        "min_delta", "patience", "warmup", "ideal",
    )

    def __init__(
        self,
        threshold: float | None = None,
        *,
        unit: str = "kwh",
        mode: str = "min",
        window: int = 5,
        window_share: float = 0.25,
        confidence: float = 0.9,
        relative: float = 0.02,
        plateau_share: float | None = 0.4,
        min_delta: float = 0.0,
        patience: int = 1,
        warmup: float = 0.1,
        ideal: float | str | None = "auto",
    ) -> None:
        if threshold is not None:
            threshold = _check_number("threshold", threshold, 0.0)
        if unit not in UNITS:
            raise ConfigError(f"unit={unit!r} is not allowed: use one of {', '.join(map(repr, UNITS))}")
        self.threshold, self.unit, self.mode = threshold, unit, _check_mode(mode)
        self.window = _check_int("window", window, 2)
        self.window_share = _check_number("window_share", window_share, 0.0, 0.99)
        self.confidence = _check_number("confidence", confidence, 0.5, 0.999)
        self.relative = _check_number("relative", relative, 0.0, 1.0)
        self.plateau_share = None if plateau_share is None else _check_number(
            "plateau_share", plateau_share, 0.0, 0.99, low_open=True
        )
        self.min_delta = _check_number("min_delta", min_delta, 0.0)
        self.patience = _check_int("patience", patience, 1)
        self.warmup = _check_number("warmup", warmup, 0.0, 1.0)
        self.ideal = _check_ideal(ideal)
        self._z = _normal_quantile(self.confidence)

    # ---------------------------------------------------------------------------------------------------------
    # plain-value round trip

    def to_dict(self) -> dict[str, Any]:
        """The constructor arguments as plain values (JSON/YAML/checkpoint friendly)."""
        return {key: getattr(self, key) for key in self._KEYS}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "EnergyAwareRule":
        """The rule :meth:`to_dict` described; unknown keys raise ConfigError."""
        unknown = sorted(set(values) - set(cls._KEYS))
        if unknown:
            raise ConfigError(f"EnergyAwareRule.from_dict: unknown keys {unknown}: allowed {', '.join(cls._KEYS)}")
        kwargs = dict(values)
        threshold = kwargs.pop("threshold", None)
        return cls(threshold, **kwargs)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items())
        return f"EnergyAwareRule({args})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, EnergyAwareRule) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(tuple(self.to_dict().items()))

    def describe(self) -> str:
        """One line naming the rule and its parameters."""
        label = unit_label(self.unit)
        if self.threshold is None:
            what = f"< {self.relative:.0%} of the best per doubling of energy"
        else:
            what = f"< {self.threshold:.4g} per {label}"
        plateau = "off" if self.plateau_share is None else f"{self.plateau_share:.0%} of energy"
        return (
            f"energy-aware: optimistic gain {what} ({self.confidence:.1%} Sen bound over the last "
            f"{self.window_share:.0%} of energy, >= {self.window} evaluations), plateau {plateau}, "
            f"ideal {self.ideal}, patience {self.patience}, warm-up {self.warmup:.0%}"
        )

    # ---------------------------------------------------------------------------------------------------------
    # the rule

    def decide(
        self, energy: Sequence[float], metric: Sequence[float], companion: Sequence[float] | None = None
    ) -> Decision:
        """Decide after the last point. ``energy``: cumulative, one per point; ``metric``: NaN = not evaluated.

        ``companion``: the finer-grained error rate of the same task (CER next to WER, see
        :func:`companion_metric`), one per point: a stop on ``metric`` is vetoed while the same test on the
        companion still says continue.
        """
        if companion is not None and len(companion) != len(energy):
            raise ConfigError(f"decide: {len(companion)} companion values for {len(energy)} points; give one per point")
        decision = self._decide(energy, metric)
        sign = 1.0 if self.mode == "min" else -1.0
        if not decision.stop or companion is None or self._ideal_reached(_evaluated(energy, metric, sign)[1], sign):
            return decision  # an ideal value cannot improve: never vetoed
        if not any(v is not None and math.isfinite(float(v)) for v in companion):
            return decision  # never evaluated: no evidence either way
        other = self._companion_rule(metric, companion)._decide(energy, companion)
        if other.stop or not other.warmed_up:
            return decision if other.stop else _vetoed(decision, "has not taken off yet")
        return _vetoed(decision, f"still pays: {other.reason}")

    def _companion_rule(self, metric: Sequence[float], companion: Sequence[float]) -> "EnergyAwareRule":
        """This rule for the companion: an absolute threshold is scaled by the ratio of the two best values."""
        if self.threshold is None:
            return self
        sign = 1.0 if self.mode == "min" else -1.0
        best = abs(min(_evaluated(metric, metric, sign)[1]))
        best_c = abs(min(_evaluated(companion, companion, sign)[1]))
        scale = best_c / best if best > 0 else 1.0
        return EnergyAwareRule.from_dict({**self.to_dict(), "threshold": self.threshold * scale})

    def _decide(self, energy: Sequence[float], metric: Sequence[float]) -> Decision:
        sign = 1.0 if self.mode == "min" else -1.0
        xs, ys = _evaluated(energy, metric, sign)
        n = len(xs)
        if n == 0:
            return Decision(False, "no evaluation yet")
        if self._ideal_reached(ys, sign):
            return Decision(
                True, f"ideal value reached: the best value {sign * min(ys):.4g} equals the metric's ideal value "
                f"{sign * self._signed_ideal(ys, sign):.4g}: nothing is left to gain", warmed_up=True,
            )
        last = self._check(xs, ys, n)
        if not last.warmed:
            return Decision(False, self._warmup_reason(ys, n), last.rate, last.threshold)
        below = 0
        for end in range(n, 0, -1):
            check = last if end == n else self._check(xs, ys, end)
            if not (check.warmed and check.below):
                break
            below += 1
            if below >= self.patience:
                break
        stop = below >= self.patience
        return Decision(stop, self._reason(last, sign, below, stop), last.rate, last.threshold, below, True)

    def _ideal_reached(self, ys: Sequence[float], sign: float) -> bool:
        """The best of the signed values ``ys`` (non-empty) equals the metric's ideal value."""
        ideal = self._signed_ideal(ys, sign)
        return ideal is not None and min(ys) <= ideal

    def _signed_ideal(self, ys: Sequence[float], sign: float) -> float | None:
        if self.ideal is None:
            return None
        if self.ideal == "auto":
            return 0.0 if self.mode == "min" and min(ys) >= 0 else None
        return sign * float(self.ideal)

    def _check(self, xs: Sequence[float], ys: Sequence[float], end: int) -> _Check:
        """The rule's view after evaluation ``end - 1``, from points ``[:end]`` only."""
        best, spent = min(ys[:end]), xs[end - 1]
        gained = ys[0] - best
        warmed = end >= self.window and gained > 0 and gained >= self.warmup * abs(ys[0])
        lo = self._fit_start(xs, end)
        rate = None
        if spent > 0:
            low = sen_lower_slope(xs[lo:end], ys[lo:end], self.confidence)
            if low is not None:
                level = statistics.median(y - low * x for x, y in zip(xs[lo:end], ys[lo:end]))
                rate = (best - (level + low * 2.0 * spent)) / spent
        threshold = self.threshold
        if threshold is None and spent > 0:
            threshold = self.relative * abs(best) / spent
        return _Check(best, spent, rate, threshold, end - lo, self._plateau(xs, ys, end), warmed)

    def _fit_start(self, xs: Sequence[float], end: int) -> int:
        """First index of the fit: the last ``window`` points, extended back over ``window_share`` of the energy."""
        lo = max(0, end - self.window)
        start_energy = (1.0 - self.window_share) * xs[end - 1]
        while lo > 0 and xs[lo - 1] >= start_energy and end - lo < _MAX_FIT:
            lo -= 1
        return lo

    def _plateau(self, xs: Sequence[float], ys: Sequence[float], end: int) -> bool:
        """The best did not improve by more than ``min_delta`` over the last ``plateau_share`` of the energy."""
        if self.plateau_share is None:
            return False
        start_energy = (1.0 - self.plateau_share) * xs[end - 1]
        lo = next(i for i in range(end) if xs[i] >= start_energy)
        if lo == 0 or end - lo < self.window:
            return False
        return min(ys[:lo]) - min(ys[lo:end]) <= self.min_delta

    def _warmup_reason(self, ys: Sequence[float], n: int) -> str:
        if n < self.window:
            return f"warm-up: {n} of {self.window} evaluations needed before any stop"
        gained = ys[0] - min(ys)
        needed = self.warmup * abs(ys[0])
        return (
            f"warm-up: the metric has improved by {gained:.4g} on its first value, "
            f"{needed:.4g} ({self.warmup:.0%} of {abs(ys[0]):.4g}) needed before any stop"
        )

    def _reason(self, check: _Check, sign: float, below: int, stop: bool) -> str:
        label = unit_label(self.unit)
        parts = []
        if check.plateau:
            parts.append(
                f"the best value {sign * check.best:.4g} has not improved by more than {self.min_delta:g} over the "
                f"last {self.plateau_share:.0%} of the energy spent"
            )
        if check.rate is not None and check.threshold is not None:
            source = f"{self.relative:.0%} of the best" if self.threshold is None else "the threshold"
            parts.append(
                f"the optimistic trend of the last {check.fitted} evaluations ({self.confidence:.1%} Sen bound) "
                f"gains {check.rate * check.spent:.4g} on the best with as much energy again "
                f"({check.spent:.4g} {label}): {check.rate:.4g} per {label} against {check.threshold:.4g} "
                f"per {label} ({source})"
            )
        head = "; ".join(parts) if parts else "no rate yet: the fit spans no energy"
        if stop:
            return f"{head}: below for {below} evaluation(s) in a row (patience {self.patience}), stop"
        return f"{head}: {below} of {self.patience} evaluations below, continue"


def _check_ideal(ideal: Any) -> float | str | None:
    if ideal is None or ideal == "auto":
        return ideal
    if isinstance(ideal, (int, float)) and not isinstance(ideal, bool) and math.isfinite(ideal):
        return float(ideal)
    raise ConfigError(f"ideal={ideal!r} is not allowed: give 'auto', None or a finite number")
