"""Statistics on runs (pure functions of :class:`Run`): totals, the Parcollet-Ravanelli fraction statement, the
Kneedle knee of best-so-far metric vs cumulative energy, what-if repricing, multi-run footprint and Pareto front.

The fraction statement follows Parcollet & Ravanelli (2021, "The Energy and Carbon Footprint of Training
End-to-End Speech Recognizers"), who report how little WER the last share of the training energy bought:
"the last 50% of the CO2 (epochs 24-45) improved valid_WER from 8.50 to 8.02".
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, NamedTuple, Sequence

import numpy as np

from ..carbon import Intensity, check_pue
from ..errors import ConfigError
from .readers_common import intensity_from
from .run import Run

__all__ = [
    "RunTotals",
    "totals",
    "best_so_far",
    "FractionStat",
    "fraction_statement",
    "KneeResult",
    "knee",
    "knee_search",
    "price_in",
    "Footprint",
    "footprint",
    "ParetoPoint",
    "pareto_front",
]


# -- totals ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunTotals:
    """Sums over one run. ``energy_kwh``/``co2_kg`` include the unattributed windows (test, predict)."""

    name: str
    epochs: int
    energy_kwh: float
    it_energy_kwh: float
    co2_kg: float
    training_energy_kwh: float
    training_co2_kg: float
    unattributed_kwh: float
    unattributed_co2_kg: float
    cost: float | None
    duration_s: float
    by_stage_kwh: Mapping[str, float]
    by_component_kwh: Mapping[str, float]
    energy_basis: str
    energy_note: str
    intensity_source: str
    pue: float


def totals(run: Run) -> RunTotals:
    """Energy (facility and IT), CO2, cost, wall time, per stage and per component, of one run."""
    train_kwh = float(np.sum(run.energy_kwh))
    train_co2 = float(np.sum(run.co2_kg))
    energy = train_kwh + run.unattributed_kwh
    durations = np.asarray(run.duration_s, dtype=float)
    return RunTotals(
        name=run.name,
        epochs=len(run),
        energy_kwh=energy,
        it_energy_kwh=energy / run.pue,
        co2_kg=train_co2 + run.unattributed_co2_kg,
        training_energy_kwh=train_kwh,
        training_co2_kg=train_co2,
        unattributed_kwh=run.unattributed_kwh,
        unattributed_co2_kg=run.unattributed_co2_kg,
        cost=float(np.sum(run.cost)) if run.cost is not None else None,
        duration_s=float(np.nansum(durations)) if np.isfinite(durations).any() else math.nan,
        by_stage_kwh={k: float(np.sum(v)) for k, v in run.stage_kwh.items()},
        by_component_kwh={k: float(np.sum(v)) for k, v in run.component_kwh.items()},
        energy_basis=run.energy_basis,
        energy_note=run.energy_note,
        intensity_source=run.intensity_source,
        pue=run.pue,
    )


# -- best so far and the fraction statement --------------------------------------------------------------------
def _check_mode(mode: str) -> str:
    if mode not in ("min", "max"):
        raise ConfigError(f"mode={mode!r} is not allowed: use 'min' or 'max'")
    return mode


def best_so_far(values: Sequence[float], mode: str) -> np.ndarray:
    """Running best of ``values`` (NaN = not evaluated, skipped); NaN before the first evaluated epoch."""
    _check_mode(mode)
    arr = np.asarray(values, dtype=float)
    fill = np.inf if mode == "min" else -np.inf
    clean = np.where(np.isnan(arr), fill, arr)
    running = np.minimum.accumulate(clean) if mode == "min" else np.maximum.accumulate(clean)
    return np.where(np.isinf(running) & (running == fill), np.nan, running)


@dataclass(frozen=True)
class FractionStat:
    """What the last ``1 - fraction`` of the CO2 (or energy) bought.

    ``epoch`` is the first epoch at which the cumulative CO2 reached ``fraction`` of the total; ``gain_abs`` is
    the improvement of the best-so-far metric after it (>= 0, in the metric's printed unit), ``gain_rel`` that gain
    relative to the best-so-far at ``epoch``; ``rate_per_kwh`` / ``rate_per_kg`` the tail's exchange rate (metric
    units bought per kWh / per kg CO2e); NaN where undefined (no tail, metric not evaluated yet).
    """

    run: str
    metric: str
    mode: str
    fraction: float
    by: str
    epoch: int
    next_epoch: int | None
    last_epoch: int
    spent_share: float
    energy_at_kwh: float
    energy_total_kwh: float
    co2_at_kg: float
    co2_total_kg: float
    best_at: float
    best_end: float
    gain_abs: float
    gain_rel: float
    rate_per_kwh: float
    rate_per_kg: float
    energy_basis: str

    @property
    def remaining_energy_kwh(self) -> float:
        return self.energy_total_kwh - self.energy_at_kwh

    @property
    def remaining_co2_kg(self) -> float:
        return self.co2_total_kg - self.co2_at_kg

    @property
    def sentence(self) -> str:
        """One plain-language sentence (units of the metric as printed in the log)."""
        share = f"{100 * (1 - self.spent_share):.0f}%"
        what = "CO2" if self.by == "co2" else "energy"
        tail = f"epochs {self.next_epoch}-{self.last_epoch}" if self.next_epoch is not None else "no epoch"
        if self.energy_basis == "equal":
            cost = f"the last {share} of the epochs ({tail})"
        else:
            cost = f"the last {share} of the {what} ({self.remaining_co2_kg:.3g} kg CO2e, " \
                f"{self.remaining_energy_kwh:.3g} kWh, {tail})"
        if math.isnan(self.best_at):
            return f"{cost[0].upper()}{cost[1:]}: {self.metric} was not evaluated before epoch {self.epoch}."
        if self.gain_abs == 0:
            return f"{cost[0].upper()}{cost[1:]} bought no improvement: {self.metric} stayed at {self.best_at:.4g}."
        rel = f", {100 * self.gain_rel:.1f}% relative" if math.isfinite(self.gain_rel) else ""
        text = (
            f"{cost[0].upper()}{cost[1:]} improved {self.metric} from {self.best_at:.4g} to {self.best_end:.4g} "
            f"({self.gain_abs:.3g}{rel})"
        )
        if self.energy_basis != "equal" and math.isfinite(self.rate_per_kwh):
            text += f": {self.rate_per_kwh:.3g} per kWh, {self.rate_per_kg:.3g} per kg CO2e"
        if self.energy_basis in ("duration", "equal"):
            text += " (energy estimated, see the run's energy note)"
        return text + "."


def _cumulative(run: Run, by: str) -> np.ndarray:
    if by not in ("co2", "energy"):
        raise ConfigError(f"by={by!r} is not allowed: use 'co2' or 'energy'")
    cum = run.cumulative_co2_kg() if by == "co2" else run.cumulative_energy_kwh()
    if len(cum) == 0 or not cum[-1] > 0:
        raise ConfigError(f"run {run.name!r} has no {by} to share out (total {cum[-1] if len(cum) else 0:g})")
    return cum


def fraction_statement(
    run: Run, metric: str | None = None, mode: str | None = None, fraction: float = 0.5, *, by: str = "co2"
) -> FractionStat:
    """The Parcollet-Ravanelli statement: what the CO2 spent after ``fraction`` of the total bought.

    Raises:
        ConfigError: fraction outside (0, 1], unknown metric or mode, a run without CO2/energy.
    """
    if not isinstance(fraction, (int, float)) or not 0.0 < float(fraction) <= 1.0:
        raise ConfigError(f"fraction={fraction!r} is not allowed: give a share in (0, 1], e.g. 0.5")
    name, mode = run.infer_metric(metric, mode)
    cum = _cumulative(run, by)
    total = cum[-1]
    idx = int(np.argmax(cum >= fraction * total * (1 - 1e-12)))
    best = best_so_far(run.metric(name), mode)
    finite = best[np.isfinite(best)]
    best_end = float(finite[-1]) if finite.size else math.nan
    best_at = float(best[idx])
    gain = (best_at - best_end) if mode == "min" else (best_end - best_at)
    e_cum, c_cum = run.cumulative_energy_kwh(), run.cumulative_co2_kg()
    tail_kwh, tail_kg = e_cum[-1] - e_cum[idx], c_cum[-1] - c_cum[idx]
    return FractionStat(
        run=run.name,
        metric=name,
        mode=mode,
        fraction=float(fraction),
        by=by,
        epoch=run.epochs[idx],
        next_epoch=run.epochs[idx + 1] if idx + 1 < len(run) else None,
        last_epoch=run.epochs[-1],
        spent_share=float(cum[idx] / total),
        energy_at_kwh=float(e_cum[idx]),
        energy_total_kwh=float(e_cum[-1]),
        co2_at_kg=float(c_cum[idx]),
        co2_total_kg=float(c_cum[-1]),
        best_at=best_at,
        best_end=best_end,
        gain_abs=float(gain),
        gain_rel=float(gain / abs(best_at)) if best_at and math.isfinite(best_at) else math.nan,
        rate_per_kwh=float(gain / tail_kwh) if tail_kwh > 0 else math.nan,
        rate_per_kg=float(gain / tail_kg) if tail_kg > 0 else math.nan,
        energy_basis=run.energy_basis,
    )


# -- knee ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class KneeResult:
    """The Kneedle knee of best-so-far metric vs cumulative energy (or CO2).

    A descriptive point: where the marginal gain per kWh falls to the run's average gain per kWh. It usually
    comes early and is not a stopping recommendation by itself (method.md 3.1).
    """

    run: str
    metric: str
    mode: str
    by: str
    epoch: int
    index: int
    energy_kwh: float
    co2_kg: float
    share: float
    best_at: float
    best_end: float
    sensitivity: float


MIN_KNEE_POINTS = 5


def knee_search(
    run: Run, metric: str | None = None, mode: str | None = None, *, by: str = "energy", sensitivity: float = 1.0
) -> tuple[KneeResult | None, str]:
    """The knee and an empty reason, or None and why there is none.

    Kneedle (Satopää et al. 2011, via ``kneed``) on the best-so-far metric at the evaluated epochs against the
    cumulative energy (``by="energy"``) or CO2: convex/decreasing for ``min`` metrics, concave/increasing for
    ``max``. The best-so-far envelope is the smoothing: noise on a plateau becomes a flat step instead of spurious
    local maxima, and ``interp1d`` then reads the data as is (a degree-7 polynomial overshoots on 15-50 points).
    The knee is the GLOBAL maximum of Kneedle's difference curve, confirmed when the curve later drops below
    Kneedle's threshold ``max - S * mean(dx)``; kneed's own first local maximum lands on the first point of any
    flat start (best-so-far steps, late take-off), which says nothing.
    """
    name, mode = run.infer_metric(metric, mode)
    if not (isinstance(sensitivity, (int, float)) and math.isfinite(sensitivity) and sensitivity > 0):
        raise ConfigError(f"sensitivity={sensitivity!r} is not allowed: give a number > 0 (kneed's S, default 1)")
    cum = _cumulative(run, by)
    values = run.metric(name)
    index = np.flatnonzero(np.isfinite(values))
    if index.size < MIN_KNEE_POINTS:
        return None, f"{name} evaluated in {index.size} epochs: a knee needs at least {MIN_KNEE_POINTS}"
    x, y = cum[index], best_so_far(values, mode)[index]
    keep = np.concatenate([np.diff(x) > 0, [True]])  # equal x (zero-energy epochs): keep the last
    x, y, index = x[keep], y[keep], index[keep]
    if y[0] == y[-1]:
        return None, f"{name} never improved on its first value {y[0]:.4g}: no knee"
    from kneed import KneeLocator

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # kneed warns "No knee/elbow found"
        locator = KneeLocator(
            x, y, S=float(sensitivity),
            curve="convex" if mode == "min" else "concave",
            direction="decreasing" if mode == "min" else "increasing",
            interp_method="interp1d", online=False,
        )
    diff = np.asarray(locator.y_difference, dtype=float)
    pos = int(np.argmax(diff))
    if not diff[pos] > 0:
        return None, f"{name} vs cumulative {by} shows no diminishing returns (the curve is not {locator.curve})"
    threshold = diff[pos] - float(sensitivity) * float(np.mean(np.diff(locator.x_normalized)))
    if not (diff[pos + 1 :] < threshold).any():
        return None, f"no knee confirmed in {name} vs cumulative {by}: still improving at the end of the run"
    i = int(index[pos])
    return KneeResult(
        run=run.name,
        metric=name,
        mode=mode,
        by=by,
        epoch=run.epochs[i],
        index=i,
        energy_kwh=float(run.cumulative_energy_kwh()[i]),
        co2_kg=float(run.cumulative_co2_kg()[i]),
        share=float(cum[i] / cum[-1]),
        best_at=float(y[pos]),
        best_end=float(y[-1]),
        sensitivity=float(sensitivity),
    ), ""


def knee(
    run: Run, metric: str | None = None, mode: str | None = None, *, by: str = "energy", sensitivity: float = 1.0
) -> KneeResult | None:
    """The knee of the run, None when there is none (:func:`knee_search` says why)."""
    return knee_search(run, metric, mode, by=by, sensitivity=sensitivity)[0]


# -- what-if repricing -----------------------------------------------------------------------------------------
def _epoch_g_per_kwh(run: Run, source: Intensity) -> np.ndarray:
    fixed = getattr(source, "g_per_kwh", None)
    if isinstance(fixed, (int, float)):
        return np.full(len(run), float(fixed))
    if run.start_utc is None or run.end_utc is None or any(
        s is None or e is None for s, e in zip(run.start_utc, run.end_utc)
    ):
        raise ConfigError(
            f"intensity {source.source!r} varies in time but run {run.name!r} lacks epoch timestamps: "
            "give a number (g/kWh) or a country"
        )
    return np.array([source.mean_g_per_kwh(s, e) for s, e in zip(run.start_utc, run.end_utc)], dtype=float)


def price_in(
    run: Run,
    intensity: float | Intensity | str | Path | None = None,
    *,
    country: str | None = None,
    region: str | None = None,
    pue: float | None = None,
) -> Run:
    """The same run priced with another carbon intensity and/or PUE (what-if).

    ``intensity`` may be g/kWh, an :class:`Intensity`, an intensity CSV path or a country code (``"FR"``). A
    time-varying intensity needs the run's epoch timestamps. A new PUE rescales every energy figure (IT energy x
    new PUE); the cost scales with energy. With neither given, the run comes back unchanged.
    """
    if intensity is None and country is None and region is None and pue is None:
        return run
    new_pue = check_pue(pue) if pue is not None else run.pue
    scale = new_pue / run.pue
    energy = np.asarray(run.energy_kwh, dtype=float) * scale
    unattributed = run.unattributed_kwh * scale
    if intensity is None and country is None and region is None:
        co2 = np.asarray(run.co2_kg) * scale
        un_co2 = run.unattributed_co2_kg * scale
        g_mean, source = run.intensity_g_per_kwh, run.intensity_source
    else:
        src = intensity_from(intensity, country, region)
        g = _epoch_g_per_kwh(run, src)
        co2 = energy * g / 1000.0
        g_mean = float(np.average(g, weights=energy)) if energy.sum() > 0 else float(np.mean(g))
        un_co2 = unattributed * g_mean / 1000.0
        source = src.source
    note = f"repriced: PUE {run.pue:g} -> {new_pue:g}, intensity {source}"
    return dataclasses.replace(
        run,
        energy_kwh=tuple(energy),
        co2_kg=tuple(co2),
        stage_kwh={k: tuple(np.asarray(v) * scale) for k, v in run.stage_kwh.items()},
        component_kwh={k: tuple(np.asarray(v) * scale) for k, v in run.component_kwh.items()},
        cost=tuple(np.asarray(run.cost) * scale) if run.cost is not None else None,
        unattributed_kwh=unattributed,
        unattributed_co2_kg=un_co2,
        intensity_g_per_kwh=g_mean,
        intensity_source=source,
        pue=new_pue,
        notes=run.notes + (note,),
    )


# -- several runs ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Footprint:
    """Totals across runs. Runs with ``equal`` energy (no energy figure at all) are listed, not summed."""

    runs: tuple[RunTotals, ...]
    energy_kwh: float
    it_energy_kwh: float
    co2_kg: float
    cost: float | None
    duration_s: float
    estimated: tuple[str, ...]
    excluded: tuple[str, ...]

    @property
    def n_runs(self) -> int:
        return len(self.runs)


def footprint(runs: Sequence[Run]) -> Footprint:
    """Sum energy, CO2, cost and wall time over runs (e.g. a hyper-parameter search)."""
    if not runs:
        raise ConfigError("footprint() needs at least one run")
    each = tuple(totals(r) for r in runs)
    counted = [t for t in each if t.energy_basis != "equal"]
    costs = [t.cost for t in counted if t.cost is not None]
    durations = [t.duration_s for t in each if math.isfinite(t.duration_s)]
    return Footprint(
        runs=each,
        energy_kwh=sum(t.energy_kwh for t in counted),
        it_energy_kwh=sum(t.it_energy_kwh for t in counted),
        co2_kg=sum(t.co2_kg for t in counted),
        cost=sum(costs) if costs else None,
        duration_s=sum(durations) if durations else math.nan,
        estimated=tuple(t.name for t in counted if t.energy_basis != "measured"),
        excluded=tuple(t.name for t in each if t.energy_basis == "equal"),
    )


class ParetoPoint(NamedTuple):
    """A run on the CO2 / quality front: total CO2 (kg, unattributed included) and its best metric value."""

    name: str
    co2_kg: float
    best: float


def pareto_front(runs: Sequence[Run], metric: str | None = None, mode: str | None = None) -> list[ParetoPoint]:
    """Runs not dominated in (less CO2, better best metric), sorted by CO2.

    Raises:
        ConfigError: no runs, runs whose metrics go in different directions, or a run with no energy figure.
    """
    if not runs:
        raise ConfigError("pareto_front() needs at least one run")
    unpriced = [r.name for r in runs if r.energy_basis == "equal"]
    if unpriced:
        raise ConfigError(f"runs {', '.join(unpriced)} have no energy figure: give power_w= or gpu= when reading")
    points, modes = [], set()
    for run in runs:
        name, run_mode = run.infer_metric(metric, mode)
        modes.add(run_mode)
        values = run.metric(name)
        if not np.isfinite(values).any():
            raise ConfigError(f"run {run.name!r} never evaluated {name!r}: no best value to compare")
        best = float(np.nanmin(values) if run_mode == "min" else np.nanmax(values))
        points.append(ParetoPoint(run.name, totals(run).co2_kg, best))
    if len(modes) > 1:
        raise ConfigError("the runs' metrics go in different directions: give metric= and mode=")
    sign = 1.0 if modes.pop() == "min" else -1.0

    def dominated(p: ParetoPoint) -> bool:
        for q in points:
            no_worse = q.co2_kg <= p.co2_kg and sign * q.best <= sign * p.best
            if no_worse and (q.co2_kg < p.co2_kg or sign * q.best < sign * p.best):
                return True
        return False

    return sorted((p for p in points if not dominated(p)), key=lambda p: (p.co2_kg, sign * p.best))
