"""Markdown and HTML reports with figures, and the Hugging Face model-card ``co2_eq_emissions`` fields.

:func:`write_run_report` is what the Lightning and SpeechBrain callbacks call at the end of training: it reads the
run directory, writes ``report.md`` and its PNG figures there, and raises only :class:`CarbonCallbacksError`
subclasses (the callers catch them; a report must never break a training run).
"""

from __future__ import annotations

import base64
import html
import math
import re
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

from ._version import __version__
from .analysis.run import Run
from .errors import CarbonCallbacksError, ConfigError
from .summary import Comparison, RunSummary, compare, format_co2, format_energy, format_quantity

__all__ = [
    "ReportError",
    "ModelCardInfo",
    "co2_eq_emissions",
    "write_figures",
    "write_report",
    "write_run_report",
    "try_write_run_report",
    "run_facts",
]

TRAINING_TYPES = ("pre-training", "fine-tuning")


class ReportError(CarbonCallbacksError):
    """A report or figure that could not be written (the message names the file and the problem)."""


@dataclass(frozen=True)
class ModelCardInfo:
    """What the model card needs and the logs do not say (None: taken from the run metadata, else ``unknown``)."""

    training_type: str | None = None
    geographical_location: str | None = None
    hardware_used: str | None = None

    def __post_init__(self) -> None:
        if self.training_type is not None and self.training_type not in TRAINING_TYPES:
            raise ConfigError(
                f"training_type={self.training_type!r} is not allowed: use one of {', '.join(TRAINING_TYPES)}"
            )


def _meta(runs: Sequence[Run], *keys: str) -> str | None:
    for run in runs:
        for key in keys:
            value = run.metadata.get(key)
            if value not in (None, "", [], {}):
                return str(value)
    return None


_BASIS_WORDS = {
    "measured": "measured (NVML/RAPL meters)",
    "estimated": "measured, some components modelled",
    "duration": "estimated from epoch duration x assumed power",
    "equal": "unknown",
}


def co2_eq_emissions(runs: Sequence[Run], card: ModelCardInfo | None = None) -> dict[str, Any]:
    """The ``co2_eq_emissions`` block of a Hugging Face model card (emissions in grams, all runs together).

    ``emissions`` is None when the logs have neither energy nor duration (nothing to estimate from).
    """
    card = card or ModelCardInfo()
    known = all(r.energy_basis != "equal" for r in runs)
    grams = sum(sum(r.co2_kg) for r in runs) * 1000.0 if known else None
    bases = sorted({_BASIS_WORDS.get(r.energy_basis, r.energy_basis) for r in runs})
    sources = sorted({r.intensity_source for r in runs if r.intensity_source})
    source = (
        f"carbon-callbacks {__version__}: energy {'; '.join(bases)}"
        + (f"; carbon intensity: {'; '.join(sources)}" if sources else "")
        + f"; PUE {'/'.join(sorted({f'{r.pue:g}' for r in runs}))}"
    )
    return {
        "emissions": round(grams, 3) if grams is not None else None,
        "source": source,
        "training_type": card.training_type or _meta(runs, "training_type") or "unknown",
        "geographical_location": card.geographical_location
        or _meta(runs, "geographical_location", "country", "region", "location")
        or "unknown",
        "hardware_used": card.hardware_used or _meta(runs, "hardware_used", "hardware", "device", "gpu") or "unknown",
    }


# ---------------------------------------------------------------------------------------------------------------------
# figures


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "run"


def _run_slugs(runs: Sequence[Run]) -> list[str]:
    """One distinct file-name prefix per run (``name``, ``name-2`` for a repeated name)."""
    seen: dict[str, int] = {}
    out = []
    for run in runs:
        slug = _slug(run.name)
        seen[slug] = seen.get(slug, 0) + 1
        out.append(slug if seen[slug] == 1 else f"{slug}-{seen[slug]}")
    return out


