"""The append-only per-run ledger ``energy.csv``: one full-precision row per closed window.

Each row is written with one ``write`` on a file opened with ``O_APPEND`` and flushed to disk with ``fsync`` (once
for rows written together), so the file is readable while the run is alive and survives a kill at any moment.
Reopening appends, never rewrites; a partial last line left by a kill is closed with :data:`PARTIAL_MARK` and a
newline, and :func:`read_ledger` skips every line that carries the mark, is not newline-terminated, or does not
parse.
Text fields never contain a line break or the mark (they are replaced by spaces), so one row is one line.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Mapping

from ._files import read_limited
from .errors import ConfigError, ReadError

__all__ = [
    "LEDGER_FILENAME",
    "META_FILENAME",
    "OPEN_FILENAME",
    "LedgerRow",
    "LEDGER_COLUMNS",
    "PARTIAL_MARK",
    "LedgerWriter",
    "read_ledger",
    "read_metadata",
    "write_json_atomic",
]

LEDGER_FILENAME = "energy.csv"
META_FILENAME = "energy.meta.json"
OPEN_FILENAME = "energy.open.json"
#: Appended to a line cut off by a kill before the next row: lines carrying it are skipped by the reader.
PARTIAL_MARK = "<cut off by a kill; skipped>"


@dataclass(frozen=True)
class LedgerRow:
    """One closed window. Energies in kWh (float64), CO2 in kg, durations in seconds.

    ``status`` is ``complete``, or ``aborted`` for a window cut short by a crash (recovered from the open-window
    file at the next attempt). ``metrics`` holds the monitored metrics of the epoch (e.g. ``{"val_wer": 12.5}``).
    """

    run_id: str
    attempt: int
    epoch: int
    stage: str
    status: str
    start_utc: str
    end_utc: str
    duration_s: float
    it_energy_kwh: float
    pue: float
    energy_kwh: float
    intensity_g_per_kwh: float
    co2_kg: float
    cost: float
    world_size: int
    ranks: int
    gpu_kwh: float
    cpu_kwh: float
    ram_kwh: float
    gpu_method: str
    cpu_method: str
    ram_method: str
    estimated: bool
    global_step: int
    metrics: Mapping[str, float]
    note: str = ""


LEDGER_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(LedgerRow))
_FLOATS = {f.name for f in fields(LedgerRow) if f.type == "float"}
_INTS = {f.name for f in fields(LedgerRow) if f.type == "int"}


def _clean(text: str) -> str:
    """One-line text without the partial-line mark."""
    return text.replace("\r", " ").replace("\n", " ").replace(PARTIAL_MARK, " ")


def _format(row: LedgerRow) -> str:
    values = {k: _clean(v) if isinstance(v, str) else v for k, v in asdict(row).items()}
    metrics = {_clean(str(k)): float(v) for k, v in row.metrics.items()}
    values["metrics"] = json.dumps(metrics, sort_keys=True)
    values["estimated"] = "true" if row.estimated else "false"
    for key in _FLOATS:
        values[key] = repr(float(values[key]))  # repr keeps every digit of a float64
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow([values[c] for c in LEDGER_COLUMNS])
    return buf.getvalue()


def _parse(values: list[str]) -> LedgerRow:
    raw = dict(zip(LEDGER_COLUMNS, values))
    out: dict[str, Any] = {}
    for key, text in raw.items():
        if key in _FLOATS:
            out[key] = float(text) if text else math.nan
        elif key in _INTS:
            out[key] = int(text)
        elif key == "estimated":
            out[key] = text.strip().lower() == "true"
        elif key == "metrics":
            out[key] = _parse_metrics(text)
        else:
            out[key] = text
    return LedgerRow(**out)


def _parse_metrics(text: str) -> dict[str, float]:
    """The metrics cell: a JSON object of numbers (empty: none). ValueError or TypeError otherwise."""
    payload = json.loads(text) if text else {}
    if not isinstance(payload, dict):
        raise ValueError(f"metrics {text!r} is not a JSON object")
    return {k: float(v) for k, v in payload.items()}


def read_ledger(path: str | os.PathLike) -> list[LedgerRow]:
    """All well-formed rows of a ledger, in file order. Partial or garbled lines are skipped.

    Raises:
        ReadError: the file is missing, empty, or its header is not a carbon_callbacks ledger header.
    """
    path = Path(path)
    text = read_limited(path, "the ledger").decode("utf-8", errors="replace")
    if not text.strip():
        raise ReadError(f"{path}: the ledger is empty")
    lines = text.split("\n")  # the last item is "" or a line still being written / cut off
    header = _split(lines[0].rstrip("\r")) or []
    if tuple(header) != LEDGER_COLUMNS:
        raise ReadError(f"{path}: not a carbon_callbacks ledger (header {','.join(header[:4])}...)")
    rows = []
    for line in lines[1:-1]:
        values = _split(line.rstrip("\r"))
        if values is None or len(values) != len(LEDGER_COLUMNS) or PARTIAL_MARK in line:
            continue
        try:
            rows.append(_parse(values))
        except (ValueError, TypeError):
            continue
    return rows


def _split(line: str) -> list[str] | None:
    """The cells of one physical line; None when it is not well-formed CSV (e.g. cut inside a quoted field)."""
    try:
        return next(csv.reader([line], strict=True), [])
    except csv.Error:
        return None


def write_json_atomic(path: Path, payload: Mapping[str, Any]) -> None:
    """Write JSON to ``path`` through a temporary file and a rename, so readers never see half a file."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(payload, fh, indent=2, sort_keys=True, default=str)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_metadata(directory: str | os.PathLike) -> dict[str, Any]:
    """The run metadata beside a ledger (``{}`` when absent, unreadable or not a JSON object)."""
    path = Path(directory) / META_FILENAME
    try:
        payload = json.loads(read_limited(path, "the run metadata").decode("utf-8"))
    except (ReadError, ValueError):
        return {}
    return payload if isinstance(payload, dict) else {}


