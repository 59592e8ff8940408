"""Carbon intensity that changes over time: a step function read from a CSV file, averaged over each window.

Each point holds its value from its timestamp until the next point's timestamp (the value of an hourly row
covers that hour). Before the first point the first value is held, after the last point the last value is held,
and a ``RuntimeWarning`` says so once per series. See ``docs/carbon.md`` for the accepted formats.
"""

from __future__ import annotations

import bisect
import csv
import math
import re
import statistics
import warnings
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Callable, Iterator, Sequence
from zoneinfo import ZoneInfo

from .._files import read_limited
from ..errors import ConfigError, ReadError
from .base import Intensity

__all__ = ["TimeSeriesIntensity", "load_intensity_csv", "BASES"]

#: Values of ``basis=`` (the Electricity Maps column to use) and their aliases.
BASES = {"lifecycle": "lifecycle", "life cycle": "lifecycle", "lca": "lifecycle", "direct": "direct"}
_GENERIC_TIME = ("timestamp", "timestamp_utc")
_GENERIC_VALUE = ("g_co2_per_kwh", "g_co2eq_per_kwh")
_EM_COLUMN = re.compile(r"^carbon intensity gco2(?:eq|e)?/kwh \((direct|lca|life ?cycle)\)$")
_PARIS = ZoneInfo("Europe/Paris")
_FORMATS_HINT = (
    "accepted: 'timestamp,g_co2_per_kwh' (ISO timestamps, optional basis column), Electricity Maps exports "
    "('Datetime (UTC)' and 'Carbon intensity gCO2eq/kWh (direct)' / '(Life cycle)' / '(LCA)' columns), "
    "RTE eCO2mix files (tab-separated 'Date', 'Heures', 'Taux de Co2')"
)

Point = tuple[int, datetime, float]  # (line number, UTC time, g/kWh)


