"""Per-core CPU power for estimates: CodeCarbon's bundled TDP table, matched on the /proc/cpuinfo model name.

The table file is read directly; codecarbon is never imported (``importlib.util.find_spec`` only locates it).
"""

from __future__ import annotations

import functools

import csv
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import ReadError

__all__ = [
    "FALLBACK_W_PER_CORE",
    "FALLBACK_SOURCE",
    "CpuPower",
    "codecarbon_table_path",
    "load_tdp_table",
    "read_cpu_model",
    "match_tdp",
    "cpu_power_per_core",
]

#: Green Algorithms ``TDP_cpu.csv`` row "Any" (Lannelongue et al. 2021): watts per core when the model is unknown.
FALLBACK_W_PER_CORE = 12.0
FALLBACK_SOURCE = "Green Algorithms TDP_cpu.csv 'Any' (12 W/core)"

_NOISE = re.compile(r"\((?:r|tm|c)\)|\bcpu\b|\bprocessor\b|\bwith\b.*$|@.*$|\b\d+-core\b", re.IGNORECASE)


@dataclass(frozen=True)
class CpuPower:
    """The per-core power an estimate uses, and where it came from.

    Attributes:
        w_per_core: watts per busy core (CPU-second -> joules).
        source: provenance, e.g. ``codecarbon cpu_power.csv 'AMD EPYC 7763' 280 W / 64 cores``.
        model: CPU model name read from /proc/cpuinfo ('' when unknown).
        tdp_w: the matched TDP (None for the fallback).
        cores: physical cores per socket used to divide the TDP (None for the fallback).
    """

    w_per_core: float
    source: str
    model: str = ""
    tdp_w: float | None = None
    cores: int | None = None


def codecarbon_table_path() -> Path | None:
    """Path of codecarbon's ``data/hardware/cpu_power.csv`` without importing codecarbon, or None."""
    try:
        spec = importlib.util.find_spec("codecarbon")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "hardware" / "cpu_power.csv"
    return path if path.is_file() else None


def _tokens(name: str) -> frozenset[str]:
    return frozenset(_NOISE.sub(" ", name).lower().replace(",", " ").split())


def _has_digit(token: str) -> bool:
    return any(ch.isdigit() for ch in token)


def load_tdp_table(path: str | Path) -> dict[str, float]:
    """Read a ``Name,TDP`` CSV into {name: watts}. Rows with a missing or bad TDP are skipped.

    Raises:
        ReadError: the file cannot be read or has no Name/TDP header.
    """
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None or not {"Name", "TDP"} <= set(header):
                raise ReadError(f"{path}: expected a 'Name,TDP' header, got {header!r}")
            name_at, tdp_at = header.index("Name"), header.index("TDP")
            table = {}
            for row in reader:
                try:
                    table[row[name_at].strip()] = float(row[tdp_at])
                except (IndexError, ValueError):
                    continue
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ReadError(f"{path}: cannot read the CPU power table ({exc})") from exc
    return table


def read_cpu_model(cpuinfo_path: str | Path = "/proc/cpuinfo") -> tuple[str, int | None]:
    """(model name, physical cores per socket) from a cpuinfo file; ('', None) where absent or unreadable."""
    model, cores = "", None
    try:
        text = Path(cpuinfo_path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return model, cores
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key == "model name" and not model:
            model = value
        elif key == "cpu cores" and cores is None and value.isdigit():
            cores = int(value)
    return model, cores


def match_tdp(model: str, table: dict[str, float]) -> tuple[str, float] | None:
    """The table row for a CPU model name, or None.

    A row matches when all of its words appear in the model name (after dropping (R), (TM), 'CPU',
    'Processor', 'N-Core' and the clock) and one of them holds a digit (the model number); the row with
    the most words wins. A bare family name such as 'AMD EPYC' therefore matches nothing.
    """
    wanted = _tokens(model)
    numbers = [tok for tok in wanted if _has_digit(tok)]
    if not numbers:
        return None  # a row needs a word with a digit that the model name has too
    best: tuple[int, str, float] | None = None
    for name, tdp_w in table.items():
        lowered = name.lower()
        if not any(number in lowered for number in numbers):
            continue  # cheap pre-check: most rows name another model number
        tokens = _tokens(name)
        if not tokens or not tokens <= wanted or not any(_has_digit(tok) for tok in tokens):
            continue
        if best is None or len(tokens) > best[0]:
            best = (len(tokens), name, tdp_w)
    return None if best is None else (best[1], best[2])


@functools.lru_cache(maxsize=8)
def cpu_power_per_core(
    cpuinfo_path: str | Path = "/proc/cpuinfo", table_path: str | Path | None = None
) -> CpuPower:
    """Per-core power = matched TDP / physical cores per socket; else the Green Algorithms fallback.

    ``table_path`` defaults to codecarbon's bundled table. An unreadable table falls back too (never raises).
    """
    model, cores = read_cpu_model(cpuinfo_path)
    if not any(_has_digit(tok) for tok in _tokens(model)):  # no model number: no row can match, skip the read
        return CpuPower(FALLBACK_W_PER_CORE, f"{FALLBACK_SOURCE}; model {model!r} names no model number", model)
    path = Path(table_path) if table_path is not None else codecarbon_table_path()
    if path is None:
        return CpuPower(FALLBACK_W_PER_CORE, FALLBACK_SOURCE + "; codecarbon table not installed", model)
    try:
        table = load_tdp_table(path)
    except ReadError as exc:
        return CpuPower(FALLBACK_W_PER_CORE, f"{FALLBACK_SOURCE}; {exc}", model)
    match = match_tdp(model, table) if model else None
    if match is None or not cores:
        why = f"model {model!r} not in {path.name}" if match is None else "core count unknown"
        return CpuPower(FALLBACK_W_PER_CORE, f"{FALLBACK_SOURCE}; {why}", model)
    name, tdp_w = match
    source = f"codecarbon {path.name} {name!r} {tdp_w:g} W / {cores} cores per socket"
    return CpuPower(tdp_w / cores, source, model, tdp_w, cores)