class LedgerWriter:
    """Appends rows to ``<directory>/energy.csv`` and keeps ``energy.meta.json`` beside it.

    Args:
        directory: the run directory; created if missing. Not writable: :class:`ConfigError` at once.
    """

    def __init__(self, directory: str | os.PathLike) -> None:
        self.directory = Path(directory)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"ledger directory {self.directory} cannot be created: {exc.strerror or exc}") from None
        if not os.access(self.directory, os.W_OK | os.X_OK):
            raise ConfigError(f"ledger directory {self.directory} is not writable: give a writable directory")
        self.path = self.directory / LEDGER_FILENAME
        self.meta_path = self.directory / META_FILENAME
        self.open_path = self.directory / OPEN_FILENAME

    def existing_rows(self) -> list[LedgerRow]:
        """Rows already in the ledger (empty when there is none yet)."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            return []
        try:
            return read_ledger(self.path)
        except ReadError as exc:
            raise ConfigError(f"{exc}; move it away or choose another directory") from None

    def append(self, row: LedgerRow, sync: bool = True) -> None:
        """Append one row (header first when the file is new) and, with ``sync``, flush the file to disk.

        The write alone survives a killed process; ``sync`` also survives a machine crash. When several rows
        are written together, syncing the last one is enough (``fsync`` flushes the whole file).
        """
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            size = os.fstat(fd).st_size
            prefix = ""
            if size == 0:
                buf = io.StringIO()
                csv.writer(buf, lineterminator="\n").writerow(LEDGER_COLUMNS)
                prefix = buf.getvalue()
            elif not _ends_with_newline(self.path, size):
                prefix = PARTIAL_MARK + "\n"  # close a partial line left by a kill; the reader skips it
            os.write(fd, (prefix + _format(row)).encode("utf-8"))
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)

    def write_metadata(self, payload: Mapping[str, Any]) -> None:
        """Replace the metadata file atomically."""
        write_json_atomic(self.meta_path, payload)

    def write_open_window(self, row: LedgerRow) -> None:
        """Record the window in progress, so a crash leaves its energy for the next attempt to book."""
        write_json_atomic(self.open_path, asdict(row))

    def clear_open_window(self) -> None:
        """Forget the window in progress (it closed normally)."""
        try:
            self.open_path.unlink()
        except FileNotFoundError:
            pass

    def take_open_window(self) -> LedgerRow | None:
        """The window a crashed attempt left open, marked ``aborted``; the file is removed."""
        try:
            payload = json.loads(self.open_path.read_text(encoding="utf-8"))
            row = LedgerRow(**{**payload, "status": "aborted"})
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError):
            row = None
        self.clear_open_window()
        return row


def _ends_with_newline(path: Path, size: int) -> bool:
    with open(path, "rb") as fh:
        fh.seek(size - 1)
        return fh.read(1) == b"\n"