def write_figures(
    runs: Sequence[Run],
    out_dir: Path,
    metric: str | None = None,
    mode: str | None = None,
    formats: Sequence[str] = ("png",),
    *,
    prefix: str = "",
    comparison: Comparison | None = None,
) -> list[Path]:
    """Write every figure for ``runs`` into ``out_dir``; returns the files written.

    Per run: ``<run>_co2_vs_metric``, ``<run>_energy_per_epoch``, ``<run>_cumulative_energy`` (without the run
    name when there is one run); for several runs measuring the same metric also ``co2_vs_metric_all``,
    ``cumulative_energy_all`` and ``pareto``.
    """
    from . import plots

    comparison = comparison or compare(runs, metric, mode)
    out_dir = Path(out_dir)
    written: list[Path] = []
    single = len(runs) == 1
    for run, summary, slug in zip(runs, comparison.summaries, _run_slugs(runs)):
        stem = prefix + ("" if single else f"{slug}_")
        written += _save(plots.plot_co2_vs_metric(run, summaries=[summary])[0], out_dir / f"{stem}co2_vs_metric",
                         formats)
        written += _save(plots.plot_energy_per_epoch(run)[0], out_dir / f"{stem}energy_per_epoch", formats)
        written += _save(plots.plot_cumulative_energy(run)[0], out_dir / f"{stem}cumulative_energy", formats)
    if not single:
        written += _save(plots.plot_cumulative_energy(runs)[0], out_dir / f"{prefix}cumulative_energy_all", formats)
        if comparison.same_metric:
            fig, _ = plots.plot_co2_vs_metric(runs, summaries=comparison.summaries)
            written += _save(fig, out_dir / f"{prefix}co2_vs_metric_all", formats)
            written += _save(plots.plot_pareto(runs, summaries=comparison.summaries)[0], out_dir / f"{prefix}pareto",
                             formats)
    return written


def _save(fig: Any, stem: Path, formats: Sequence[str]) -> list[Path]:
    from .plots import save_figure

    try:
        return save_figure(fig, stem, formats)
    except OSError as exc:
        raise ReportError(f"{stem.parent}: cannot write figure {stem.name} ({exc.strerror or exc})") from None


# ---------------------------------------------------------------------------------------------------------------------
# report blocks: (kind, payload) rendered as Markdown or HTML


Block = tuple[str, Any]


def _run_blocks(run: Run, summary: RunSummary, figures: dict[str, Path]) -> list[Block]:
    direction = "lower" if summary.mode == "min" else "higher"
    blocks: list[Block] = [
        ("h2", run.name),
        ("p", f"Source: {run.source} ({run.format}). Metric: {summary.metric} ({direction} is better)."),
        ("table", (("quantity", "value"), run_facts(summary))),
        ("strong", summary.describe_fraction(0.5)),
        ("p", "Knee of the curve (diminishing returns, Kneedle): "
              + (f"epoch {summary.knee_epoch}." if summary.knee_epoch is not None else "none found.")),
        ("p", "Suggested energy-aware threshold: " + summary.describe_suggestion()),
    ]
    for key, alt in (("co2_vs_metric", f"{summary.metric} against cumulative CO2"),
                     ("energy_per_epoch", "energy per epoch"), ("cumulative_energy", "cumulative energy")):
        if key in figures:
            blocks.append(("img", (figures[key], alt)))
    if summary.notes:
        blocks.append(("list", list(summary.notes)))
    return blocks


def run_facts(s: RunSummary) -> list[tuple[str, str]]:
    """(quantity, value) rows describing one run, for the terminal and report tables."""
    est = " (estimated)" if s.energy_is_estimated else ""
    rows = [("epochs", f"{s.epochs} (epochs {s.first_epoch}-{s.last_epoch})")]
    if s.energy_known:
        rows += [
            ("energy", f"{format_energy(s.total_energy_kwh)}{est}"),
            ("CO2-eq", f"{format_co2(s.total_co2_kg)}{est}"),
            ("carbon intensity", _intensity_text(s)),
        ]
    rows += [("how energy was obtained", s.energy_note or s.energy_basis), ("PUE", f"{s.pue:g}")]
    if math.isfinite(s.total_duration_s) and s.total_duration_s > 0:
        rows.append(("wall time", _hours(s.total_duration_s)))
    rows += [
        (f"best {s.metric}", f"{format_quantity(s.best_metric)} at epoch {s.best_epoch}"),
        (f"final {s.metric}", format_quantity(s.final_metric)),
    ]
    return rows


