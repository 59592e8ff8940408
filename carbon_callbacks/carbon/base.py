"""Carbon intensity sources (g CO2-eq per kWh) and the facility PUE: the interface and the constant case."""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass
from datetime import datetime

from ..errors import ConfigError

__all__ = ["Intensity", "ConstantIntensity", "check_pue", "DEFAULT_PUE", "DEFAULT_PUE_MEANING"]

DEFAULT_PUE = 1.0
DEFAULT_PUE_MEANING = (
    "PUE 1.0: energy is what the meters see (IT energy) with no data-centre overhead; pass pue= for your "
    "facility (Uptime Institute 2024 industry average: 1.56; large cloud providers: about 1.1)"
)


class Intensity(abc.ABC):
    """A carbon-intensity source. Never makes a network call.

    Attributes:
        source: where the number comes from, with its year, for every output that shows a CO2 figure.
        basis: what the number is, e.g. ``average, lifecycle`` or ``average, direct``.
    """

    source: str = ""
    basis: str = "average"

    @abc.abstractmethod
    def mean_g_per_kwh(self, start_utc: datetime, end_utc: datetime) -> float:
        """Time-weighted mean intensity (g/kWh) over ``[start_utc, end_utc]`` (energy assumed spread evenly)."""


@dataclass(frozen=True)
class ConstantIntensity(Intensity):
    """An explicit intensity in g CO2-eq per kWh."""

    g_per_kwh: float
    source: str = ""
    basis: str = "as given by the user"

    def __post_init__(self) -> None:
        value = float(self.g_per_kwh)
        if not math.isfinite(value) or value < 0:
            raise ConfigError(f"intensity g_per_kwh={self.g_per_kwh!r} is not allowed: give a finite number >= 0")
        object.__setattr__(self, "g_per_kwh", value)
        if not self.source:
            object.__setattr__(self, "source", f"explicit {value:g} g/kWh")

    def mean_g_per_kwh(self, start_utc: datetime, end_utc: datetime) -> float:
        return self.g_per_kwh


def check_pue(pue: float) -> float:
    """Validate a power usage effectiveness: a finite number >= 1.0 (facility energy / IT energy)."""
    try:
        value = float(pue)
    except (TypeError, ValueError):
        raise ConfigError(f"pue={pue!r} is not allowed: give a number >= 1.0 (facility energy / IT energy)") from None
    if not math.isfinite(value) or value < 1.0:
        raise ConfigError(f"pue={pue!r} is not allowed: give a number >= 1.0 (facility energy / IT energy)")
    return value
