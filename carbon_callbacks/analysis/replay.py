"""Replay a stopping rule causally on a finished run, the hindsight optimum, and a validated threshold suggestion.

``replay`` feeds a rule the history up to each epoch, in order, and stops at the first epoch it says stop: what it
would have saved and what it would have cost. The kept checkpoint is the best-so-far one (what a user keeps with
``ModelCheckpoint(monitor=...)``), so the metric at stop is the best value seen up to the stop epoch.

Relative loss is ``metric_loss / |final best|``; when the final best is exactly 0 (an error rate reaching 0) it
is the loss as a share of the metric's full scale instead (:func:`metric_full_scale`: 1 for a metric whose values
all lie in [-1, 1], a fraction; 100 otherwise, a percentage), e.g. 0.0066 error lost -> 0.66%.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ..errors import ConfigError
from .run import Run
from .stopping import Decision, EnergyAwareRule, PatienceRule, call_decide, companion_metric, unit_label

__all__ = ["ReplayResult", "Suggestion", "replay", "hindsight_optimum", "suggest", "relative_loss", "metric_full_scale"]


@dataclass(frozen=True)
class ReplayResult:
    """What a rule would have done on one run.

    Attributes:
        run_name / metric / mode: the run and the metric replayed (``min`` or ``max``).
        rule: one line describing the rule.
        stopped: the rule stopped before the last epoch.
        stop_index: row index of the stop (the last row when never stopped); stop_epoch: its epoch number.
        energy_used_kwh / energy_total_kwh / energy_saved_kwh: facility energy to the stop, in all, and saved.
        energy_saved_fraction: ``energy_saved_kwh / energy_total_kwh`` (0 when the run has no energy).
        co2_saved_kg: CO2-eq of the epochs after the stop.
        metric_at_stop: best metric seen up to the stop (the checkpoint kept); NaN when none was evaluated.
        final_best_metric: best metric of the whole run.
        metric_loss: ``metric_at_stop`` worse than ``final_best_metric`` by this much (>= 0, metric units).
        metric_loss_relative: ``metric_loss / |final_best_metric|``; when the final best is 0, ``metric_loss`` over
            the metric's full scale (:func:`metric_full_scale`).
        reason: the rule's sentence at the stop (or why it never stopped).
        companion: the finer-grained metric that could veto a stop (``valid_CER`` for ``valid_WER``), or None.
    """

    run_name: str
    metric: str
    mode: str
    rule: str
    stopped: bool
    stop_index: int
    stop_epoch: int
    energy_used_kwh: float
    energy_total_kwh: float
    energy_saved_kwh: float
    energy_saved_fraction: float
    co2_saved_kg: float
    metric_at_stop: float
    final_best_metric: float
    metric_loss: float
    metric_loss_relative: float
    reason: str
    companion: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain values (JSON friendly apart from inf/NaN floats)."""
        return dict(self.__dict__)


@dataclass(frozen=True)
class Suggestion:
    """An absolute exchange-rate threshold for the next similar run, validated by replay.

    Attributes:
        value: the threshold, metric units per ``unit`` (feed it to ``EnergyAwareRule(value, unit=unit)``).
        unit: machine unit, ``kwh`` or ``kg_co2``.
        unit_label: human unit, e.g. ``valid_WER per kWh``.
        metric / mode: the metric and its direction.
        max_loss_relative: the loss bound the threshold was chosen for.
        stop_epochs: the stop epoch on each validation run (order of ``validated_by``).
        energy_saved_fraction: median energy saved over the validation replays.
        metric_loss / metric_loss_relative: worst loss over the validation replays.
        validated_by: replays of the threshold on the given runs; with several runs, each run is replayed with
            the threshold chosen on the OTHER runs (leave-one-out), with one run, in-sample.
        validation: ``leave-one-out`` or ``in-sample``.
        hindsight: the hindsight optimum of each run, for reference.
        rule: the full rule (``EnergyAwareRule.to_dict()``) to use.
        note: a sentence on how the value was chosen and how far to trust it.
    """

    value: float
    unit: str
    unit_label: str
    metric: str
    mode: str
    max_loss_relative: float
    stop_epochs: tuple[int, ...]
    energy_saved_fraction: float
    metric_loss: float
    metric_loss_relative: float
    validated_by: tuple[ReplayResult, ...]
    validation: str
    hindsight: tuple[ReplayResult, ...]
    rule: dict[str, Any] = field(default_factory=dict)
    note: str = ""

    @property
    def threshold(self) -> float:
        """Alias of ``value`` (the absolute threshold); use ``rule`` for the patience it was validated with."""
        return self.value

    @property
    def stop_epoch(self) -> int:
        """The stop epoch on the first validation run."""
        return self.stop_epochs[0]

    def sentence(self) -> str:
        """The threshold as a trade a user reads."""
        if self.value > 0:
            per_point = f" ({1.0 / self.value:.4g} {self.unit_label.split(' per ')[-1]} per metric unit)"
        else:
            per_point = ""
        return (
            f"stop when the metric gains less than {self.value:.4g} {self.unit_label}{per_point}: "
            f"replay ({self.validation}) saves a median {self.energy_saved_fraction:.0%} of the energy, "
            f"worst loss {self.metric_loss:.4g} ({_pct(self.metric_loss_relative)} of the final best)"
        )