def _posix_s(moment: datetime) -> float:
    """Seconds since the epoch; a naive datetime is taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def _step_label(step_s: float | None) -> str:
    names = {900.0: "15-min", 1800.0: "30-min", 3600.0: "hourly", 86400.0: "daily"}
    if step_s is None:
        return "single value"
    return names.get(step_s, f"{step_s:g}-s steps")


class TimeSeriesIntensity(Intensity):
    """A step function of intensity over UTC time, averaged over each window by time weighting.

    Args:
        times_utc: strictly increasing timestamps (naive ones are taken as UTC).
        g_per_kwh: finite values >= 0, one per timestamp.
        source: provenance shown beside every CO2 figure.
        basis: e.g. ``average, lifecycle, hourly``.

    Raises:
        ConfigError: empty, unequal lengths, a negative or non-finite value, or timestamps not increasing.
    """

    def __init__(
        self,
        times_utc: Sequence[datetime],
        g_per_kwh: Sequence[float],
        *,
        source: str,
        basis: str,
    ) -> None:
        if len(times_utc) == 0 or len(times_utc) != len(g_per_kwh):
            raise ConfigError(
                f"an intensity series needs one value per timestamp and at least one point "
                f"(got {len(times_utc)} timestamps, {len(g_per_kwh)} values)"
            )
        self._t_s = tuple(_posix_s(t) for t in times_utc)
        self._v = tuple(float(v) for v in g_per_kwh)
        for i, value in enumerate(self._v):
            if not math.isfinite(value) or value < 0:
                raise ConfigError(f"intensity value {value!r} at {times_utc[i]} is not allowed: give g/kWh >= 0")
            if i and self._t_s[i] <= self._t_s[i - 1]:
                raise ConfigError(
                    f"intensity timestamps must increase strictly: {times_utc[i]} follows {times_utc[i - 1]}"
                )
        steps = [b - a for a, b in zip(self._t_s, self._t_s[1:])]
        self.step_s: float | None = float(statistics.median(steps)) if steps else None
        self.source = source
        self.basis = basis
        self._warned = False

    @property
    def first_utc(self) -> datetime:
        return datetime.fromtimestamp(self._t_s[0], tz=timezone.utc)

    @property
    def last_utc(self) -> datetime:
        return datetime.fromtimestamp(self._t_s[-1], tz=timezone.utc)

    def __len__(self) -> int:
        return len(self._t_s)

    def __repr__(self) -> str:
        return f"TimeSeriesIntensity({len(self)} points, {self.first_utc}..{self.last_utc}, source={self.source!r})"

    def covers(self, start_utc: datetime, end_utc: datetime) -> bool:
        """Whether the window lies within the series (the last point counts for one median step)."""
        end_of_data = self._t_s[-1] + (self.step_s or 0.0)
        return self._t_s[0] <= _posix_s(start_utc) and _posix_s(end_utc) <= end_of_data

    def mean_g_per_kwh(self, start_utc: datetime, end_utc: datetime) -> float:
        """Time-weighted mean over ``[start_utc, end_utc]``; the value at ``start_utc`` for an empty window."""
        a, b = sorted((_posix_s(start_utc), _posix_s(end_utc)))
        if not self._warned and not self.covers(start_utc, end_utc):
            self._warned = True
            warnings.warn(
                f"carbon_callbacks: the window {start_utc.isoformat()}..{end_utc.isoformat()} reaches outside the "
                f"intensity series ({self.first_utc.isoformat()}..{self.last_utc.isoformat()}, {self.source}); "
                "the nearest value is held there",
                RuntimeWarning,
                stacklevel=2,
            )
        i = max(bisect.bisect_right(self._t_s, a) - 1, 0)
        if b == a:
            return self._v[i]
        total, lo = 0.0, a
        while lo < b:
            hi = min(self._t_s[i + 1], b) if i + 1 < len(self._t_s) else b
            total += (hi - lo) * self._v[i]
            lo, i = hi, i + 1
        return total / (b - a)


# -- reading ---------------------------------------------------------------------------------------------


def _normalise(name: str) -> str:
    return " ".join(name.replace("\u2082", "2").replace("\ufeff", "").strip().lower().split())


def _read_lines(path: Path) -> list[str]:
    raw = read_limited(path, "the intensity file")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")  # RTE eCO2mix files
    return [line.rstrip("\r") for line in text.split("\n")]


def _cells(line: str, delimiter: str) -> list[str]:
    try:
        return [c.strip() for c in next(csv.reader([line], delimiter=delimiter))]
    except (csv.Error, StopIteration):
        return []


def _rows(lines: list[str], start: int, delimiter: str) -> Iterator[tuple[int, list[str]]]:
    """(1-based line number, cells) of the non-blank, non-comment lines after the header."""
    for index in range(start, len(lines)):
        line = lines[index]
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        yield index + 1, _cells(line, delimiter)


def _parse_float(text: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ReadError(f"{where}: value {text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise ReadError(f"{where}: value {text!r} is not allowed: intensities are finite g/kWh >= 0")
    return value


def _parse_iso_utc(text: str, where: str) -> datetime:
    cleaned = text.strip()
    if cleaned[-1:] in ("Z", "z"):
        cleaned = cleaned[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(cleaned)
    except ValueError:
        raise ReadError(f"{where}: timestamp {text!r} is not an ISO 8601 date-time") from None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def _column(header: list[str], names: Sequence[str]) -> int | None:
    """Index of the first of ``names`` (in their order of preference) present in the header."""
    normalised = [_normalise(cell) for cell in header]
    for name in names:
        if name in normalised:
            return normalised.index(name)
    return None


def _cell(cells: list[str], index: int, where: str) -> str:
    if index >= len(cells):
        raise ReadError(f"{where}: only {len(cells)} columns, expected at least {index + 1}")
    return cells[index]


def _generic(path: Path, lines: list[str], start: int, header: list[str]) -> tuple[list[Point], str, str]:
    t_col, v_col = _column(header, _GENERIC_TIME), _column(header, _GENERIC_VALUE)
    assert t_col is not None and v_col is not None
    b_col = _column(header, ("basis",))
    points, bases = [], set()
    for n, cells in _rows(lines, start, ","):
        where = f"{path}: line {n}"
        moment = _parse_iso_utc(_cell(cells, t_col, where), where)
        points.append((n, moment, _parse_float(_cell(cells, v_col, where), where)))
        if b_col is not None:
            bases.add(_cell(cells, b_col, where).lower())
    if len(bases) > 1:
        raise ReadError(f"{path}: the basis column mixes {sorted(bases)}; give one basis per file")
    basis = f"{bases.pop()} (from the file's basis column)" if bases else "basis not stated in the file"
    return points, basis, f"intensity series {path.name}"


def _electricity_maps(
    path: Path, lines: list[str], start: int, header: list[str], basis: str
) -> tuple[list[Point], str, str]:
    t_col = next(i for i, c in enumerate(header) if _normalise(c).startswith("datetime"))
    columns = {}
    for i, cell in enumerate(header):
        match = _EM_COLUMN.match(_normalise(cell))
        if match:
            columns["direct" if match.group(1) == "direct" else "lifecycle"] = i
    if basis not in columns:
        raise ReadError(f"{path}: no {basis} intensity column (found {sorted(columns)}); pass basis= one of them")
    v_col, zone_col = columns[basis], _column(header, ("zone id", "zone name"))
    points, zones = [], set()
    for n, cells in _rows(lines, start, ","):
        where = f"{path}: line {n}"
        moment = _parse_iso_utc(_cell(cells, t_col, where), where)  # the column is UTC by name
        points.append((n, moment, _parse_float(_cell(cells, v_col, where), where)))
        if zone_col is not None and zone_col < len(cells):
            zones.add(cells[zone_col])
    zone = f" (zone {', '.join(sorted(zones))})" if zones else ""
    return points, f"average, {basis}", f"Electricity Maps export {path.name}{zone}, column '{header[v_col]}'"


def _parse_local_day(text: str) -> date | None:
    for fmt in ("%Y-%m-%d", "%d/%m/%Y"):
        try:
            return datetime.strptime(text.strip(), fmt).date()
        except ValueError:
            continue
    return None


def _paris_to_utc(day: date, hhmm: str, previous: datetime | None, where: str) -> datetime:
    try:
        clock = datetime.strptime(hhmm.strip(), "%H:%M").time()
    except ValueError:
        raise ReadError(f"{where}: time {hhmm!r} is not HH:MM") from None
    local = datetime.combine(day, clock)
    for fold in (0, 1):  # the repeated hour when clocks go back: second pass takes the later instant
        moment = local.replace(tzinfo=_PARIS, fold=fold).astimezone(timezone.utc)
        if moment.astimezone(_PARIS).replace(tzinfo=None) != local:
            raise ReadError(f"{where}: {day} {hhmm} does not exist in Europe/Paris (clocks go forward)")
        if previous is None or moment > previous:
            return moment
    return moment


def _rte(path: Path, lines: list[str], start: int, header: list[str]) -> tuple[list[Point], str, str]:
    d_col, h_col = _column(header, ("date",)), _column(header, ("heures",))
    v_col = _column(header, ("taux de co2",))
    assert d_col is not None and h_col is not None and v_col is not None
    points: list[Point] = []
    not_dates: list[int] = []
    for n, cells in _rows(lines, start, "\t"):
        where = f"{path}: line {n}"
        day = _parse_local_day(cells[d_col]) if d_col < len(cells) else None
        if day is None:
            not_dates.append(n)  # footer text, unless data follows (checked below)
            continue
        if not_dates:
            raise ReadError(f"{path}: line {not_dates[0]}: no date in the 'Date' column")
        text = _cell(cells, v_col, where)
        if not text:
            continue  # quarter-hours without production data carry no CO2 rate
        previous = points[-1][1] if points else None
        moment = _paris_to_utc(day, _cell(cells, h_col, where), previous, where)
        points.append((n, moment, _parse_float(text.replace(",", "."), where)))
    return points, "average, direct emissions of French production (RTE)", f"RTE eCO2mix {path.name}, 'Taux de Co2'"


def _check_order(path: Path, points: list[Point]) -> None:
    for (n0, t0, _), (n1, t1, _) in zip(points, points[1:]):
        if t1 == t0:
            raise ReadError(f"{path}: line {n1}: duplicate timestamp {t1.isoformat()} (also on line {n0})")
        if t1 < t0:
            raise ReadError(
                f"{path}: line {n1}: timestamp {t1.isoformat()} is before line {n0}'s {t0.isoformat()}; "
                "rows must be in increasing time order"
            )


def _header(path: Path, lines: list[str]) -> tuple[int, list[str], str]:
    """Index of the line after the header, the header cells and the delimiter."""
    for index, line in enumerate(lines):
        if line.strip() and not line.lstrip().startswith("#"):
            delimiter = "\t" if "\t" in line else ","
            return index + 1, _cells(line, delimiter), delimiter
    raise ReadError(f"{path}: the intensity file is empty")


def _choose_reader(path: Path, header: list[str], delimiter: str, basis: str) -> Callable[..., tuple]:
    names = {_normalise(c) for c in header}
    if delimiter == "\t" and {"date", "heures", "taux de co2"} <= names:
        return _rte
    if any(n.startswith("datetime") for n in names) and any(_EM_COLUMN.match(n) for n in names):
        return lambda p, ls, s, h: _electricity_maps(p, ls, s, h, basis)
    if names & set(_GENERIC_TIME) and names & set(_GENERIC_VALUE):
        return _generic
    raise ReadError(f"{path}: line 1: unrecognised header {','.join(header)[:120]!r}; {_FORMATS_HINT}")


def load_intensity_csv(path: str | Path, basis: str = "lifecycle") -> TimeSeriesIntensity:
    """Read an intensity time series (generic CSV, Electricity Maps export or RTE eCO2mix file).

    Args:
        path: the file.
        basis: for Electricity Maps exports, which column to use: ``lifecycle`` (alias ``lca``) or ``direct``.

    Raises:
        ConfigError: an unknown ``basis``.
        ReadError: the file is missing, empty, of an unknown format, or a line is malformed, negative, out of
            order or duplicated (the message names the file and the line).
    """
    key = basis.strip().lower() if isinstance(basis, str) else None
    if key not in BASES:
        raise ConfigError(f"basis={basis!r} is not allowed: give one of 'lifecycle', 'lca', 'direct'")
    path = Path(path)
    lines = _read_lines(path)
    start, header, delimiter = _header(path, lines)
    reader = _choose_reader(path, header, delimiter, BASES[key])
    points, basis_text, source = reader(path, lines, start, header)
    if not points:
        raise ReadError(f"{path}: no data rows after the header")
    _check_order(path, points)
    times = [t for _, t, _ in points]
    steps = [(b - a).total_seconds() for a, b in zip(times, times[1:])]
    step = _step_label(float(statistics.median(steps)) if steps else None)
    span = f"{times[0].strftime('%Y-%m-%dT%H:%MZ')}..{times[-1].strftime('%Y-%m-%dT%H:%MZ')}"
    return TimeSeriesIntensity(
        times,
        [v for _, _, v in points],
        source=f"{source}, {span}, {len(points)} points",
        basis=f"{basis_text}, {step}",
    )
