"""One frozen summary per run: totals, "the last X% of the CO2 bought ...", the knee and a suggested threshold.

Everything the terminal report, the JSON output, the Markdown/HTML report and the figures say about a run comes
from :func:`summarize`, so they never disagree. The numbers are computed by :mod:`carbon_callbacks.analysis.stats`
and :mod:`carbon_callbacks.analysis.replay`; this module only gathers them and puts them into words.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from .analysis.run import Run
from .analysis.stats import (
    FractionStat,
    Footprint,
    ParetoPoint,
    footprint,
    fraction_statement,
    knee_search,
    pareto_front,
    totals,
)
from .errors import ConfigError

__all__ = [
    "SuggestedThreshold",
    "RunSummary",
    "summarize",
    "Comparison",
    "compare",
    "format_quantity",
    "format_co2",
    "format_energy",
    "short_metric_name",
    "json_clean",
]


@dataclass(frozen=True)
class SuggestedThreshold:
    """An energy-aware stopping threshold and what it would have done on this run (replayed causally).

    Attributes:
        value: exchange rate: stop when one ``unit`` of energy buys less than ``value`` metric units.
        unit: ``kwh`` or ``kg_co2`` (``epoch`` when the log had no energy: one unit per epoch).
        stop_epoch: where the rule would have stopped (None: it would not have stopped).
        energy_saved_fraction: share of the run's energy not spent (0..1).
        metric_loss: best-so-far at the stop minus the final best, in metric units (>= 0: worse).
        metric_loss_relative: ``metric_loss`` / \\|final best\\|.
        patience: evaluations in a row below the threshold that stop the run.
        max_loss_relative: the loss bound the threshold was chosen for (0.02: 2% of the final best).
        rule: the full ``EnergyAwareRule.to_dict()`` to reuse (``EnergyAwareRule.from_dict(rule)``).
        note: how the value was chosen.
    """

    value: float
    unit: str
    stop_epoch: int | None
    energy_saved_fraction: float
    metric_loss: float
    metric_loss_relative: float
    patience: int = 0
    max_loss_relative: float = 0.02
    rule: Mapping[str, Any] = field(default_factory=dict)
    note: str = ""


@dataclass(frozen=True)
class RunSummary:
    """Everything the reports say about one run. Build it with :func:`summarize`."""

    run_name: str
    source: str
    format: str
    metric: str
    mode: str
    epochs: int
    first_epoch: int
    last_epoch: int
    total_energy_kwh: float
    total_co2_kg: float
    total_duration_s: float
    energy_is_estimated: bool
    energy_basis: str
    energy_note: str
    intensity_g_per_kwh: float | None
    intensity_source: str
    pue: float
    best_metric: float
    best_epoch: int
    final_metric: float
    statements: tuple[FractionStat, ...]
    knee_epoch: int | None
    suggestion: SuggestedThreshold | None
    notes: tuple[str, ...] = ()

    def statement(self, fraction: float = 0.5) -> FractionStat | None:
        """The statement for one split fraction (0.5: what the last half bought), None when not computed."""
        for item in self.statements:
            if math.isclose(item.fraction, fraction):
                return item
        return None

    @property
    def energy_known(self) -> bool:
        """False when the log had no energy and no duration (epochs were counted as equal shares)."""
        return self.energy_basis != "equal"

    @property
    def metric_short(self) -> str:
        """The metric name without its stage word (``valid WER`` -> ``WER``), for sentences."""
        return short_metric_name(self.metric)

    def describe_fraction(self, fraction: float = 0.5) -> str:
        """Plain words: "The last 50% of the CO2 (1.2 kg, epochs 18-40) bought 0.31 WER (2.9% relative)."."""
        item = self.statement(fraction)
        if item is None:
            return f"The last {100 * (1 - fraction):g}% of the CO2: not computed (no energy or CO2 to share out)."
        pct = f"{100 * (1 - item.spent_share):.0f}%"
        if item.next_epoch is None:
            return (f"The last epoch alone used more than {100 * (1 - fraction):g}% of the CO2: "
                    "no earlier point to compare with.")
        epochs = _epoch_span(item.next_epoch, item.last_epoch)
        what = "CO2" if item.by == "co2" else "energy"
        if not self.energy_known:
            head = f"The last {pct} of the epochs ({epochs}; the log has no energy or duration)"
        elif item.by == "co2":
            head = f"The last {pct} of the CO2 ({format_co2(item.remaining_co2_kg)}, {epochs})"
        else:
            head = f"The last {pct} of the {what} ({format_energy(item.remaining_energy_kwh)}, {epochs})"
        if not math.isfinite(item.best_at):
            return f"{head}: {self.metric_short} was not evaluated before epoch {item.next_epoch}, no gain to compute."
        if item.gain_abs <= 0:
            return f"{head} bought nothing: the best {self.metric_short} did not improve after epoch {item.epoch}."
        rel = item.gain_rel
        rel_text = f" ({100 * rel:.1f}% relative)" if math.isfinite(rel) else ""
        return f"{head} bought {format_quantity(item.gain_abs)} {self.metric_short}{rel_text}."

    def describe_suggestion(self) -> str:
        """Plain words: "Stop when a kWh buys less than 0.05 WER: replayed on this run ..."."""
        s = self.suggestion
        if s is None:
            return "No threshold suggested (see the notes)."
        bound = f"{100 * s.max_loss_relative:.0f}%"
        if s.stop_epoch is None:
            return (
                f"No energy-aware threshold would have stopped this run early without losing more than {bound} "
                f"of its best {self.metric_short}: it was worth training to the end."
            )
        per = {"kwh": "a kWh", "kg_co2": "a kg of CO2", "epoch": "an epoch"}.get(s.unit, f"a {s.unit}")
        if s.value > 0 and s.unit in ("kwh", "kg_co2"):
            price = format_energy(1.0 / s.value) if s.unit == "kwh" else format_co2(1.0 / s.value)
            head = (
                f"Stop when one more {self.metric_short} point would cost more than {price} "
                f"({per} buying less than {format_quantity(s.value, 2)} {self.metric_short})"
            )
        elif s.value > 0:
            head = f"Stop when {per} buys less than {format_quantity(s.value, 2)} {self.metric_short}"
        else:
            head = f"Stop when {self.metric_short} stops improving at all (threshold 0 per {per[2:]})"
        if s.patience > 1:
            head += f", {s.patience} evaluations in a row"
        if s.metric_loss > 0:
            cost = f"for a best {self.metric_short} worse by {format_quantity(s.metric_loss)}"
            if math.isfinite(s.metric_loss_relative):
                cost += f" ({100 * s.metric_loss_relative:.1f}% relative)"
        else:
            cost = f"at no cost in best {self.metric_short}"
        text = (
            f"{head}. Replayed on this run it stops at epoch {s.stop_epoch} of {self.last_epoch}, saving "
            f"{100 * s.energy_saved_fraction:.0f}% of the energy {cost}."
        )
        if s.metric_loss_relative > s.max_loss_relative:
            text += f" No threshold kept the loss within {bound} on this run: a noisy curve, use it with care."
        return text

    def to_json_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (NaN and inf become null)."""
        half = self.statement(0.5)
        data: dict[str, Any] = {
            "run": self.run_name,
            "source": self.source,
            "format": self.format,
            "metric": self.metric,
            "mode": self.mode,
            "epochs": self.epochs,
            "first_epoch": self.first_epoch,
            "last_epoch": self.last_epoch,
            "total_energy_kwh": self.total_energy_kwh if self.energy_known else None,
            "total_co2_kg": self.total_co2_kg if self.energy_known else None,
            "total_duration_s": self.total_duration_s,
            "energy_is_estimated": self.energy_is_estimated,
            "energy_basis": self.energy_basis,
            "energy_note": self.energy_note,
            "intensity_g_per_kwh": self.intensity_g_per_kwh,
            "intensity_source": self.intensity_source,
            "pue": self.pue,
            "best_metric": self.best_metric,
            "best_epoch": self.best_epoch,
            "final_metric": self.final_metric,
            "half_co2_epoch": half.epoch if half else None,
            "metric_gain_last_half_co2": half.gain_abs if half else None,
            "metric_gain_last_half_co2_relative": half.gain_rel if half else None,
            "fractions": [_fraction_json(s, self.energy_known) for s in self.statements],
            "knee_epoch": self.knee_epoch,
            "suggested_threshold": _suggestion_json(self.suggestion),
            "notes": list(self.notes),
        }
        return json_clean(data)


