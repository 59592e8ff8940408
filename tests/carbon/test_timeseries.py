"""Intensity time series: formats, time-weighted means, and the errors of bad files."""

from __future__ import annotations

import warnings
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from carbon_callbacks.carbon import resolve_intensity
from carbon_callbacks.carbon.timeseries import TimeSeriesIntensity, load_intensity_csv
from carbon_callbacks.errors import ConfigError, ReadError
from tests._mutate import damaged

DATA = Path(__file__).parent / "data"
UTC = timezone.utc


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def write(tmp_path: Path, text: str, name: str = "series.csv", encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


# -- generic format and the time-weighted mean -------------------------------------------------------------


def test_generic_window_across_an_hour_boundary() -> None:
    series = load_intensity_csv(DATA / "generic_hourly.csv")
    assert series.mean_g_per_kwh(at("2024-03-04T10:30"), at("2024-03-04T11:30")) == pytest.approx(200.0)


def test_generic_offsets_are_converted_to_utc() -> None:
    series = load_intensity_csv(DATA / "generic_hourly.csv")  # 13:00+01:00 is 12:00 UTC
    assert series.mean_g_per_kwh(at("2024-03-04T12:00"), at("2024-03-04T13:00")) == pytest.approx(250.0)
    assert len(series) == 5 and series.first_utc == at("2024-03-04T09:00")
    assert "generic_hourly.csv" in series.source and "hourly" in series.basis


def test_mean_over_several_steps_is_time_weighted() -> None:
    series = load_intensity_csv(DATA / "generic_hourly.csv")
    # 09:45-12:15: 15 min at 80, 60 at 100, 60 at 300, 15 at 250 -> (20 + 100 + 300 + 62.5) / 2.5 h
    mean = series.mean_g_per_kwh(at("2024-03-04T09:45"), at("2024-03-04T12:15"))
    assert mean == pytest.approx((80 * 15 + 100 * 60 + 300 * 60 + 250 * 15) / 150)


def test_window_inside_one_step_and_empty_window() -> None:
    series = load_intensity_csv(DATA / "generic_hourly.csv")
    assert series.mean_g_per_kwh(at("2024-03-04T11:10"), at("2024-03-04T11:20")) == 300.0
    assert series.mean_g_per_kwh(at("2024-03-04T11:10"), at("2024-03-04T11:10")) == 300.0


def test_outside_the_series_holds_the_nearest_value_and_warns_once() -> None:
    series = load_intensity_csv(DATA / "generic_hourly.csv")
    with pytest.warns(RuntimeWarning, match="outside the intensity series"):
        before = series.mean_g_per_kwh(at("2024-03-04T07:00"), at("2024-03-04T08:00"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        after = series.mean_g_per_kwh(at("2024-03-05T00:00"), at("2024-03-05T01:00"))
    assert (before, after) == (80.0, 120.0)
    # half before the first point (held at 80) and half inside it (80): still 80
    assert series.mean_g_per_kwh(at("2024-03-04T08:30"), at("2024-03-04T09:30")) == 80.0


def test_last_point_covers_one_step_without_warning() -> None:
    series = load_intensity_csv(DATA / "generic_hourly.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert series.mean_g_per_kwh(at("2024-03-04T13:00"), at("2024-03-04T14:00")) == 120.0


def test_naive_datetimes_are_utc_and_basis_column_is_kept(tmp_path: Path) -> None:
    text = "timestamp_utc,g_co2_per_kwh,basis\n2024-01-01 00:00,10,marginal\n2024-01-01 01:00,30,marginal\n"
    path = write(tmp_path, text)
    series = load_intensity_csv(path)
    assert series.mean_g_per_kwh(at("2024-01-01T00:00"), at("2024-01-01T02:00")) == 20.0
    assert series.basis.startswith("marginal")


def test_resolve_intensity_loads_a_path(tmp_path: Path) -> None:
    assert isinstance(resolve_intensity(intensity=DATA / "generic_hourly.csv"), TimeSeriesIntensity)
    assert isinstance(resolve_intensity(intensity=str(DATA / "generic_hourly.csv")), TimeSeriesIntensity)


# -- Electricity Maps ----------------------------------------------------------------------------------------


def test_electricity_maps_old_header_lifecycle_by_default() -> None:
    series = load_intensity_csv(DATA / "FR_2022_hourly.csv")
    assert series.mean_g_per_kwh(at("2022-01-01T00:30"), at("2022-01-01T01:30")) == pytest.approx((56.21 + 54.02) / 2)
    assert "(LCA)" in series.source and "zone FR" in series.source
    assert series.basis == "average, lifecycle, hourly"


def test_electricity_maps_direct_column() -> None:
    series = load_intensity_csv(DATA / "FR_2022_hourly.csv", basis="direct")
    assert series.mean_g_per_kwh(at("2022-01-01T02:00"), at("2022-01-01T03:00")) == pytest.approx(22.47)
    assert series.basis.startswith("average, direct")


def test_electricity_maps_new_header_ascii_and_z_timestamps() -> None:
    life = load_intensity_csv(DATA / "DE_2023_hourly.csv", basis="LCA")
    direct = load_intensity_csv(DATA / "DE_2023_hourly.csv", basis="direct")
    window = (at("2023-06-01T00:00"), at("2023-06-01T02:00"))
    assert life.mean_g_per_kwh(*window) == pytest.approx((372.0 + 360.75) / 2)
    assert direct.mean_g_per_kwh(*window) == pytest.approx((310.5 + 298.25) / 2)
    assert "(Life cycle)" in life.source


def test_unknown_basis_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="basis='marginal'"):
        load_intensity_csv(DATA / "FR_2022_hourly.csv", basis="marginal")


# -- RTE eCO2mix -------------------------------------------------------------------------------------------


def test_rte_latin1_local_time_blank_quarters_and_footer() -> None:
    series = load_intensity_csv(DATA / "eCO2mix_RTE_sample.xls")
    assert len(series) == 4  # quarter-hours without a CO2 rate skipped, footer ignored
    assert series.first_utc == at("2022-12-31T23:00")  # 00:00 in Paris in winter
    assert series.mean_g_per_kwh(at("2022-12-31T23:15"), at("2022-12-31T23:45")) == pytest.approx(34.0)
    assert "RTE" in series.source and "direct" in series.basis


def test_rte_repeated_hour_when_clocks_go_back() -> None:
    series = load_intensity_csv(DATA / "eCO2mix_RTE_dst_autumn.xls")
    # 02:00 and 02:30 appear twice: first in CEST (00:00, 00:30 UTC), then in CET (01:00, 01:30 UTC)
    assert series.mean_g_per_kwh(at("2023-10-29T00:00"), at("2023-10-29T01:00")) == pytest.approx(53.0)
    assert series.mean_g_per_kwh(at("2023-10-29T01:00"), at("2023-10-29T02:00")) == pytest.approx(61.0)


def test_rte_text_between_data_rows_is_an_error(tmp_path: Path) -> None:
    lines = (DATA / "eCO2mix_RTE_sample.xls").read_bytes().decode("latin-1").split("\n")
    lines.insert(3, "garbage line")
    path = write(tmp_path, "\n".join(lines), "rte.xls", "latin-1")
    with pytest.raises(ReadError, match=r"rte.xls: line 4: no date"):
        load_intensity_csv(path)


def test_rte_nonexistent_spring_time_is_an_error(tmp_path: Path) -> None:
    text = "Date\tHeures\tTaux de Co2\n2024-03-31\t01:30\t30\n2024-03-31\t02:30\t31\n"
    with pytest.raises(ReadError, match="line 3: .*does not exist in Europe/Paris"):
        load_intensity_csv(write(tmp_path, text, "rte.xls"))


# -- bad input -----------------------------------------------------------------------------------------------

HEADER = "timestamp,g_co2_per_kwh\n"


@pytest.mark.parametrize(
    ("body", "pattern"),
    [
        ("2024-01-01T00:00Z,10\n2024-01-01T01:00Z,abc\n", r"line 3: value 'abc' is not a number"),
        ("2024-01-01T00:00Z,10\nyesterday,20\n", r"line 3: timestamp 'yesterday' is not an ISO 8601"),
        ("2024-01-01T00:00Z,10\n2024-01-01T01:00Z,-5\n", r"line 3: value '-5' is not allowed"),
        ("2024-01-01T00:00Z,10\n2024-01-01T01:00Z,nan\n", r"line 3: value 'nan' is not allowed"),
        ("2024-01-01T01:00Z,10\n2024-01-01T00:00Z,20\n", r"line 3: timestamp .* is before line 2"),
        ("2024-01-01T00:00Z,10\n2024-01-01T01:00+01:00,20\n", r"line 3: duplicate timestamp .*line 2"),
        ("2024-01-01T00:00Z\n", r"line 2: only 1 columns"),
        ("", r"no data rows"),
    ],
)
def test_bad_rows_name_file_line_and_problem(tmp_path: Path, body: str, pattern: str) -> None:
    path = write(tmp_path, HEADER + body)
    with pytest.raises(ReadError, match=pattern) as info:
        load_intensity_csv(path)
    assert str(path) in str(info.value)


def test_empty_missing_and_unknown_files(tmp_path: Path) -> None:
    with pytest.raises(ReadError, match="is empty"):
        load_intensity_csv(write(tmp_path, "\n\n"))
    with pytest.raises(ReadError, match="cannot read"):
        load_intensity_csv(tmp_path / "missing.csv")
    with pytest.raises(ReadError, match="unrecognised header 'time,co2'.*accepted"):
        load_intensity_csv(write(tmp_path, "time,co2\n2024-01-01,1\n"))


def test_electricity_maps_without_the_requested_column(tmp_path: Path) -> None:
    text = "Datetime (UTC),Carbon intensity gCO2eq/kWh (direct)\n2024-01-01 00:00:00,100\n2024-01-01 01:00:00,300\n"
    with pytest.raises(ReadError, match="no lifecycle intensity column"):
        load_intensity_csv(write(tmp_path, text))
    assert load_intensity_csv(write(tmp_path, text), basis="direct").mean_g_per_kwh(
        at("2024-01-01T00:00"), at("2024-01-01T00:30")
    ) == 100.0


def test_direct_construction_validates() -> None:
    t0 = at("2024-01-01T00:00")
    with pytest.raises(ConfigError, match="increase strictly"):
        TimeSeriesIntensity([t0, t0], [1.0, 2.0], source="s", basis="b")
    with pytest.raises(ConfigError, match="at least one point"):
        TimeSeriesIntensity([], [], source="s", basis="b")
    with pytest.raises(ConfigError, match="g/kWh >= 0"):
        TimeSeriesIntensity([t0], [-1.0], source="s", basis="b")
    single = TimeSeriesIntensity([t0], [42.0], source="s", basis="b")
    with pytest.warns(RuntimeWarning):
        assert single.mean_g_per_kwh(t0, t0 + timedelta(hours=3)) == 42.0


@pytest.mark.parametrize("name", ["generic_hourly.csv", "DE_2023_hourly.csv", "FR_2022_hourly.csv"])
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_damaged_intensity_files_load_or_fail_with_a_read_error(tmp_path: Path, name: str, data: st.DataObject) -> None:
    path = tmp_path / name
    path.write_text(data.draw(damaged((DATA / name).read_text(encoding="utf-8"))), encoding="utf-8")
    try:
        series = load_intensity_csv(path)
    except ReadError:
        return
    start = series.first_utc
    assert series.mean_g_per_kwh(start, start + timedelta(hours=1)) >= 0.0