def _pct(value: float) -> str:
    return "inf" if math.isinf(value) else f"{value:.1%}"


def relative_loss(loss: float, final_best: float, full_scale: float | None = None) -> float:
    """``loss / |final_best|``; when the final best is 0, ``loss / full_scale`` (the absolute loss as a share of
    the metric's scale: 1 for fractions, 100 for percentages), inf without a ``full_scale``; 0 when nothing was
    lost."""
    if loss <= 0:
        return 0.0
    if final_best != 0:
        return loss / abs(final_best)
    if full_scale is None or not full_scale > 0:
        return math.inf
    return loss / full_scale


def metric_full_scale(values: Sequence[float] | np.ndarray) -> float:
    """1.0 when every finite value lies in [-1, 1] (a fraction: error rate, accuracy), else 100.0 (a percentage:
    WER, PER, EER in %)."""
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    return 1.0 if finite.size and float(np.abs(finite).max()) <= 1.0 else 100.0


def _with_mode(rule: Any, mode: str) -> Any:
    """The rule itself, or a copy with ``mode`` when it differs (the run's metric decides the direction)."""
    if getattr(rule, "mode", mode) == mode:
        return rule
    if isinstance(rule, EnergyAwareRule):
        return EnergyAwareRule.from_dict({**rule.to_dict(), "mode": mode})
    if isinstance(rule, PatienceRule):
        return PatienceRule(rule.patience, rule.min_delta, mode)
    raise ConfigError(f"rule {rule!r} has mode={rule.mode!r} but metric needs mode={mode!r}")


def _describe(rule: Any) -> str:
    describe = getattr(rule, "describe", None)
    return describe() if callable(describe) else repr(rule)


def _signed_best_so_far(values: np.ndarray, mode: str) -> np.ndarray:
    """Best-so-far in the metric's own units (NaN before the first evaluation)."""
    signed = values if mode == "min" else -values
    filled = np.where(np.isfinite(signed), signed, np.inf)
    best = np.minimum.accumulate(filled)
    best = np.where(np.isinf(best), np.nan, best)
    return best if mode == "min" else -best


def _result(run: Run, name: str, mode: str, stop: int, stopped: bool, rule: str, reason: str) -> ReplayResult:
    values = run.metric(name)
    best_so_far = _signed_best_so_far(values, mode)
    energy = run.cumulative_energy_kwh()
    co2 = run.cumulative_co2_kg()
    total = float(energy[-1]) if len(energy) else 0.0
    used = float(energy[stop])
    at_stop = float(best_so_far[stop])
    final = float(best_so_far[-1])
    if math.isnan(at_stop):
        loss = math.inf
    else:
        loss = max(0.0, (at_stop - final) if mode == "min" else (final - at_stop))
    return ReplayResult(
        run_name=run.name,
        metric=name,
        mode=mode,
        rule=rule,
        stopped=stopped,
        stop_index=stop,
        stop_epoch=run.epochs[stop],
        energy_used_kwh=used,
        energy_total_kwh=total,
        energy_saved_kwh=total - used,
        energy_saved_fraction=(total - used) / total if total > 0 else 0.0,
        co2_saved_kg=float(co2[-1] - co2[stop]),
        metric_at_stop=at_stop,
        final_best_metric=final,
        metric_loss=loss,
        metric_loss_relative=relative_loss(loss, final, metric_full_scale(values)),
        reason=reason,
    )


def _check_run(run: Run, name: str) -> None:
    if len(run) == 0:
        raise ConfigError(f"run {run.name!r} has no epochs to replay")
    if not np.isfinite(run.metric(name)).any():
        raise ConfigError(f"run {run.name!r}: metric {name!r} was never evaluated")