def _suggestion_json(s: SuggestedThreshold | None) -> dict[str, Any] | None:
    if s is None:
        return None
    data = {k: getattr(s, k) for k in ("value", "unit", "stop_epoch", "energy_saved_fraction", "metric_loss",
                                       "metric_loss_relative", "patience", "max_loss_relative", "note")}
    data["rule"] = dict(s.rule)
    return data


def _fraction_json(item: FractionStat, energy_known: bool) -> dict[str, Any]:
    absolute = energy_known  # with no energy in the log, kWh and kg figures are placeholders: hide them
    return {
        "fraction": item.fraction,
        "by": item.by,
        "split_epoch": item.epoch,
        "tail_epochs": [item.next_epoch, item.last_epoch] if item.next_epoch is not None else None,
        "tail_share": 1.0 - item.spent_share,
        "tail_energy_kwh": item.remaining_energy_kwh if absolute else None,
        "tail_co2_kg": item.remaining_co2_kg if absolute else None,
        "best_at_split": item.best_at,
        "best_end": item.best_end,
        "metric_gain": item.gain_abs,
        "metric_gain_relative": item.gain_rel,
        "rate_per_kwh": item.rate_per_kwh if absolute else None,
        "rate_per_kg_co2": item.rate_per_kg if absolute else None,
    }


