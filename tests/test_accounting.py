"""Pricing windows in CO2, validating arguments at construction, checkpoints and resumes."""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from carbon_callbacks.accounting import EnergyAccountant, Totals
from carbon_callbacks.carbon.country import country_intensity, region_intensity
from carbon_callbacks.errors import ConfigError, ReadError
from carbon_callbacks.ledger import LEDGER_FILENAME, read_ledger, read_metadata
from carbon_callbacks.measurement import JOULES_PER_KWH, Measurement
from carbon_callbacks.meters import FakeMeter

DATA = Path(__file__).parent / "carbon" / "data"
T0 = datetime(2024, 3, 4, 10, 30, tzinfo=timezone.utc)


def window(
    gpu_kwh: float, cpu_kwh: float = 0.0, start: datetime = T0, hours: float = 1.0, stage: str = "train"
) -> Measurement:
    return Measurement(
        stage=stage,
        start_utc=start,
        end_utc=start + timedelta(hours=hours),
        duration_s=hours * 3600.0,
        energy_j={"gpu": gpu_kwh * JOULES_PER_KWH, "cpu": cpu_kwh * JOULES_PER_KWH, "ram": 0.0},
        methods={"gpu": "nvml_counter", "cpu": "rapl", "ram": "ram_w_per_gb"},
        estimated=False,
    )


def fake() -> FakeMeter:
    return FakeMeter(joules_per_read={"gpu": 3.6e5, "cpu": 3.6e4})


def test_co2_is_it_kwh_times_pue_times_intensity() -> None:
    acc = EnergyAccountant(fake(), intensity=400.0, pue=1.5, price_per_kwh=0.2, run_id="r")
    row = acc.record(window(2.0, 0.5), epoch=3, metrics={"val_wer": 12.5}, global_step=300)
    assert row.it_energy_kwh == pytest.approx(2.5)
    assert row.energy_kwh == pytest.approx(3.75)
    assert row.co2_kg == pytest.approx(1.5)  # 2.5 kWh x 1.5 x 400 g/kWh / 1000
    assert row.cost == pytest.approx(0.75)
    assert (row.pue, row.intensity_g_per_kwh) == (1.5, 400.0)
    assert (row.gpu_kwh, row.cpu_kwh, row.ram_kwh) == pytest.approx((2.0, 0.5, 0.0))
    assert (row.epoch, row.global_step, row.metrics, row.status) == (3, 300, {"val_wer": 12.5}, "complete")
    acc.record(window(1.0, stage="validate"), epoch=3)
    assert acc.totals.co2_kg == pytest.approx(1.5 + 0.6)
    assert acc.totals.by_stage_kwh == pytest.approx({"train": 3.75, "validate": 1.5})
    assert acc.totals.by_component_kwh == pytest.approx({"gpu": 3.0, "cpu": 0.5, "ram": 0.0})
    assert acc.rows_written == 2


def test_default_pue_is_one_and_no_price_costs_nothing() -> None:
    row = EnergyAccountant(fake(), intensity=100.0).record(window(1.0), epoch=0)
    assert (row.pue, row.energy_kwh, row.co2_kg, row.cost) == (1.0, 1.0, pytest.approx(0.1), 0.0)


@pytest.mark.parametrize("pue", [0, 0.0, -1.2, 0.99, math.nan, math.inf, "abc", None])
def test_bad_pue_is_a_config_error(pue: object) -> None:
    with pytest.raises(ConfigError, match=r"pue=.* is not allowed: give a number >= 1.0"):
        EnergyAccountant(fake(), intensity=100.0, pue=pue)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"meter": "nvml"}, "meter='nvml' is not allowed"),
        ({"price_per_kwh": -0.1}, "price_per_kwh=-0.1"),
        ({"price_per_kwh": math.nan}, "price_per_kwh=nan"),
        ({"price_per_kwh": "cheap"}, "price_per_kwh='cheap'"),
        ({"heartbeat_s": 0}, "heartbeat_s=0"),
        ({"intensity": -5.0}, "g_per_kwh=-5.0"),
        ({"intensity": True}, "intensity=True"),
        ({"intensity": 50.0, "country": "FRA"}, "at most one"),
        ({"country": "Atlantis"}, "country='Atlantis'"),
        ({"region": "gcp:moon-1"}, "region='gcp:moon-1'"),
    ],
)
def test_bad_arguments_fail_at_construction(kwargs: dict, pattern: str) -> None:
    kwargs = {"meter": fake(), **kwargs}
    if not {"intensity", "country", "region"} & set(kwargs):
        kwargs["intensity"] = 100.0
    with pytest.raises(ConfigError, match=pattern):
        EnergyAccountant(**kwargs)


