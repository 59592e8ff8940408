"""Yearly average grid intensities read from CodeCarbon's bundled data files (never importing codecarbon).

Three sources, all offline:

* countries: ``codecarbon/data/private_infra/global_energy_mix.json`` (Our World in Data / Ember, one year per
  country, mostly 2022-2023), keyed by ISO 3166 alpha-3; alpha-2 codes are mapped with ``pycountry``;
* cloud regions: ``codecarbon/data/cloud/impact.csv`` (Google Cloud's published region grid intensities);
* the world: ``world_average`` of ``codecarbon/data/private_infra/carbon_intensity_per_source.json`` (475 g/kWh,
  IEA 2019), with a built-in copy of that number when codecarbon is not installed.
"""

from __future__ import annotations

import csv
import difflib
import importlib.util
import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

from ..errors import ConfigError, ReadError
from .base import ConstantIntensity

__all__ = [
    "CountryData",
    "RegionData",
    "country_intensity",
    "region_intensity",
    "world_intensity",
    "list_countries",
    "list_regions",
    "WORLD_G_PER_KWH",
]

#: IEA 2019 world average (g CO2-eq/kWh), as in codecarbon and Green Algorithms; used when codecarbon is absent.
WORLD_G_PER_KWH = 475.0
_WORLD_URL = "https://www.iea.org/reports/global-energy-co2-status-report-2019/emissions"
#: ISO 3166 "exceptionally reserved" alpha-2 codes people use for two countries.
_ALPHA2_ALIASES = {"UK": "GBR", "EL": "GRC"}
_HINT_COUNTRIES = "list them with carbon_callbacks.carbon.country.list_countries()"
_HINT_REGIONS = "list them with carbon_callbacks.carbon.country.list_regions()"


@dataclass(frozen=True)
class CountryData:
    """One country of the bundled energy-mix file."""

    alpha3: str
    name: str
    g_per_kwh: float
    year: int


@dataclass(frozen=True)
class RegionData:
    """One cloud region of the bundled region file."""

    provider: str
    region: str
    city: str
    country: str
    g_per_kwh: float
    url: str


def _codecarbon_dir() -> Path | None:
    """The installed codecarbon package directory, found without importing it."""
    spec = importlib.util.find_spec("codecarbon")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def _codecarbon_version() -> str:
    try:
        return metadata.version("codecarbon")
    except metadata.PackageNotFoundError:
        return "unknown version"


def _data_file(relative: str) -> Path:
    root = _codecarbon_dir()
    if root is None:
        raise ConfigError(
            "codecarbon is not installed, so its bundled intensity data cannot be read: install "
            "codecarbon==3.3.2 or pass intensity=<g CO2-eq/kWh>"
        )
    path = root / "data" / relative
    if not path.is_file():
        raise ReadError(f"{path}: missing from the installed codecarbon {_codecarbon_version()}")
    return path


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ReadError(f"{path}: cannot read the bundled intensity data ({exc})") from None


@lru_cache(maxsize=1)
def _countries() -> dict[str, CountryData]:
    path = _data_file("private_infra/global_energy_mix.json")
    out = {}
    try:
        for code, entry in _read_json(path).items():
            out[code.upper()] = CountryData(
                code.upper(), str(entry["country_name"]), float(entry["carbon_intensity"]), int(entry["year"])
            )
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise ReadError(f"{path}: unexpected content ({exc!r})") from None
    return out


@lru_cache(maxsize=1)
def _regions() -> dict[str, RegionData]:
    path = _data_file("cloud/impact.csv")
    out = {}
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            for row in csv.DictReader(fh):
                data = RegionData(
                    row["provider"].strip().lower(),
                    row["region"].strip().lower(),
                    row["city"].strip(),
                    row["country_name"].strip(),
                    float(row["impact"]),
                    row["source"].strip(),
                )
                out[f"{data.provider}:{data.region}"] = data
    except (OSError, KeyError, ValueError, csv.Error) as exc:
        raise ReadError(f"{path}: cannot read the bundled region data ({exc!r})") from None
    return out


def list_countries() -> list[CountryData]:
    """Every country of the bundled data, sorted by alpha-3 code."""
    return [_countries()[k] for k in sorted(_countries())]


def list_regions() -> list[RegionData]:
    """Every cloud region of the bundled data, sorted by ``provider:region``."""
    return [_regions()[k] for k in sorted(_regions())]


