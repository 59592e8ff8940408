"""SpeechBrain ``train_log.txt`` (and ``log.txt`` / console captures holding ``train_logger`` lines).

A line is ``epoch: N, lr: ... - train loss: ... - valid loss: ..., valid WER: ...``: chunks split on ``" - "``,
the first holds meta (``epoch``, ``time``, ``lr``, and ``energy_kWh`` / ``CO2_kg`` written by our SpeechBrain
logger), the others ``<stage> <key>: <value>`` pairs separated by ``", "``. Metric names become
``<stage>_<key>`` (``valid_WER``, ``train_loss``, ``valid_si-snr``). Values are kept as printed (percent or
fraction). ``Epoch loaded: N - test ...`` lines are test results, not epochs: they go to ``metadata["test"]``.
Epoch durations come from the inline ``time:`` field, else from the timestamps of the sibling ``log.txt``
(``Going into epoch N`` to the ``train_logger`` line of epoch N, else the gap between ``train_logger`` lines).
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

from .readers_common import EpochTable, note_units, parse_duration_s, read_text

__all__ = ["parse_speechbrain_text", "log_times", "sibling_log", "read_speechbrain_table"]

_EPOCH = re.compile(r"(?<![A-Za-z])[Ee]poch:\s*(\d+)")
_TEST = re.compile(r"[Ee]poch loaded:\s*(-?\d+)")
_PAIR = re.compile(r"^(?:(train|valid|validation|test)\s+)?([^:]+?):\s*(\S+)$")
_STAMP = re.compile(r"^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2})(?:,(\d{1,6}))?")
_GOING = re.compile(r"Going into epoch (\d+)")
_META_ENERGY = {"energy_kwh": "energy_kwh", "co2_kg": "co2_kg"}


def _number(text: str) -> float:
    try:
        value = float(text.rstrip("%,"))
    except ValueError:
        return math.nan
    return value if math.isfinite(value) else math.nan


def _parse_pairs(chunk: str) -> list[tuple[str, str, str]] | None:
    out = []
    for piece in chunk.split(", "):
        match = _PAIR.match(piece.strip())
        if match is None:
            return None
        out.append((match.group(1) or "", match.group(2).strip(), match.group(3)))
    return out


def _parse_line(text: str) -> tuple[dict[str, str], dict[str, float]] | None:
    """(meta, metrics) of one epoch line starting at ``epoch:``; None when garbled."""
    chunks = text.rstrip().split(" - ")
    meta_pairs = _parse_pairs(chunks[0])
    if not meta_pairs:
        return None
    meta = {key.lower(): value.rstrip(",") for _, key, value in meta_pairs}
    metrics: dict[str, float] = {}
    for chunk in chunks[1:]:
        pairs = _parse_pairs(chunk)
        if pairs is None:
            return None
        for stage, key, value in pairs:
            number = _number(value)
            if math.isnan(number) and value.lower() not in ("nan", "inf", "-inf"):
                return None
            stage = "valid" if stage == "validation" else stage
            metrics[f"{stage}_{key}" if stage else key] = number
    return meta, metrics


def _stamp(line: str) -> datetime | None:
    match = _STAMP.match(line)
    if match is None:
        return None
    try:
        when = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return None
    micros = int((match.group(2) or "0").ljust(6, "0"))
    return (when + timedelta(microseconds=micros)).replace(tzinfo=timezone.utc)


def log_times(text: str) -> dict[int, tuple[datetime | None, datetime]]:
    """Epoch -> (start, end) from a SpeechBrain ``log.txt`` (timestamps read as UTC; last copy of an epoch wins).

    Start is the last ``Going into epoch N`` before the ``train_logger`` line of epoch N, else the previous
    ``train_logger`` line (older SpeechBrain versions), else None.
    """
    going: dict[int, datetime] = {}
    previous_end: datetime | None = None
    out: dict[int, tuple[datetime | None, datetime]] = {}
    for line in text.splitlines():
        when = _stamp(line)
        if when is None:
            continue
        match = _GOING.search(line)
        if match:
            going[int(match.group(1))] = when
            continue
        if "train_logger" not in line:
            continue
        match = _EPOCH.search(line)
        if match is None:
            continue
        epoch = int(match.group(1))
        start = going.pop(epoch, None) or previous_end
        if start is not None and start > when:
            start = None
        out[epoch] = (start, when)
        previous_end = when
    return out


def sibling_log(path: Path) -> Path | None:
    """The ``log.txt`` of the same experiment: ``train_log.txt`` -> ``log.txt``; ``NAME.txt`` -> ``NAME.log.txt``."""
    if path.name.endswith(".log.txt") or path.name == "log.txt":
        return path
    candidates = [path.with_name("log.txt")] if path.name == "train_log.txt" else []
    candidates.append(path.with_name(path.name[: -len(path.suffix)] + ".log" + path.suffix))
    return next((c for c in candidates if c.is_file()), None)


def parse_speechbrain_text(text: str) -> tuple[EpochTable, int]:
    """Epoch rows of a train log (last copy of a repeated epoch wins) and the number of garbled lines skipped."""
    rows: dict[int, tuple[dict[str, str], dict[str, float]]] = {}
    repeated: list[int] = []
    garbled = 0
    other = 0
    matched = 0
    test: dict[str, float] = {}
    logger_only = "train_logger" in text  # a log.txt or console capture: epochs come from train_logger lines
    for line in text.splitlines():
        if not line.strip():
            continue
        if logger_only and "train_logger" not in line:
            other += 1
            continue
        test_match = _TEST.search(line)
        epoch_match = None if test_match else _EPOCH.search(line)
        if test_match:
            parsed = _parse_line("epoch: 0" + line[test_match.end(1) :])
            matched += 1
            if parsed is None:
                garbled += 1
            else:
                test = {"epoch": float(test_match.group(1)), **parsed[1]}
            continue
        if epoch_match is None:
            other += 1
            continue
        matched += 1
        parsed = _parse_line(line[epoch_match.start() :])
        if parsed is None:
            garbled += 1
            continue
        epoch = int(epoch_match.group(1))
        if epoch in rows:
            repeated.append(epoch)
        rows[epoch] = parsed
    if matched >= other:  # a train_log.txt: any other non-empty line is damage
        garbled += other
    table = EpochTable()
    for epoch in sorted(rows):
        meta, metrics = rows[epoch]
        table.epochs.append(epoch)
        for key, value in metrics.items():
            table.metrics.setdefault(key, [math.nan] * (len(table.epochs) - 1))
        for key, values in table.metrics.items():
            values.append(metrics.get(key, math.nan))
        table.duration_s.append(parse_duration_s(meta["time"]) if "time" in meta else math.nan)
        table.energy_kwh.append(_number(meta.get("energy_kwh", "nan")))
        table.co2_kg.append(_number(meta.get("co2_kg", "nan")))
    for epoch in sorted(set(repeated)):
        table.notes.append(f"epoch {epoch} repeated: kept the last copy")
    if test:
        table.metadata["test"] = test
    return table, garbled


def _gaps(epochs: list[int]) -> list[str]:
    out = []
    for a, b in zip(epochs, epochs[1:]):
        if b > a + 1:
            out.append(f"{a + 1}-{b - 1}" if b > a + 2 else str(a + 1))
    return out


def read_speechbrain_table(path: Path) -> EpochTable:
    """The epoch table of a SpeechBrain log, with durations from the inline ``time:`` field or ``log.txt``."""
    table, garbled = parse_speechbrain_text(read_text(path))
    if garbled:
        table.notes.append(f"skipped {garbled} garbled line{'s' if garbled != 1 else ''}")
    gaps = _gaps(table.epochs)
    if gaps:
        table.notes.append(f"epochs {', '.join(gaps)} missing from the log: their energy is not counted")
    table.notes.extend(note_units(table.metrics))
    log = sibling_log(path)
    times = log_times(read_text(log)) if log is not None else {}
    table.start_utc = [times.get(e, (None, None))[0] for e in table.epochs]
    table.end_utc = [times.get(e, (None, None))[1] for e in table.epochs]
    used_log = False
    for i, (start, end) in enumerate(zip(table.start_utc, table.end_utc)):
        if not math.isfinite(table.duration_s[i]) and start is not None and end is not None:
            table.duration_s[i] = (end - start).total_seconds()
            used_log = True
    if used_log and log is not None:
        table.notes.append(f"epoch durations from the timestamps of {log.name}")
    return table