def test_bad_intensity_file_fails_at_construction(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,g_co2_per_kwh\n2024-01-01T00:00Z,-3\n")
    with pytest.raises(ReadError, match=r"bad.csv: line 2"):
        EnergyAccountant(fake(), intensity=bad)


def test_numpy_numbers_are_accepted() -> None:
    acc = EnergyAccountant(fake(), intensity=np.int64(300), pue=np.float64(1.2))
    assert acc.record(window(1.0), epoch=0).co2_kg == pytest.approx(0.36)


def test_country_and_region_pricing() -> None:
    france = EnergyAccountant(fake(), country="FR", pue=1.2)
    row = france.record(window(10.0), epoch=0)
    g = country_intensity("FRA").g_per_kwh
    assert row.intensity_g_per_kwh == g
    assert row.co2_kg == pytest.approx(10.0 * 1.2 * g / 1000)
    paris = EnergyAccountant(fake(), region="gcp:europe-west9")
    paris_g = region_intensity("gcp:europe-west9").g_per_kwh
    assert paris.record(window(1.0), epoch=0).co2_kg == pytest.approx(paris_g / 1000)


def test_world_average_when_nothing_is_given(tmp_path: Path) -> None:
    acc = EnergyAccountant(fake())
    assert acc.record(window(1.0), epoch=0).intensity_g_per_kwh == 475.0
    acc.setup(directory=tmp_path)
    acc.start_attempt()
    meta = read_metadata(tmp_path)
    assert "IEA 2019" in meta["intensity_source"] and meta["intensity_basis"] == "average, yearly"
    assert meta["pue"] == 1.0 and "no data-centre overhead" in meta["pue_meaning"]


def test_csv_intensity_across_an_hour_boundary() -> None:
    acc = EnergyAccountant(fake(), intensity=DATA / "generic_hourly.csv")
    row = acc.record(window(1.0, start=T0), epoch=0)  # 10:30-11:30 over 100 then 300 g/kWh
    assert row.intensity_g_per_kwh == pytest.approx(200.0)
    assert row.co2_kg == pytest.approx(0.2)


def test_state_dict_round_trip() -> None:
    acc = EnergyAccountant(fake(), intensity=250.0, pue=1.1, run_id="run-7")
    acc.attempt = 2
    acc.record(window(1.5, 0.25), epoch=0)
    acc.record(window(0.5, stage="validate"), epoch=0)
    state = json.loads(json.dumps(acc.state_dict()))  # plain values only
    other = EnergyAccountant(fake(), intensity=250.0, pue=1.1)
    other.load_state_dict(state)
    assert (other.run_id, other.attempt, other.rows_written) == ("run-7", 2, 2)
    assert other.totals == acc.totals
    assert Totals.from_dict({}) == Totals()


def _first_attempt(tmp_path: Path) -> tuple[dict, list[float]]:
    """Three epochs written; the checkpoint was taken after the first. Returns (checkpoint, CO2 per row)."""
    acc = EnergyAccountant(fake(), intensity=100.0, run_id="resume")
    acc.setup(directory=tmp_path)
    acc.start_attempt()
    co2 = [acc.record(window(1.0 + epoch), epoch=epoch).co2_kg for epoch in range(3)]
    checkpoint = json.loads(json.dumps(acc.state_dict()))
    checkpoint["rows_written"] = 1
    checkpoint["totals"] = Totals(co2_kg=co2[0], it_energy_kwh=1.0, energy_kwh=1.0).to_dict()
    return checkpoint, co2


def test_resume_adds_rows_after_the_checkpoint_once(tmp_path: Path) -> None:
    checkpoint, co2 = _first_attempt(tmp_path)
    resumed = EnergyAccountant(fake(), intensity=100.0)
    resumed.load_state_dict(checkpoint)
    resumed.setup(directory=tmp_path)
    assert resumed.start_attempt() is None
    assert resumed.totals.co2_kg == pytest.approx(sum(co2))
    assert resumed.totals.it_energy_kwh == pytest.approx(1.0 + 2.0 + 3.0)
    assert (resumed.rows_written, resumed.attempt) == (3, 2)
    resumed.start_attempt()  # a second call (e.g. a test run after fit) adds nothing
    assert resumed.totals.co2_kg == pytest.approx(sum(co2))
    row = resumed.record(window(4.0), epoch=3)
    assert row.attempt == 3 and row.run_id == "resume"
    assert [r.epoch for r in read_ledger(tmp_path / LEDGER_FILENAME)] == [0, 1, 2, 3]


def test_resume_from_the_last_checkpoint_adds_nothing(tmp_path: Path) -> None:
    acc = EnergyAccountant(fake(), intensity=100.0, run_id="resume")
    acc.setup(directory=tmp_path)
    acc.start_attempt()
    acc.record(window(1.0), epoch=0)
    resumed = EnergyAccountant(fake(), intensity=100.0)
    resumed.load_state_dict(acc.state_dict())
    resumed.setup(directory=tmp_path)
    resumed.start_attempt()
    assert resumed.totals == acc.totals


def test_metered_window_end_to_end(tmp_path: Path) -> None:
    acc = EnergyAccountant(fake(), intensity=100.0, pue=1.2, run_id="e2e")
    acc.setup(directory=tmp_path, host=True)
    acc.start_attempt()
    acc.begin("train")
    m = acc.end("train")  # one FakeMeter step: 0.1 kWh gpu, 0.01 kWh cpu
    row = acc.record(m, epoch=0, metrics={"val_wer": 30.0})
    acc.close()
    assert row.it_energy_kwh == pytest.approx(0.11)
    assert row.co2_kg == pytest.approx(0.11 * 1.2 * 100 / 1000)
    assert read_ledger(acc.ledger_path) == [row]
    assert read_metadata(tmp_path)["run_id"] == "e2e"


@pytest.mark.parametrize(
    ("is_writer", "last_epoch_s", "due"),
    [
        (True, None, True),  # first epoch: its length is unknown
        (True, 29.9, False),  # the epoch will write its rows before 60 s pass
        (True, 30.0, True),
        (False, None, False),  # other ranks never save the open window
    ],
)
def test_heartbeat_can_fall_due_only_on_the_writer_in_long_epochs(
    tmp_path: Path, is_writer: bool, last_epoch_s: float | None, due: bool
) -> None:
    acc = EnergyAccountant(fake(), intensity=100.0, heartbeat_s=60.0)
    acc.setup(directory=tmp_path, is_writer=is_writer)
    assert acc.heartbeat_can_fall_due(last_epoch_s) is due