def replay(
    run: Run, rule: Any, metric: str | None = None, mode: str | None = None, companion: str | None = "auto"
) -> ReplayResult:
    """Replay ``rule`` (anything with ``decide(energy, metric) -> Decision``) causally on ``run``.

    The rule sees, at each epoch, the cumulative energy (kWh, or kg CO2 when ``rule.unit == "kg_co2"``) and the
    metric up to that epoch only; the first epoch it says stop is the stop epoch. The rule's mode is set to the
    metric's direction (given, or inferred from the metric name). ``companion``: the finer-grained metric passed
    to rules that take one (``"auto"``: :func:`~carbon_callbacks.analysis.stopping.companion_metric`, e.g.
    ``valid_CER`` for ``valid_WER``; None: none; a name: that column).

    Raises:
        ConfigError: unknown metric, companion or mode, empty run, metric never evaluated.
    """
    name, mode = run.infer_metric(metric, mode)
    _check_run(run, name)
    rule = _with_mode(rule, mode)
    energy = run.cumulative_co2_kg() if getattr(rule, "unit", "kwh") == "kg_co2" else run.cumulative_energy_kwh()
    values = run.metric(name)
    partner = _companion(run, name, companion)
    partner_values = None if partner is None else run.metric(partner)
    last: Decision | None = None
    stop, stopped = len(run) - 1, False
    for index in range(len(run)):
        window = None if partner_values is None else partner_values[: index + 1].tolist()
        last = call_decide(rule, energy[: index + 1].tolist(), values[: index + 1].tolist(), window)
        if last.stop:
            stop, stopped = index, index < len(run) - 1
            break
    if last is not None and last.stop:
        reason = last.reason
    else:
        reason = f"never stopped; at the last epoch: {last.reason}" if last and last.reason else "never stopped"
    result = _result(run, name, mode, stop, stopped, _describe(rule), reason)
    return dataclasses.replace(result, companion=partner)


def _companion(run: Run, name: str, companion: str | None) -> str | None:
    if companion is None:
        return None
    if companion == "auto":
        return companion_metric(name, run.metrics)
    if companion not in run.metrics:
        raise ConfigError(f"run {run.name!r} has no companion metric {companion!r}: it has {sorted(run.metrics)}")
    return companion


def hindsight_optimum(
    run: Run, max_loss_relative: float = 0.02, metric: str | None = None, mode: str | None = None
) -> ReplayResult:
    """The earliest stop (knowing the whole run) whose best-so-far is within ``max_loss_relative`` of the final
    best: the most energy any rule could have saved at that loss."""
    if not float(max_loss_relative) >= 0:
        raise ConfigError(f"max_loss_relative={max_loss_relative!r} is not allowed: give a share >= 0 (0.02 = 2%)")
    name, mode = run.infer_metric(metric, mode)
    _check_run(run, name)
    label = f"hindsight optimum (loss <= {max_loss_relative:.1%})"
    for index in range(len(run)):
        result = _result(run, name, mode, index, index < len(run) - 1, label, "")
        if result.metric_loss_relative <= max_loss_relative:
            reason = (
                f"epoch {result.stop_epoch} is the first whose best-so-far {result.metric_at_stop:.4g} is within "
                f"{max_loss_relative:.1%} of the final best {result.final_best_metric:.4g}"
            )
            return _result(run, name, mode, index, result.stopped, label, reason)
    raise AssertionError("the last epoch is always within the bound")  # pragma: no cover


# ---------------------------------------------------------------------------------------------------------------------
# suggest


def _candidate_thresholds(runs: Sequence[Run], base: EnergyAwareRule, names: Sequence[str], count: int) -> list[float]:
    """0 and ``count`` log-spaced rates spanning the positive rates the rule measured on the runs."""
    rates: list[float] = []
    probe = EnergyAwareRule.from_dict({**base.to_dict(), "threshold": 0.0})
    for run, name in zip(runs, names):
        energy = run.cumulative_co2_kg() if base.unit == "kg_co2" else run.cumulative_energy_kwh()
        values = run.metric(name)
        for index in range(len(run)):
            rate = probe.decide(energy[: index + 1].tolist(), values[: index + 1].tolist()).rate_per_unit
            if rate is not None and rate > 0 and math.isfinite(rate):
                rates.append(rate)
    if not rates:
        return [0.0]
    low, high = min(rates), max(rates)
    grid = np.geomspace(low, high, count) if high > low else np.array([low])
    return [0.0] + [float(v) for v in grid]


_PATIENCES = (1, 2, 3)  # searched by suggest() unless patience= is given


