"""Carbon intensity (g CO2-eq/kWh, offline only) and facility PUE."""

from __future__ import annotations

import numbers
from pathlib import Path

from ..errors import ConfigError
from .base import DEFAULT_PUE, DEFAULT_PUE_MEANING, ConstantIntensity, Intensity, check_pue
from .country import country_intensity, list_countries, list_regions, region_intensity, world_intensity
from .timeseries import TimeSeriesIntensity, load_intensity_csv

__all__ = [
    "Intensity",
    "ConstantIntensity",
    "check_pue",
    "resolve_intensity",
    "DEFAULT_PUE",
    "DEFAULT_PUE_MEANING",
    "country_intensity",
    "region_intensity",
    "world_intensity",
    "list_countries",
    "list_regions",
    "TimeSeriesIntensity",
    "load_intensity_csv",
]


def resolve_intensity(
    intensity: float | Intensity | str | Path | None = None,
    country: str | None = None,
    region: str | None = None,
) -> Intensity:
    """One intensity source from the user's arguments (at most one of them); world average when none.

    ``intensity`` may be a number (g/kWh), an :class:`Intensity`, or the path of an hourly CSV.

    Raises:
        ConfigError: more than one source, an unknown country or region, a bad number or file.
    """
    given = [name for name, v in (("intensity", intensity), ("country", country), ("region", region)) if v is not None]
    if len(given) > 1:
        raise ConfigError(f"give at most one of intensity=, country=, region= (got {', '.join(given)})")
    if isinstance(intensity, Intensity):
        return intensity
    if isinstance(intensity, numbers.Real) and not isinstance(intensity, bool):  # numpy scalars too
        return ConstantIntensity(float(intensity))
    if isinstance(intensity, (str, Path)):
        return load_intensity_csv(intensity)
    if intensity is not None:
        raise ConfigError(f"intensity={intensity!r} is not allowed: give g/kWh, an Intensity or a CSV path")
    if country is not None:
        return country_intensity(country)
    if region is not None:
        return region_intensity(region)
    return world_intensity()
