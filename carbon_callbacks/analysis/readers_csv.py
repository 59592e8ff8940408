"""Tabular readers: generic per-epoch CSV, Lightning ``CSVLogger`` directories, and the ECAPA ``score.txt``.

Generic CSV: an ``epoch`` column, metric columns, optional ``energy_kwh``, ``co2_kg``, ``duration_s``.

Lightning ``CSVLogger``: ``version_*/metrics.csv`` (or one ``metrics.csv``). Rows of the same epoch (the
validation row and the train-epoch row) are merged, first non-empty value per column; versions are read in
version order and a repeated epoch keeps its LAST copy (resuming from an older checkpoint repeats epochs). Energy
columns logged by carbon_callbacks' Lightning tracker: ``energy/epoch_wh`` (facility Wh of the epoch),
``energy/train_wh``, ``energy/val_wh`` (stage split), ``co2/epoch_g``; ``energy/total_wh`` / ``co2/total_g``
(running totals) are used when the per-epoch columns are absent. Columns ending in ``_step`` (per-step values),
``step``, ``epoch`` and ``energy/*``, ``co2/*`` are not metrics.

ECAPA ``score.txt`` (voxceleb_trainer style): ``N epoch, LR x, LOSS x, ACC x%, EER x%, bestEER x%``.
"""

from __future__ import annotations

import csv
import math
import re
from pathlib import Path
from typing import Iterable

from ..errors import ReadError
from .readers_common import EpochTable, note_units, parse_duration_s, read_text

__all__ = [
    "read_generic_table",
    "read_lightning_table",
    "read_ecapa_score_table",
    "lightning_csv_files",
    "LIGHTNING_ENERGY_COLUMNS",
]

LIGHTNING_ENERGY_COLUMNS = {
    "epoch": "energy/epoch_wh",
    "train": "energy/train_wh",
    "val": "energy/val_wh",
    "co2": "co2/epoch_g",
    "total": "energy/total_wh",
    "co2_total": "co2/total_g",
}
_GENERIC_SPECIAL = {"epoch", "energy_kwh", "co2_kg", "duration_s", "step"}


def _float(text: str | None) -> float:
    if text is None:
        return math.nan
    try:
        value = float(text.strip().rstrip("%"))
    except ValueError:
        return math.nan
    return value if math.isfinite(value) else math.nan


def _epoch(text: str | None) -> int | None:
    value = _float(text)
    if math.isnan(value) or value != int(value) or abs(value) > 1e9:
        return None
    return int(value)


def _csv_rows(path: Path) -> tuple[list[str], list[dict[str, str]], int]:
    lines = read_text(path).replace("\x00", "").splitlines()
    if not lines:
        raise ReadError(f"{path}: the file is empty")
    try:
        reader = csv.reader(lines)
        header = [h.strip() for h in next(reader)]
        bad = 0
        rows = []
        for values in reader:
            if len(values) != len(header):
                bad += 1
                continue
            rows.append(dict(zip(header, values)))
    except csv.Error as exc:
        raise ReadError(f"{path}: not a readable CSV ({exc})") from None
    return header, rows, bad


def _merge_epochs(rows: Iterable[tuple[object, int, dict[str, float]]], table: EpochTable) -> None:
    """Rows of (block, epoch, values) in file order, merged per epoch (first finite value per column).

    Consecutive rows with the same ``(block, epoch)`` form one copy of the epoch; a later copy of an epoch already
    seen replaces it (``block`` is the file index for Lightning versions, so a resumed version replaces).
    """
    merged: dict[int, dict[str, float]] = {}
    repeated = set()
    last_key: object = None
    for block, epoch, values in rows:
        key = (block, epoch)
        if key != last_key and epoch in merged:
            repeated.add(epoch)
            merged[epoch] = {}
        last_key = key
        slot = merged.setdefault(epoch, {})
        for name, value in values.items():
            if not math.isnan(value) and math.isnan(slot.get(name, math.nan)):
                slot[name] = value
    for epoch in sorted(repeated):
        table.notes.append(f"epoch {epoch} repeated: kept the last copy")
    _fill(table, merged)


def _fill(table: EpochTable, merged: dict[int, dict[str, float]]) -> None:
    keys: list[str] = []
    for values in merged.values():
        keys.extend(k for k in values if k not in keys)
    for epoch in sorted(merged):
        table.epochs.append(epoch)
        values = merged[epoch]
        for key in keys:
            table.metrics.setdefault(key, []).append(values.get(key, math.nan))


def _pop_column(table: EpochTable, key: str) -> list[float] | None:
    return table.metrics.pop(key, None)


def _finish(table: EpochTable, bad: int) -> EpochTable:
    n = len(table.epochs)
    for name in list(table.metrics):
        if not any(not math.isnan(v) for v in table.metrics[name]):
            del table.metrics[name]
    if not table.duration_s:
        table.duration_s = [math.nan] * n
    if not table.energy_kwh:
        table.energy_kwh = [math.nan] * n
    if not table.co2_kg:
        table.co2_kg = [math.nan] * n
    table.start_utc = [None] * n
    table.end_utc = [None] * n
    if bad:
        table.notes.append(f"skipped {bad} garbled line{'s' if bad != 1 else ''}")
    table.notes.extend(note_units(table.metrics))
    return table