def _intensity_text(s: RunSummary) -> str:
    value = f"{s.intensity_g_per_kwh:.0f} g/kWh" if s.intensity_g_per_kwh is not None else "varies"
    return f"{value} ({s.intensity_source})" if s.intensity_source else value


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def _comparison_blocks(comparison: Comparison, figures: dict[str, Path]) -> list[Block]:
    blocks: list[Block] = [("h2", "All runs")]
    blocks.append(("table", (("run", "epochs", "energy", "CO2-eq", "best metric"), comparison.footprint_rows())))
    blocks.append(("p", comparison.describe_footprint()))
    blocks.append(("p", comparison.describe_pareto()))
    for key, alt in (("co2_vs_metric_all", "best-so-far metric against cumulative CO2, all runs"),
                     ("pareto", "total CO2 against best metric"), ("cumulative_energy_all", "cumulative energy")):
        if key in figures:
            blocks.append(("img", (figures[key], alt)))
    return blocks


def _card_blocks(card: dict[str, Any]) -> list[Block]:
    lines = ["co2_eq_emissions:"]
    for key, value in card.items():
        shown = "null" if value is None else (value if isinstance(value, (int, float)) else _yaml_str(str(value)))
        lines.append(f"  {key}: {shown}")
    return [
        ("h2", "Model card"),
        ("p", "For the YAML header of a Hugging Face model card (emissions in grams of CO2-eq):"),
        ("code", "\n".join(lines)),
    ]


def _yaml_str(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _render_md(blocks: Sequence[Block], base: Path) -> str:
    out: list[str] = []
    for kind, payload in blocks:
        if kind in ("h1", "h2"):
            out.append(f"{'#' if kind == 'h1' else '##'} {payload}\n")
        elif kind == "p":
            out.append(f"{payload}\n")
        elif kind == "strong":
            out.append(f"**{payload}**\n")
        elif kind == "list":
            out.append("\n".join(f"- {item}" for item in payload) + "\n")
        elif kind == "table":
            header, rows = payload
            cells = [header, tuple("---" for _ in header), *rows]
            out.append("\n".join("| " + " | ".join(_md_cell(c) for c in row) + " |" for row in cells) + "\n")
        elif kind == "img":
            path, alt = payload
            out.append(f"![{alt}]({path.relative_to(base).as_posix()})\n")
        elif kind == "code":
            out.append(f"```yaml\n{payload}\n```\n")
    return "\n".join(out)


def _md_cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _render_html(blocks: Sequence[Block], title: str) -> str:
    esc = html.escape
    body: list[str] = []
    for kind, payload in blocks:
        if kind in ("h1", "h2"):
            body.append(f"<{kind}>{esc(str(payload))}</{kind}>")
        elif kind == "p":
            body.append(f"<p>{esc(str(payload))}</p>")
        elif kind == "strong":
            body.append(f"<p><strong>{esc(str(payload))}</strong></p>")
        elif kind == "list":
            body.append("<ul>" + "".join(f"<li>{esc(str(i))}</li>" for i in payload) + "</ul>")
        elif kind == "table":
            header, rows = payload
            head = "".join(f"<th>{esc(str(h))}</th>" for h in header)
            cells = "".join("<tr>" + "".join(f"<td>{esc(str(c))}</td>" for c in row) + "</tr>" for row in rows)
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{cells}</tbody></table>")
        elif kind == "img":
            path, alt = payload
            data = base64.b64encode(path.read_bytes()).decode("ascii")
            body.append(f'<figure><img alt="{esc(alt)}" src="data:image/png;base64,{data}"></figure>')
        elif kind == "code":
            body.append(f"<pre><code>{esc(str(payload))}</code></pre>")
    style = (
        "body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em;line-height:1.4}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left}"
        "img{max-width:100%}pre{background:#f4f4f4;padding:.6em}"
    )
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
        f"<style>{style}</style></head>\n<body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def write_report(
    runs: Sequence[Run],
    out: Path,
    metric: str | None = None,
    mode: str | None = None,
    card: ModelCardInfo | None = None,
) -> Path:
    """Write a Markdown (PNGs beside it, linked relatively) or HTML (PNGs embedded) report; returns its path.

    Raises:
        ConfigError: ``out`` is neither ``.md`` nor ``.html``, unknown metric or mode.
        ReportError: a file could not be written.
    """
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in (".md", ".html", ".htm"):
        raise ConfigError(f"{out}: a report is FILE.md or FILE.html, not {out.suffix or 'no extension'!r}")
    if not runs:
        raise ConfigError("no runs to report: give at least one run")
    comparison = compare(runs, metric, mode)
    title = "Energy and CO2 report: " + ", ".join(r.name for r in runs)
    if suffix == ".md":
        figure_dir, prefix = out.parent, f"{out.stem}_"
        files = write_figures(runs, figure_dir, formats=("png",), prefix=prefix, comparison=comparison)
        text = _render_md(_blocks(runs, comparison, files, prefix, card, title), out.parent)
    else:
        import tempfile

        with tempfile.TemporaryDirectory(prefix="carbon-callbacks-report-") as tmp:
            files = write_figures(runs, Path(tmp), formats=("png",), comparison=comparison)
            text = _render_html(_blocks(runs, comparison, files, "", card, title), title)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ReportError(f"{out}: cannot write the report ({exc.strerror or exc})") from None
    return out


