"""Yearly intensities from codecarbon's bundled data files, read without importing codecarbon."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timezone

import pytest

from carbon_callbacks.carbon import resolve_intensity
from carbon_callbacks.carbon.country import (
    country_intensity,
    list_countries,
    list_regions,
    region_intensity,
    world_intensity,
)
from carbon_callbacks.carbon.country import _codecarbon_dir
from carbon_callbacks.errors import ConfigError

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
T1 = datetime(2024, 1, 2, tzinfo=timezone.utc)


def _mix() -> dict:
    root = _codecarbon_dir()
    assert root is not None, "codecarbon is a declared dependency"
    return json.loads((root / "data" / "private_infra" / "global_energy_mix.json").read_text(encoding="utf-8"))


def test_france_matches_the_bundled_file_and_cites_year_and_source() -> None:
    entry = _mix()["FRA"]
    intensity = country_intensity("FRA")
    assert intensity.mean_g_per_kwh(T0, T1) == pytest.approx(entry["carbon_intensity"])
    assert f"Ember {entry['year']} yearly average for France (FRA)" in intensity.source
    assert "codecarbon 3.3.2" in intensity.source
    assert intensity.basis == "average, yearly"


@pytest.mark.parametrize("code", ["fra", "FR", "fr", " Fr "])
def test_alpha2_and_any_case_give_the_same_country(code: str) -> None:
    assert country_intensity(code) == country_intensity("FRA")


def test_australia_and_united_kingdom_aliases() -> None:
    assert country_intensity("AU").mean_g_per_kwh(T0, T1) == pytest.approx(_mix()["AUS"]["carbon_intensity"])
    assert country_intensity("UK") == country_intensity("GBR") == country_intensity("gb")


@pytest.mark.parametrize("bad", ["FRX", "XX", "France", "", "Q"])
def test_unknown_country_names_the_value_and_how_to_list(bad: str) -> None:
    with pytest.raises(ConfigError) as info:
        country_intensity(bad)
    assert repr(bad) in str(info.value)
    assert "list_countries()" in str(info.value)


def test_unknown_country_suggests_close_matches() -> None:
    with pytest.raises(ConfigError, match=r"did you mean .*FRA \(France\)"):
        country_intensity("France")


def test_non_string_country_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="ISO 3166"):
        country_intensity(250)  # type: ignore[arg-type]


def test_list_countries_covers_the_file() -> None:
    countries = list_countries()
    assert len(countries) == len(_mix())
    assert [c.alpha3 for c in countries] == sorted(c.alpha3 for c in countries)
    assert all(c.g_per_kwh >= 0 and 1990 < c.year < 2100 for c in countries)


@pytest.mark.parametrize("spec", ["gcp:europe-west9", "gcp/europe-west9", "GCP:Europe-West9"])
def test_region_forms(spec: str) -> None:
    intensity = region_intensity(spec)
    assert intensity.mean_g_per_kwh(T0, T1) == 34.0
    assert "europe-west9 (Paris, France)" in intensity.source


def test_unknown_region_suggests_and_lists() -> None:
    with pytest.raises(ConfigError) as info:
        region_intensity("europe-west9")
    message = str(info.value)
    assert "'europe-west9'" in message and "gcp:europe-west9" in message and "list_regions()" in message


def test_list_regions_are_unique_provider_region_pairs() -> None:
    regions = list_regions()
    assert len({(r.provider, r.region) for r in regions}) == len(regions) == 40


def test_world_average_is_iea_2019() -> None:
    world = world_intensity()
    assert world.mean_g_per_kwh(T0, T1) == 475.0
    assert "IEA 2019" in world.source


def test_resolve_intensity_uses_country_region_or_world() -> None:
    assert resolve_intensity(country="FR") == country_intensity("FRA")
    assert resolve_intensity(region="gcp:europe-west9").mean_g_per_kwh(T0, T1) == 34.0
    assert resolve_intensity() == world_intensity()
    with pytest.raises(ConfigError, match="at most one"):
        resolve_intensity(intensity=10.0, country="FRA")


def test_codecarbon_is_never_imported() -> None:
    code = (
        "import sys; from carbon_callbacks.carbon.country import country_intensity, region_intensity, "
        "world_intensity; country_intensity('FR'); region_intensity('gcp:us-west1'); world_intensity(); "
        "print('codecarbon' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