def read_generic_table(path: Path) -> EpochTable:
    """A per-epoch CSV with an ``epoch`` column; ``energy_kwh``, ``co2_kg``, ``duration_s`` optional."""
    header, rows, bad = _csv_rows(path)
    lowered = {h.lower(): h for h in header}
    if "epoch" not in lowered:
        raise ReadError(f"{path}: no 'epoch' column (columns: {', '.join(header[:8])})")
    pairs = []
    for row in rows:
        epoch = _epoch(row.get(lowered["epoch"]))
        if epoch is None:
            bad += 1
            continue
        values = {}
        for h in header:
            if h.lower() == "epoch":
                continue
            text = row.get(h, "")
            values[h] = parse_duration_s(text) if h.lower() == "duration_s" else _float(text)
        pairs.append((len(pairs), epoch, values))
    table = EpochTable()
    _merge_epochs(pairs, table)
    for special, attr in (("energy_kwh", "energy_kwh"), ("co2_kg", "co2_kg"), ("duration_s", "duration_s")):
        if special in lowered:
            column = _pop_column(table, lowered[special])
            if column is not None:
                setattr(table, attr, column)
    _pop_column(table, lowered.get("step", "step"))
    return _finish(table, bad)


def lightning_csv_files(directory: Path) -> list[Path]:
    """``metrics.csv`` files of a CSVLogger directory, in version order."""

    def version(p: Path) -> tuple[int, str]:
        match = re.fullmatch(r"version_(\d+)", p.parent.name)
        return (int(match.group(1)) if match else -1, str(p))

    found = [directory / "metrics.csv"] if (directory / "metrics.csv").is_file() else []
    found += list(directory.glob("version_*/metrics.csv")) + list(directory.glob("*/version_*/metrics.csv"))
    return sorted(set(found), key=version)


def read_lightning_table(paths: list[Path]) -> EpochTable:
    """Merged epochs of one or more Lightning ``metrics.csv`` files (given in version order)."""
    pairs = []
    bad = 0
    for index, path in enumerate(paths):
        header, rows, bad_here = _csv_rows(path)
        bad += bad_here
        if "epoch" not in header:
            raise ReadError(f"{path}: no 'epoch' column, not a Lightning CSVLogger metrics.csv")
        for row in rows:
            epoch = _epoch(row.get("epoch"))
            if epoch is None:
                bad += 1
                continue
            values = {h: _float(row.get(h)) for h in header if h not in ("epoch", "step") and not h.endswith("_step")}
            if all(math.isnan(v) for v in values.values()):
                continue
            pairs.append((index, epoch, values))
    table = EpochTable()
    _merge_epochs(pairs, table)
    _lightning_energy(table)
    for name in [k for k in table.metrics if k.startswith(("energy/", "co2/"))]:
        del table.metrics[name]
    return _finish(table, bad)


def _lightning_energy(table: EpochTable) -> None:
    cols = LIGHTNING_ENERGY_COLUMNS
    wh = table.metrics.get(cols["epoch"])
    if wh is None and cols["total"] in table.metrics:
        wh = _differences(table.metrics[cols["total"]])
    if wh is not None:
        table.energy_kwh = [v / 1000.0 for v in wh]
        for stage in ("train", "val"):
            if cols[stage] in table.metrics:
                table.stage_kwh["validate" if stage == "val" else "train"] = [
                    v / 1000.0 for v in table.metrics[cols[stage]]
                ]
    grams = table.metrics.get(cols["co2"])
    if grams is None and cols["co2_total"] in table.metrics:
        grams = _differences(table.metrics[cols["co2_total"]])
    if grams is not None:
        table.co2_kg = [v / 1000.0 for v in grams]


def _differences(totals: list[float]) -> list[float]:
    out, previous = [], 0.0
    for value in totals:
        out.append(value - previous if not math.isnan(value) else math.nan)
        previous = value if not math.isnan(value) else previous
    return out


_SCORE = re.compile(r"^\s*(\d+)\s+epoch,\s*(.*)$")


def read_ecapa_score_table(path: Path) -> EpochTable:
    """``N epoch, LR x, LOSS x, ACC x%, EER x%, bestEER x%`` lines (``bestEER`` is derived: not kept)."""
    names = {"loss": "train_loss", "acc": "train_ACC", "eer": "valid_EER", "lr": None, "besteer": None}
    pairs = []
    bad = 0
    for line in read_text(path).splitlines():
        if not line.strip():
            continue
        match = _SCORE.match(line)
        if match is None:
            bad += 1
            continue
        values: dict[str, float] = {}
        for piece in match.group(2).split(","):
            parts = piece.split()
            if len(parts) != 2:
                continue
            key = names.get(parts[0].lower(), parts[0])
            if key is not None:
                values[key] = _float(parts[1])
        pairs.append((len(pairs), int(match.group(1)), values))
    if not pairs:
        raise ReadError(f"{path}: no 'N epoch, LR ..., EER ...' line: not an ECAPA score file")
    table = EpochTable()
    _merge_epochs(pairs, table)
    table.notes.append("ECAPA score file: train_ACC and valid_EER in percent as printed; bestEER dropped (derived)")
    return _finish(table, bad)