def _blocks(
    runs: Sequence[Run],
    comparison: Comparison,
    files: Sequence[Path],
    prefix: str,
    card: ModelCardInfo | None,
    title: str,
) -> list[Block]:
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    blocks: list[Block] = [("h1", title), ("p", f"Written by carbon-callbacks {__version__} on {stamp}.")]
    by_name = {p.stem[len(prefix):]: p for p in files if p.suffix == ".png"}
    single = len(runs) == 1
    for run, summary, slug in zip(runs, comparison.summaries, _run_slugs(runs)):
        key = "" if single else f"{slug}_"
        figures = {k[len(key):]: p for k, p in by_name.items() if k.startswith(key)} if key else by_name
        blocks += _run_blocks(run, summary, figures)
    if not single:
        blocks += _comparison_blocks(comparison, by_name)
    blocks += _card_blocks(co2_eq_emissions(runs, card))
    return blocks


def write_run_report(run_dir: Path | str, metric: str | None = None, mode: str | None = None) -> Path:
    """Read the run in ``run_dir`` (ledger ``energy.csv`` or ``train_log.txt``), write ``report.md`` and its PNG
    figures into it; returns the report path.

    Raises:
        CarbonCallbacksError: only (ReadError, ConfigError, ReportError), never anything else from a bad run.
    """
    from .analysis.readers import load_run

    run_dir = Path(run_dir)
    run = load_run(run_dir)
    try:
        return write_report([run], run_dir / "report.md", metric=metric, mode=mode)
    except (ValueError, RuntimeError, OverflowError) as exc:  # matplotlib on degenerate data
        if isinstance(exc, CarbonCallbacksError):
            raise
        raise ReportError(f"{run_dir}: cannot draw the report figures ({exc})") from None


def try_write_run_report(run_dir: Path | str, metric: str | None = None, mode: str | None = None) -> bool:
    """For the training callbacks: :func:`write_run_report`, or one warning and False. Never raises into training."""
    try:
        write_run_report(run_dir, metric=metric, mode=mode)
    except (CarbonCallbacksError, OSError) as exc:
        warnings.warn(f"carbon_callbacks: the run report in {run_dir} was not written: {exc}", RuntimeWarning)
        return False
    return True