def _alpha2_to_alpha3(code: str) -> str | None:
    if code in _ALPHA2_ALIASES:
        return _ALPHA2_ALIASES[code]
    try:
        import pycountry  # a codecarbon dependency; imported only for alpha-2 codes
    except ImportError:
        return None
    entry = pycountry.countries.get(alpha_2=code)
    return getattr(entry, "alpha_3", None)


def _country_suggestions(text: str) -> str:
    countries = _countries()
    by_name = {c.name.lower(): c.alpha3 for c in countries.values()}
    codes = difflib.get_close_matches(text.upper(), list(countries), n=3, cutoff=0.6)
    codes += [by_name[n] for n in difflib.get_close_matches(text.lower(), list(by_name), n=3, cutoff=0.6)]
    unique = list(dict.fromkeys(codes))[:4]
    return ", ".join(f"{c} ({countries[c].name})" for c in unique)


def country_intensity(code: str) -> ConstantIntensity:
    """The yearly average intensity of a country, from an ISO 3166 alpha-3 or alpha-2 code (any case).

    Raises:
        ConfigError: not a string, or a code absent from the bundled data (with close matches).
    """
    if not isinstance(code, str):
        raise ConfigError(f"country={code!r} is not allowed: give an ISO 3166 code such as 'FRA' or 'FR'")
    text = code.strip().upper()
    countries = _countries()
    alpha3 = _alpha2_to_alpha3(text) if len(text) == 2 and text.isalpha() else text
    if alpha3 not in countries:
        close = _country_suggestions(code.strip())
        hint = f"; did you mean {close}?" if close else ""
        raise ConfigError(
            f"country={code!r} is not in the bundled intensity data (ISO 3166 alpha-3 or alpha-2 codes){hint} "
            f"({_HINT_COUNTRIES})"
        )
    entry = countries[alpha3]
    source = (
        f"Our World in Data / Ember {entry.year} yearly average for {entry.name} ({entry.alpha3}), "
        f"via codecarbon {_codecarbon_version()} data"
    )
    return ConstantIntensity(entry.g_per_kwh, source=source, basis="average, yearly")


def _region_key(text: str) -> str:
    for sep in (":", "/"):
        if sep in text:
            provider, _, region = text.partition(sep)
            return f"{provider.strip().lower()}:{region.strip().lower()}"
    return text.strip().lower()


def region_intensity(region: str) -> ConstantIntensity:
    """The grid intensity of a cloud region, given as ``provider:region`` or ``provider/region``.

    Raises:
        ConfigError: not a string, or a region absent from the bundled data (with close matches).
    """
    if not isinstance(region, str):
        raise ConfigError(f"region={region!r} is not allowed: give 'provider:region', e.g. 'gcp:europe-west9'")
    key = _region_key(region)
    regions = _regions()
    if key not in regions:
        by_region = {k.partition(":")[2]: k for k in regions}
        close = difflib.get_close_matches(key, list(regions), n=3, cutoff=0.6)
        close += [by_region[r] for r in difflib.get_close_matches(key.partition(":")[2] or key, list(by_region), n=3)]
        unique = list(dict.fromkeys(close))[:4]
        hint = f"; did you mean {', '.join(unique)}?" if unique else ""
        providers = ", ".join(sorted({r.provider for r in regions.values()}))
        raise ConfigError(
            f"region={region!r} is not in the bundled data (give provider:region; providers: {providers}){hint} "
            f"({_HINT_REGIONS})"
        )
    entry = regions[key]
    source = (
        f"{entry.provider} region {entry.region} ({entry.city}, {entry.country}) grid intensity published at "
        f"{entry.url} (year not stated in the file), via codecarbon {_codecarbon_version()} data"
    )
    return ConstantIntensity(entry.g_per_kwh, source=source, basis="average, yearly")


def world_intensity() -> ConstantIntensity:
    """The world average (475 g/kWh, IEA 2019), read from codecarbon's data when installed."""
    root = _codecarbon_dir()
    path = None if root is None else root / "data" / "private_infra" / "carbon_intensity_per_source.json"
    if path is not None and path.is_file():
        data = _read_json(path)
        try:
            value, url = float(data["world_average"]), str(data.get("world_average_source", _WORLD_URL))
        except (KeyError, TypeError, ValueError) as exc:
            raise ReadError(f"{path}: unexpected content ({exc!r})") from None
        source = f"IEA 2019 world average ({url}), via codecarbon {_codecarbon_version()} data"
    else:
        value = WORLD_G_PER_KWH
        source = f"IEA 2019 world average ({_WORLD_URL}), built-in copy (codecarbon not installed)"
    return ConstantIntensity(value, source=source, basis="average, yearly")
