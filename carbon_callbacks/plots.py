"""Figures for papers and reports: metric against cumulative CO2, energy per epoch, cumulative energy, Pareto front.

Every function takes an optional matplotlib ``ax`` and returns ``(fig, ax)``. Without ``ax`` a new
:class:`matplotlib.figure.Figure` is made directly (no pyplot: no global state, no GUI backend, works headless).
When the energy of a run was estimated (from duration and an assumed power), the axis label says so.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from .analysis.run import Run
from .analysis.stats import best_so_far, pareto_front
from .errors import ConfigError
from .summary import RunSummary, format_quantity, summarize

__all__ = [
    "plot_co2_vs_metric",
    "plot_energy_per_epoch",
    "plot_cumulative_energy",
    "plot_pareto",
    "save_figure",
    "short_names",
]

_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#7f7f7f")
_STACK_COLORS = {
    "train": "#4c72b0", "validate": "#dd8452", "valid": "#dd8452", "sanity": "#8c8c8c", "test": "#55a868",
    "gpu": "#4c72b0", "cpu": "#dd8452", "ram": "#55a868", "aborted": "#c44e52",
}
_NOTE_WIDTH = 110


def _new_axes(ax: Axes | None, size: tuple[float, float] = (6.4, 4.2)) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.figure, ax
    fig = Figure(figsize=size, layout="constrained")
    return fig, fig.add_subplot()


def _as_runs(runs: Run | Sequence[Run]) -> list[Run]:
    items = [runs] if isinstance(runs, Run) else list(runs)
    if not items:
        raise ConfigError("no runs to plot: give at least one Run")
    for run in items:
        if len(run) == 0:
            raise ConfigError(f"run {run.name!r} ({run.source}) has no epochs: nothing to plot")
    return items


def _co2_scale(max_kg: float) -> tuple[float, str]:
    """Multiplier and unit so that the largest CO2 value reads as a plain number."""
    if max_kg >= 1 or max_kg <= 0 or not math.isfinite(max_kg):
        return 1.0, "kg"
    if max_kg >= 1e-3:
        return 1e3, "g"
    return 1e6, "mg"


def _energy_scale(max_kwh: float) -> tuple[float, str]:
    if max_kwh >= 1000:
        return 1e-3, "MWh"
    if max_kwh >= 1 or max_kwh <= 0 or not math.isfinite(max_kwh):
        return 1.0, "kWh"
    return 1e3, "Wh"


def _estimated_word(runs: Sequence[Run]) -> str:
    return ", estimated" if any(r.energy_is_estimated for r in runs) else ""


def _add_note(fig: Figure, runs: Sequence[Run], own_figure: bool) -> None:
    """A small footnote saying how energy was obtained, when it was not measured (only on figures we made)."""
    if not own_figure:
        return
    notes = sorted({r.energy_note for r in runs if r.energy_is_estimated and r.energy_note})
    if notes:
        text = "\n".join(textwrap.fill(n, _NOTE_WIDTH) for n in notes[:2])
        fig.supxlabel(text, fontsize=7, color="0.35", ha="center")


def short_names(names: Sequence[str]) -> list[str]:
    """Run names without the prefix they all share (cut at a ``_``, ``-``, ``.`` or ``/``), for legends."""
    if len(names) < 2:
        return list(names)
    prefix = names[0]
    for name in names[1:]:
        while not name.startswith(prefix):
            prefix = prefix[:-1]
    cut = max(prefix.rfind(c) for c in "_-./") + 1
    short = [name[cut:] for name in names]
    return short if all(short) and len(set(short)) == len(short) else list(names)


def _metric_label(metric: str, mode: str) -> str:
    return f"{metric}  ({'lower' if mode == 'min' else 'higher'} is better)"


def _summaries(
    runs: Sequence[Run], metric: str | None, mode: str | None, summaries: Sequence[RunSummary] | None
) -> list[RunSummary]:
    if summaries is not None:
        if len(summaries) != len(runs):
            raise ConfigError(f"{len(summaries)} summaries for {len(runs)} runs: give one per run")
        return list(summaries)
    return [summarize(run, metric, mode) for run in runs]


def _x_co2(runs: Sequence[Run]) -> tuple[list[np.ndarray], str, float]:
    """x values per run (cumulative CO2, scaled) and the axis label; share of training when energy is unknown."""
    if any(r.energy_basis == "equal" for r in runs):
        xs = [100 * np.arange(1, len(r) + 1) / len(r) for r in runs]
        return xs, "share of the run's epochs (%)  [no energy or duration in the log]", 1.0
    if not all(r.cumulative_co2_kg()[-1] > 0 for r in runs):  # intensity 0 (e.g. own renewables): plot energy
        scale, unit = _energy_scale(max(float(r.cumulative_energy_kwh()[-1]) for r in runs))
        xs = [r.cumulative_energy_kwh() * scale for r in runs]
        return xs, f"cumulative energy ({unit}{_estimated_word(runs)})", scale
    scale, unit = _co2_scale(max(float(r.cumulative_co2_kg()[-1]) for r in runs))
    xs = [r.cumulative_co2_kg() * scale for r in runs]
    return xs, f"cumulative CO$_2$-eq ({unit}{_estimated_word(runs)})", scale


def plot_co2_vs_metric(
    runs: Run | Sequence[Run],
    metric: str | None = None,
    mode: str | None = None,
    ax: Axes | None = None,
    *,
    summaries: Sequence[RunSummary] | None = None,
) -> tuple[Figure, Axes]:
    """Best-so-far metric against cumulative CO2 (Parcollet & Ravanelli 2021, Fig. 2 style).

    Each evaluation is a faint dot; the solid line is the best-so-far metric (what a best-checkpoint rule keeps).
    Markers show where 50% and 100% of the CO2 had been spent, the knee and the suggested energy-aware stop.
    """
    items = _as_runs(runs)
    sums = _summaries(items, metric, mode, summaries)
    fig, ax = _new_axes(ax)
    own = ax.figure is fig and len(fig.axes) == 1
    xs, xlabel, _ = _x_co2(items)
    single = len(items) == 1
    labels: list[str | None] = [None] if single else list(short_names([r.name for r in items]))
    if own and len(items) > 3:
        fig.set_size_inches(9.0, 4.6)
    drawn: dict[str, str] = {}
    for i, (run, summary, x, label) in enumerate(zip(items, sums, xs, labels)):
        drawn.update(_draw_metric_curve(ax, run, summary, x, _COLORS[i % len(_COLORS)], label))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(_metric_label(sums[0].metric, sums[0].mode))
    ax.set_xlim(left=0)
    ax.grid(True, alpha=0.3)
    if single:
        against = "CO$_2$" if sums[0].energy_known else "training progress"
        ax.set_title(f"{items[0].name}: {sums[0].metric} against {against}", fontsize=10)
        _add_energy_axis(ax, items[0])
    _legend(ax, drawn, outside=len(items) > 3)
    _add_note(fig, items, own)
    return fig, ax


_MARKERS = {
    "half": dict(marker="o", ms=8, mfc="white", mew=2, ls="none"),
    "end": dict(marker="s", ms=7, mfc="white", mew=2, ls="none"),
    "knee": dict(marker="D", ms=7, mec="black", ls="none"),
    "stop": dict(marker="*", ms=15, mec="black", color="gold", ls="none"),
}


def _draw_metric_curve(
    ax: Axes, run: Run, summary: RunSummary, x: np.ndarray, color: str, label: str | None
) -> dict[str, str]:
    """Draw one run (``label`` None: the only run); returns the legend labels of the markers drawn."""
    single = label is None
    raw = run.metric(summary.metric)
    seen = np.isfinite(raw)
    best = best_so_far(raw, summary.mode)
    ax.plot(x[seen], raw[seen], "o-", color=color, alpha=0.3 if single else 0.15, ms=3, lw=0.8,
            label="each evaluation" if single else None)
    ax.step(x[seen], best[seen], where="post", color=color, lw=2, label="best so far" if single else label)
    index = {epoch: i for i, epoch in enumerate(run.epochs)}
    drawn: dict[str, str] = {}
    half = summary.statement(0.5)
    what = _share_word(summary, half)
    if half is not None and half.epoch in index and math.isfinite(best[index[half.epoch]]):
        j = index[half.epoch]
        if single:
            ax.axvline(x[j], color=color, ls=":", lw=1, alpha=0.6)
        ax.plot(x[j], best[j], color=color, zorder=5, **_MARKERS["half"])
        drawn["half"] = f"{100 * half.spent_share:.0f}% of the {what} spent"
        drawn["half"] += f" (epoch {half.epoch})" if single else ""
    ax.plot(x[-1], best[-1], color=color, zorder=5, **_MARKERS["end"])
    drawn["end"] = f"end (epoch {run.epochs[-1]})" if single else "end of training"
    if single and "half" in drawn and half is not None and half.gain_abs > 0:
        _draw_gain(ax, x[index[half.epoch]], x[-1], best[index[half.epoch]], best[-1])
        drawn["end"] += f": {_gain_text(half, summary)}"
    if summary.knee_epoch is not None and summary.knee_epoch in index:
        k = index[summary.knee_epoch]
        ax.plot(x[k], best[k], color=color, zorder=6, **_MARKERS["knee"])
        drawn["knee"] = f"knee (epoch {summary.knee_epoch})" if single else "knee"
    stop = summary.suggestion.stop_epoch if summary.suggestion is not None else None
    if stop is not None and stop in index:
        s = index[stop]
        ax.plot(x[s], best[s], zorder=7, **{**_MARKERS["stop"], "ms": 15 if single else 10})
        drawn["stop"] = f"suggested stop (epoch {stop})" if single else "suggested energy-aware stop"
    return drawn


def _draw_gain(ax: Axes, x0: float, x1: float, y0: float, y1: float) -> None:
    """A dashed level from the 50% point to the end and a vertical arrow down to the final best: what the last
    half of the CO2 bought (the number is in the legend, where it hides no data)."""
    ax.plot([x0, x1], [y0, y0], color="0.45", ls="--", lw=0.8)
    ax.annotate("", xy=(x1, y1), xytext=(x1, y0), arrowprops=dict(arrowstyle="->", color="0.2", lw=1.2))


def _share_word(summary: RunSummary, half: Any) -> str:
    if not summary.energy_known:
        return "epochs"
    return "CO$_2$" if half is None or half.by == "co2" else "energy"


def _gain_text(half: Any, summary: RunSummary) -> str:
    rel = f" ({100 * half.gain_rel:.1f}%)" if math.isfinite(half.gain_rel) else ""
    what = _share_word(summary, half)
    share = f"{100 * (1 - half.spent_share):.0f}%"
    return f"last {share} of the {what} bought {format_quantity(half.gain_abs)} {summary.metric_short}{rel}"


def _add_energy_axis(ax: Axes, run: Run) -> None:
    """A top axis in energy when one number converts energy to CO2 (constant intensity and PUE)."""
    energy, co2 = run.cumulative_energy_kwh(), run.cumulative_co2_kg()
    if run.energy_basis == "equal" or energy[-1] <= 0 or co2[-1] <= 0:
        return
    ratio = co2 / np.where(energy > 0, energy, np.nan)
    finite = ratio[np.isfinite(ratio)]
    if finite.size == 0 or not np.allclose(finite, finite[-1], rtol=1e-3):
        return
    co2_scale, _ = _co2_scale(float(co2[-1]))
    e_scale, e_unit = _energy_scale(float(energy[-1]))
    factor = e_scale / (co2_scale * float(finite[-1]))  # scaled CO2 -> scaled energy
    top = ax.secondary_xaxis("top", functions=(lambda v: v * factor, lambda v: v / factor))
    top.set_xlabel(f"cumulative energy ({e_unit}{_estimated_word([run])})", fontsize=9)


def _legend(ax: Axes, drawn: dict[str, str], outside: bool) -> None:
    handles, labels = ax.get_legend_handles_labels()
    for key in ("half", "end", "knee", "stop"):
        if key in drawn:
            style = dict(_MARKERS[key])
            style.setdefault("color", "0.3" if key in ("half", "end") else "0.6")
            handles.append(Line2D([], [], **style))
            labels.append(drawn[key])
    if outside:
        ax.legend(handles, labels, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    else:
        ax.legend(handles, labels, fontsize=8, loc="best", framealpha=0.9)


def plot_energy_per_epoch(run: Run, ax: Axes | None = None, *, by: str = "auto") -> tuple[Figure, Axes]:
    """Energy of each epoch as stacked bars, by ``stage`` (train/validate...), ``component`` (gpu/cpu/ram), or
    ``total``; ``auto`` picks stages when there are several, else components, else the total."""
    (run,) = _as_runs(run)
    if by not in ("auto", "stage", "component", "total"):
        raise ConfigError(f"by={by!r} is not allowed: use 'auto', 'stage', 'component' or 'total'")
    table, what = _stack_table(run, by)
    fig, ax = _new_axes(ax)
    own = ax.figure is fig and len(fig.axes) == 1
    if run.energy_basis == "equal":
        ax.text(0.5, 0.5, "no energy or duration in this log:\nrun it with --power-w or --gpu and a timed log",
                ha="center", va="center", transform=ax.transAxes, color="0.3")
        ax.set_xlabel("epoch")
        ax.set_title(f"{run.name}: energy per epoch unknown", fontsize=10)
        return fig, ax
    scale, unit = _energy_scale(max(sum(v) for v in zip(*table.values())) if table else 0.0)
    epochs = np.asarray(run.epochs)
    bottom = np.zeros(len(epochs))
    for i, (name, values) in enumerate(table.items()):
        height = np.nan_to_num(np.asarray(values) * scale)
        ax.bar(epochs, height, bottom=bottom, width=0.85, label=name,
               color=_STACK_COLORS.get(name, _COLORS[i % len(_COLORS)]))
        bottom += height
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"energy per epoch ({unit}{_estimated_word([run])})")
    ax.set_title(f"{run.name}: energy per epoch" + (f", by {what}" if len(table) > 1 else ""), fontsize=10)
    ax.grid(True, axis="y", alpha=0.3)
    if len(table) > 1:
        ax.set_ylim(0, float(np.nanmax(bottom)) * 1.25 or 1.0)  # headroom: the legend hides no bar
        ax.legend(fontsize=8, loc="upper right", ncol=len(table))
    _add_note(fig, [run], own)
    return fig, ax


def _stack_table(run: Run, by: str) -> tuple[dict[str, tuple[float, ...]], str]:
    def nonzero(table: Any) -> dict[str, tuple[float, ...]]:
        return {k: v for k, v in dict(table).items() if np.nansum(v) > 0}

    stages, components = nonzero(run.stage_kwh), nonzero(run.component_kwh)
    if by == "stage" or (by == "auto" and len(stages) > 1):
        return (stages or {"total": run.energy_kwh}), "stage"
    if by == "component" or (by == "auto" and components):
        return (components or {"total": run.energy_kwh}), "component"
    return {"total": run.energy_kwh}, "total"


def plot_cumulative_energy(runs: Run | Sequence[Run], ax: Axes | None = None) -> tuple[Figure, Axes]:
    """Cumulative energy against epoch, one line per run (CO2 on the right axis for a single run with one
    intensity)."""
    items = _as_runs(runs)
    fig, ax = _new_axes(ax)
    own = ax.figure is fig and len(fig.axes) == 1
    known = [r for r in items if r.energy_basis != "equal"]
    if not known:
        ax.text(0.5, 0.5, "no energy or duration in these logs", ha="center", va="center", transform=ax.transAxes)
        return fig, ax
    scale, unit = _energy_scale(max(float(r.cumulative_energy_kwh()[-1]) for r in known))
    for i, (run, label) in enumerate(zip(known, short_names([r.name for r in known]))):
        ax.plot(run.epochs, run.cumulative_energy_kwh() * scale, "-", marker="." if len(run) < 60 else None,
                color=_COLORS[i % len(_COLORS)], lw=2, label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"cumulative energy ({unit}{_estimated_word(known)})")
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    if len(known) == 1:
        ax.set_title(f"{known[0].name}: cumulative energy", fontsize=10)
        _add_co2_axis(ax, known[0], scale)
    else:
        ax.legend(fontsize=8)
    _add_note(fig, known, own)
    return fig, ax


def _add_co2_axis(ax: Axes, run: Run, energy_scale: float) -> None:
    energy, co2 = run.cumulative_energy_kwh(), run.cumulative_co2_kg()
    if energy[-1] <= 0 or co2[-1] <= 0 or not np.allclose(co2 / np.maximum(energy, 1e-300), co2[-1] / energy[-1],
                                                          rtol=1e-3):
        return
    co2_scale, co2_unit = _co2_scale(float(co2[-1]))
    factor = co2_scale * float(co2[-1] / energy[-1]) / energy_scale
    right = ax.secondary_yaxis("right", functions=(lambda v: v * factor, lambda v: v / factor))
    right.set_ylabel(f"cumulative CO$_2$-eq ({co2_unit})")


def plot_pareto(
    runs: Sequence[Run],
    metric: str | None = None,
    mode: str | None = None,
    ax: Axes | None = None,
    *,
    summaries: Sequence[RunSummary] | None = None,
) -> tuple[Figure, Axes]:
    """Total CO2 against best metric, one point per run; the runs no other run beats on both are joined (front)."""
    items = _as_runs(runs)
    sums = _summaries(items, metric, mode, summaries)
    names = {s.metric for s in sums}
    if len(names) > 1:
        raise ConfigError(f"runs measure different metrics ({', '.join(sorted(names))}): give --metric NAME")
    fig, ax = _new_axes(ax)
    own = ax.figure is fig and len(fig.axes) == 1
    co2 = np.array([s.total_co2_kg for s in sums])
    best = np.array([s.best_metric for s in sums])
    scale, unit = _co2_scale(float(np.nanmax(co2)))
    on_front = {p.name for p in pareto_front(items, sums[0].metric, sums[0].mode)}
    front = [i for i, run in enumerate(items) if run.name in on_front]
    ax.scatter(co2 * scale, best, s=30, color="0.6", zorder=3, label="run")
    order = sorted(front, key=lambda i: co2[i])
    ax.step(co2[order] * scale, best[order], where="post", color=_COLORS[1], lw=1.5, zorder=2)
    ax.scatter(co2[order] * scale, best[order], s=50, color=_COLORS[1], zorder=4, label="Pareto front")
    names = short_names([s.run_name for s in sums])
    for group in _clusters(co2, best):  # runs on top of each other share one stacked label
        i = group[0]
        text = "\n".join(("* " if j in front else "") + names[j] for j in group) if len(group) > 1 else names[i]
        ax.annotate(text, (co2[i] * scale, best[i]), xytext=(5, 5), textcoords="offset points", fontsize=7,
                    va="bottom", color="0.2")
    ax.set_xlabel(f"total CO$_2$-eq ({unit}{_estimated_word(items)})")
    ax.set_ylabel(f"best {_metric_label(sums[0].metric, sums[0].mode)}")
    ax.set_title(f"{len(items)} runs: CO$_2$ against best {sums[0].metric}", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    _add_note(fig, items, own)
    return fig, ax


def _clusters(x: np.ndarray, y: np.ndarray, share: float = 0.04) -> list[list[int]]:
    """Indices grouped when their points lie within ``share`` of the axis ranges of each other (in x order)."""
    span_x = float(np.nanmax(x) - np.nanmin(x)) or 1.0
    span_y = float(np.nanmax(y) - np.nanmin(y)) or 1.0
    groups: list[list[int]] = []
    for i in (int(k) for k in np.argsort(x)):
        last = groups[-1][-1] if groups else None
        if last is not None and abs(x[i] - x[last]) <= share * span_x and abs(y[i] - y[last]) <= share * span_y:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


def save_figure(fig: Figure, stem: Path, formats: Sequence[str] = ("png",), dpi: int = 150) -> list[Path]:
    """Write ``fig`` as ``stem.<format>`` for each format; returns the paths written."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        path = stem.with_name(f"{stem.name}.{fmt}")
        fig.savefig(path, format=fmt, dpi=dpi)
        paths.append(path)
    return paths
