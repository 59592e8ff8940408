"""Our own ledger (``energy.csv`` + ``energy.meta.json``) as a :class:`Run`.

Per-epoch energy is the sum over ALL rows of the epoch (every attempt, aborted windows included: energy really
spent, each window counted once). Metrics come from the rows' ``metrics`` (the last attempt's value wins).
Rows with ``epoch < 0`` or stage ``test`` / ``predict`` are not training epochs: they are ``unattributed``.
Component energies in the ledger are IT energy; the Run holds them x the row's PUE (facility), like ``energy_kwh``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import datetime
from pathlib import Path

from ..errors import ReadError
from ..meters.base import is_measured_method
from ..ledger import LEDGER_FILENAME, LedgerRow, read_ledger, read_metadata
from .run import Run

__all__ = ["read_ledger_run", "UNATTRIBUTED_STAGES"]

UNATTRIBUTED_STAGES = ("test", "predict")
_COMPONENTS = ("gpu", "cpu", "ram")


def _time(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _is_epoch_row(row: LedgerRow) -> bool:
    return row.epoch >= 0 and row.stage not in UNATTRIBUTED_STAGES


def _basis(rows: list[LedgerRow]) -> tuple[str, str]:
    """("measured" or "estimated", a sentence naming which component was measured and which estimated)."""
    labels = sorted({(c, m) for r in rows for c in _COMPONENTS if (m := getattr(r, f"{c}_method"))})
    measured = [f"{c}: {m}" for c, m in labels if is_measured_method(m)]
    estimated = [f"{c}: {m}" for c, m in labels if not is_measured_method(m)]
    parts = [f"{word} by the meters ({', '.join(items)})" for word, items in (("measured", measured),
                                                                                ("estimated", estimated)) if items]
    text = "; ".join(parts) or "methods not recorded"
    aborted = sum(1 for r in rows if r.status == "aborted")
    if aborted:
        text += f"; includes {aborted} aborted window(s) of crashed attempts"
    return ("estimated" if estimated or any(r.estimated for r in rows) else "measured"), text


def read_ledger_run(path: Path, *, name: str | None = None) -> Run:
    """The run recorded in a ledger file or in the directory holding ``energy.csv``.

    Raises:
        ReadError: missing/unreadable ledger, or no training-epoch row.
    """
    file = path / LEDGER_FILENAME if path.is_dir() else path
    rows = read_ledger(file)
    meta = read_metadata(file.parent)
    epoch_rows = [r for r in rows if _is_epoch_row(r)]
    if not epoch_rows:
        raise ReadError(f"{file}: no training-epoch row in the ledger ({len(rows)} rows in all)")
    by_epoch: dict[int, list[LedgerRow]] = defaultdict(list)
    for row in epoch_rows:
        by_epoch[row.epoch].append(row)
    epochs = sorted(by_epoch)
    stages = sorted({r.stage for r in epoch_rows})
    metric_names: list[str] = []
    for row in epoch_rows:
        metric_names.extend(k for k in row.metrics if k not in metric_names)
    energy, co2, duration, cost, starts, ends = [], [], [], [], [], []
    metrics: dict[str, list[float]] = {k: [] for k in metric_names}
    stage_kwh: dict[str, list[float]] = {s: [] for s in stages}
    component_kwh: dict[str, list[float]] = {c: [] for c in _COMPONENTS}
    for epoch in epochs:
        group = by_epoch[epoch]
        energy.append(sum(r.energy_kwh for r in group))
        co2.append(sum(r.co2_kg for r in group))
        duration.append(sum(r.duration_s for r in group))
        cost.append(sum(r.cost for r in group))
        starts.append(min((t for t in (_time(r.start_utc) for r in group) if t), default=None))
        ends.append(max((t for t in (_time(r.end_utc) for r in group) if t), default=None))
        latest: dict[str, float] = {}
        for row in sorted(group, key=lambda r: r.attempt):  # stable: file order within an attempt
            latest.update({k: v for k, v in row.metrics.items() if not math.isnan(v)})
        for key in metric_names:
            metrics[key].append(latest.get(key, math.nan))
        for stage in stages:
            stage_kwh[stage].append(sum(r.energy_kwh for r in group if r.stage == stage))
        for comp in _COMPONENTS:
            component_kwh[comp].append(sum(getattr(r, f"{comp}_kwh") * r.pue for r in group))
    if not any(any(math.isfinite(v) for v in vals) for vals in metrics.values()):
        raise ReadError(f"{file}: no metric recorded in any epoch row (the monitored metric was never logged)")
    other = [r for r in rows if not _is_epoch_row(r)]
    basis, note = _basis(rows)
    total_kwh = sum(energy)
    pues = {r.pue for r in rows}
    notes = []
    if other:
        notes.append(f"{len(other)} window(s) outside training epochs (test/predict/setup) counted as unattributed")
    if len(pues) > 1:
        notes.append(f"PUE changed between attempts ({', '.join(f'{p:g}' for p in sorted(pues))})")
    priced = meta.get("price_per_kwh") is not None or any(r.cost for r in rows)
    return Run(
        name=name or (file.parent.name if file.name == LEDGER_FILENAME else file.stem),
        source=str(file),
        format="ledger",
        epochs=tuple(epochs),
        energy_kwh=tuple(energy),
        co2_kg=tuple(co2),
        duration_s=tuple(duration),
        metrics={k: tuple(v) for k, v in metrics.items()},
        stage_kwh={k: tuple(v) for k, v in stage_kwh.items()},
        component_kwh={k: tuple(v) for k, v in component_kwh.items()},
        energy_basis=basis,
        energy_note=note,
        intensity_g_per_kwh=1000.0 * sum(co2) / total_kwh if total_kwh > 0 else None,
        intensity_source=str(meta.get("intensity_source", "as recorded in the ledger")),
        pue=max(pues),
        cost=tuple(cost) if priced else None,
        unattributed_kwh=sum(r.energy_kwh for r in other),
        unattributed_co2_kg=sum(r.co2_kg for r in other),
        notes=tuple(notes),
        metadata=meta,
        start_utc=tuple(starts),
        end_utc=tuple(ends),
    )