def _choose(table: list[list[ReplayResult]], columns: Sequence[int], bound: float, per_patience: int) -> int:
    """Row of the threshold with the most mean energy saved whose worst loss on ``columns`` is within ``bound``
    with a margin: the next larger threshold of the same patience (rows come in blocks of ``per_patience``
    ascending thresholds) must be within the bound too, so the pick survives the few percent by which the energy
    of the next run differs (estimated meters, other hardware load). If none is, the row with the smallest worst
    loss."""
    def worst(row: int) -> float:
        return max(table[row][c].metric_loss_relative for c in columns)

    def saved(row: int) -> float:
        return float(np.mean([table[row][c].energy_saved_fraction for c in columns]))

    def safe(row: int) -> bool:
        last_of_block = (row + 1) % per_patience == 0
        return worst(row) <= bound and (last_of_block or worst(row + 1) <= bound)

    ok = [row for row in range(len(table)) if safe(row)]
    if ok:
        return max(ok, key=lambda row: (saved(row), -row))
    return min(range(len(table)), key=lambda row: (worst(row), row))


def suggest(
    runs: Run | Sequence[Run],
    *,
    max_loss_relative: float = 0.02,
    unit: str = "kwh",
    metric: str | None = None,
    mode: str | None = None,
    candidates: int = 40,
    **rule_kwargs: Any,
) -> Suggestion:
    """An absolute threshold (metric units per kWh or per kg CO2) for the next similar run.

    Candidate thresholds (0 and ``candidates`` log-spaced rates the rule measured on the runs), with patience
    1, 2 and 3 unless ``patience`` is given, are replayed on every run with ``EnergyAwareRule(threshold,
    unit=unit, **rule_kwargs)``; the chosen one saves the most mean energy with no run losing more than
    ``max_loss_relative``, and so does the next larger candidate (a margin for the energy noise of the next run;
    ties: the smaller threshold, the shorter patience). Validation: with several runs each run is
    replayed with the threshold chosen on the others (leave-one-out); with one run the replay is in-sample.

    Raises:
        ConfigError: no runs, a bad bound or rule argument, a metric missing from a run, mixed directions.
    """
    runs = [runs] if isinstance(runs, Run) else list(runs)
    if not runs:
        raise ConfigError("suggest: give at least one run")
    if not float(max_loss_relative) >= 0:
        raise ConfigError(f"max_loss_relative={max_loss_relative!r} is not allowed: give a share >= 0 (0.02 = 2%)")
    picked = [run.infer_metric(metric, mode) for run in runs]
    modes = {m for _, m in picked}
    if len(modes) != 1:
        raise ConfigError(f"suggest: runs disagree on the metric direction ({sorted(modes)}): give mode=")
    run_mode = modes.pop()
    names = [name for name, _ in picked]
    for run, name in zip(runs, names):
        _check_run(run, name)
    base = EnergyAwareRule(0.0, unit=unit, mode=run_mode, **rule_kwargs)
    patiences = (base.patience,) if "patience" in rule_kwargs else _PATIENCES
    rates = _candidate_thresholds(runs, base, names, candidates)
    rules = [
        EnergyAwareRule.from_dict({**base.to_dict(), "threshold": t, "patience": p}) for p in patiences for t in rates
    ]
    thresholds = [rule.threshold or 0.0 for rule in rules]
    table = [[replay(run, rule, name, run_mode) for run, name in zip(runs, names)] for rule in rules]
    everyone = list(range(len(runs)))
    chosen = _choose(table, everyone, max_loss_relative, len(rates))
    if len(runs) > 1:
        validation = "leave-one-out"
        validated = tuple(
            table[_choose(table, [c for c in everyone if c != k], max_loss_relative, len(rates))][k] for k in everyone
        )
    else:
        validation = "in-sample"
        validated = (table[chosen][0],)
    value = thresholds[chosen]
    hindsight = tuple(hindsight_optimum(run, max_loss_relative, name, run_mode) for run, name in zip(runs, names))
    worst = max(r.metric_loss_relative for r in validated)
    metric_label = names[0] if len(set(names)) == 1 else "metric"
    note = (
        f"chosen among {len(thresholds)} (threshold, patience) pairs on {len(runs)} run(s) "
        f"for a loss <= {max_loss_relative:.1%}; "
        f"{validation} replay: worst loss {_pct(worst)}"
        + ("" if worst <= max_loss_relative else " (above the bound: no threshold met it on held-out runs)")
    )
    return Suggestion(
        value=value,
        unit=unit,
        unit_label=f"{metric_label} per {unit_label(unit)}",
        metric=metric_label,
        mode=run_mode,
        max_loss_relative=float(max_loss_relative),
        stop_epochs=tuple(r.stop_epoch for r in validated),
        energy_saved_fraction=float(np.median([r.energy_saved_fraction for r in validated])),
        metric_loss=max(r.metric_loss for r in validated),
        metric_loss_relative=worst,
        validated_by=validated,
        validation=validation,
        hindsight=hindsight,
        rule=rules[chosen].to_dict(),
        note=note,
    )