def _epoch_span(first: int, last: int) -> str:
    return f"epoch {first}" if first == last else f"epochs {first}-{last}"


_STAGE_WORDS = {"valid", "val", "validation", "dev", "eval"}
_ACRONYMS = {"wer", "cer", "per", "eer", "pesq", "stoi", "acc"}


def short_metric_name(name: str) -> str:
    """``valid WER`` -> ``WER``, ``val_wer`` -> ``wer``; the name itself when nothing is left."""
    words = [w for w in re.split(r"[\s_/:]+", name) if w]
    kept = [w.upper() if w.lower() in _ACRONYMS else w for w in words if w.lower() not in _STAGE_WORDS]
    return " ".join(kept) if kept else name


def json_clean(value: Any) -> Any:
    """``value`` with NaN and inf floats as None and numpy scalars as Python numbers (for ``json.dumps``)."""
    if isinstance(value, dict):
        return {str(k): json_clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_clean(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


# ---------------------------------------------------------------------------------------------------------------------
# words


def format_quantity(value: float, digits: int = 3) -> str:
    """A number with ``digits`` significant digits, no exponent for everyday magnitudes."""
    if value is None or not math.isfinite(value):
        return "n/a"
    if value == 0:
        return "0"
    magnitude = abs(value)
    if 1e-3 <= magnitude < 1e6:
        decimals = max(0, digits - 1 - int(math.floor(math.log10(magnitude))))
        text = f"{value:.{decimals}f}"
        return text.rstrip("0").rstrip(".") if "." in text else text
    return f"{value:.{digits - 1}e}"


def format_co2(kg: float) -> str:
    """CO2 in kg, g or mg, whichever reads best."""
    if not math.isfinite(kg):
        return "n/a"
    if abs(kg) >= 1 or kg == 0:
        return f"{format_quantity(kg)} kg"
    if abs(kg) >= 1e-3:
        return f"{format_quantity(kg * 1e3)} g"
    return f"{format_quantity(kg * 1e6)} mg"


def format_energy(kwh: float) -> str:
    """Energy in MWh, kWh or Wh, whichever reads best."""
    if not math.isfinite(kwh):
        return "n/a"
    if abs(kwh) >= 1000:
        return f"{format_quantity(kwh / 1000)} MWh"
    if abs(kwh) >= 1 or kwh == 0:
        return f"{format_quantity(kwh)} kWh"
    return f"{format_quantity(kwh * 1e3)} Wh"


def summarize(
    run: Run, metric: str | None = None, mode: str | None = None, fractions: Sequence[float] = (0.5,)
) -> RunSummary:
    """Summarize one run (metric and direction inferred when not given).

    ``fractions``: split points as shares of the CO2 spent (0.5: what the last half bought; 0.75: the last 25%).

    Raises:
        ConfigError: empty run, unknown metric or mode, a metric never evaluated, a fraction outside (0, 1).
    """
    if len(run) == 0:
        raise ConfigError(f"run {run.name!r} ({run.source}) has no epochs: nothing to summarize")
    name, mode = run.infer_metric(metric, mode)
    values = run.metric(name)
    seen = np.flatnonzero(np.isfinite(values))
    if seen.size == 0:
        raise ConfigError(f"run {run.name!r} ({run.source}) never evaluated {name!r}: nothing to summarize")
    for fraction in fractions:
        if not 0.0 < float(fraction) < 1.0:
            raise ConfigError(f"fraction={fraction!r} is not allowed: give a share in (0, 1), e.g. 0.5")
    best_index = int(seen[np.argmin(values[seen]) if mode == "min" else np.argmax(values[seen])])
    total = totals(run)
    notes = list(run.notes)
    statements = tuple(s for s in (_statement(run, name, mode, f, notes) for f in fractions) if s is not None)
    knee_result, why = knee_search(run, name, mode)
    if knee_result is None:
        notes.append(f"no knee: {why}")
    return RunSummary(
        run_name=run.name,
        source=run.source,
        format=run.format,
        metric=name,
        mode=mode,
        epochs=len(run),
        first_epoch=run.epochs[0],
        last_epoch=run.epochs[-1],
        total_energy_kwh=total.energy_kwh,
        total_co2_kg=total.co2_kg,
        total_duration_s=total.duration_s,
        energy_is_estimated=run.energy_is_estimated,
        energy_basis=run.energy_basis,
        energy_note=run.energy_note,
        intensity_g_per_kwh=run.intensity_g_per_kwh,
        intensity_source=run.intensity_source,
        pue=run.pue,
        best_metric=float(values[best_index]),
        best_epoch=run.epochs[best_index],
        final_metric=float(values[seen[-1]]),
        statements=statements,
        knee_epoch=knee_result.epoch if knee_result is not None else None,
        suggestion=_suggest(run, name, mode, notes),
        notes=tuple(notes),
    )


def _statement(run: Run, metric: str, mode: str, fraction: float, notes: list[str]) -> FractionStat | None:
    """The statement by CO2, by energy when the CO2 is zero (intensity 0), None when neither is known."""
    for by in ("co2", "energy"):
        try:
            return fraction_statement(run, metric, mode, fraction, by=by)
        except ConfigError as exc:
            reason = str(exc)
    notes.append(f"no {100 * (1 - fraction):g}% statement: {reason}")
    return None


def _suggest(run: Run, metric: str, mode: str, notes: list[str]) -> SuggestedThreshold | None:
    """The threshold :func:`~carbon_callbacks.analysis.replay.suggest` picks on this run alone, replayed on it
    (in-sample: it says what the curve allowed, a guide for the next similar run, not a forecast)."""
    from .analysis.replay import suggest

    if not run.cumulative_energy_kwh()[-1] > 0:
        notes.append("no threshold suggested: the run has no energy")
        return None
    try:
        found = suggest(run, metric=metric, mode=mode)
    except ConfigError as exc:
        notes.append(f"no threshold suggested: {exc}")
        return None
    replayed = found.validated_by[0]
    return SuggestedThreshold(
        value=found.value,
        unit=found.unit if run.energy_basis != "equal" else "epoch",
        stop_epoch=replayed.stop_epoch if replayed.stopped else None,
        energy_saved_fraction=replayed.energy_saved_fraction,
        metric_loss=replayed.metric_loss,
        metric_loss_relative=replayed.metric_loss_relative,
        patience=int(found.rule.get("patience", 0)),
        max_loss_relative=found.max_loss_relative,
        rule=dict(found.rule),
        note=found.note,
    )


# ---------------------------------------------------------------------------------------------------------------------
# several runs


@dataclass(frozen=True)
class Comparison:
    """Summaries of several runs, their summed footprint and their CO2 / best-metric Pareto front.

    Attributes:
        pareto: the runs no other run beats on both total CO2 and best metric, by CO2; None when the runs do not
            share one metric or have no energy figure (``pareto_note`` says why).
    """

    summaries: tuple[RunSummary, ...]
    footprint: Footprint
    pareto: tuple[ParetoPoint, ...] | None
    pareto_note: str = ""

    @property
    def same_metric(self) -> bool:
        """All runs are summarized on the same metric and direction (comparisons make sense)."""
        return len({(s.metric, s.mode) for s in self.summaries}) == 1

    def footprint_rows(self) -> list[tuple[str, str, str, str, str]]:
        """One row per run: name, epochs, energy, CO2, best metric (for tables)."""
        rows = []
        for s in self.summaries:
            est = " (est.)" if s.energy_is_estimated and s.energy_known else ""
            energy = format_energy(s.total_energy_kwh) + est if s.energy_known else "unknown"
            co2 = format_co2(s.total_co2_kg) + est if s.energy_known else "unknown"
            best = f"{format_quantity(s.best_metric)} {s.metric_short} @ {s.best_epoch}"
            rows.append((s.run_name, str(s.epochs), energy, co2, best))
        return rows

    def describe_footprint(self) -> str:
        """Plain words: "4 runs: 12.3 kWh, 5.8 kg CO2-eq in total (estimated for 2)"."""
        f = self.footprint
        text = f"{f.n_runs} runs: {format_energy(f.energy_kwh)} and {format_co2(f.co2_kg)} CO2-eq in total"
        if f.estimated:
            text += f" (estimated for {len(f.estimated)} of them)"
        if math.isfinite(f.duration_s) and f.duration_s > 0:
            text += f", {f.duration_s / 3600:.1f} h of training"
        if f.excluded:
            text += f"; not counted (no energy or duration in the log): {', '.join(f.excluded)}"
        return text + "."

    def describe_pareto(self) -> str:
        """Plain words naming the runs on the Pareto front."""
        if self.pareto is None:
            return f"No Pareto front: {self.pareto_note}"
        metric = self.summaries[0].metric_short
        points = ", ".join(f"{p.name} ({format_co2(p.co2_kg)}, {format_quantity(p.best)} {metric})"
                           for p in self.pareto)
        return f"Pareto front (no other run has both less CO2 and a better best {metric}): {points}."

    def to_json_dict(self) -> dict[str, Any]:
        """``runs`` (each :meth:`RunSummary.to_json_dict`), ``footprint`` and ``pareto_front``."""
        f = self.footprint
        return json_clean({
            "runs": [s.to_json_dict() for s in self.summaries],
            "footprint": {
                "runs": f.n_runs,
                "total_energy_kwh": f.energy_kwh,
                "total_co2_kg": f.co2_kg,
                "total_duration_s": f.duration_s,
                "estimated": list(f.estimated),
                "excluded": list(f.excluded),
            },
            "pareto_front": (
                [{"run": p.name, "total_co2_kg": p.co2_kg, "best_metric": p.best} for p in self.pareto]
                if self.pareto is not None else None
            ),
            "pareto_note": self.pareto_note,
        })


def compare(
    runs: Sequence[Run], metric: str | None = None, mode: str | None = None, fractions: Sequence[float] = (0.5,)
) -> Comparison:
    """Summarize each run and, across runs, the footprint and the Pareto front.

    Raises:
        ConfigError: no runs, or a run :func:`summarize` refuses.
    """
    if not runs:
        raise ConfigError("no runs given: give at least one run")
    summaries = tuple(summarize(run, metric, mode, fractions) for run in runs)
    pareto: tuple[ParetoPoint, ...] | None = None
    names = sorted({f"{s.metric} ({s.mode})" for s in summaries})
    if len(names) > 1:
        note = f"the runs are summarized on different metrics ({', '.join(names)}): give --metric and --mode"
    elif any(not s.energy_known for s in summaries):
        note = "some runs have no energy or duration in their log: give --power-w or --gpu with timed logs"
    else:
        pareto = tuple(pareto_front(runs, summaries[0].metric, summaries[0].mode))
        note = ""
    return Comparison(summaries, footprint(runs), pareto, note)
