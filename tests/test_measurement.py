"""Windows of training time: energies, host filtering, rank reduction, degraded meters, clock jumps."""

from __future__ import annotations

import warnings
from datetime import datetime, timedelta, timezone

import pytest

from carbon_callbacks.measurement import JOULES_PER_KWH, Measurement, WindowRecorder
from carbon_callbacks.meters import COMPONENTS, ConstantPower, DegradingMeter, FakeMeter

WALL0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z


class Clock:
    """A settable clock (seconds)."""

    def __init__(self, start: float = 0.0) -> None:
        self.t = start

    def __call__(self) -> float:
        return self.t


def recorder(meter_factory, host: bool = True, sync=None) -> tuple[WindowRecorder, Clock, Clock]:
    mono, wall = Clock(100.0), Clock(WALL0)
    rec = WindowRecorder(meter_factory(mono), host=host, sync=sync, wall_clock=wall, monotonic_clock=mono)
    return rec, mono, wall


def advance(seconds: float, *clocks: Clock) -> None:
    for clock in clocks:
        clock.t += seconds


def constant(mono: Clock) -> ConstantPower:
    return ConstantPower(device_w=300.0, host_w=50.0, ram_w=10.0, clock=mono)


def test_constant_power_window() -> None:
    rec, mono, wall = recorder(constant)
    rec.begin("train")
    advance(10.0, mono, wall)
    m = rec.end("train")
    assert m.stage == "train" and m.duration_s == 10.0
    assert dict(m.energy_j) == {"gpu": 3000.0, "cpu": 500.0, "ram": 100.0}
    assert m.it_energy_j == 3600.0 and m.it_energy_kwh == pytest.approx(3600.0 / JOULES_PER_KWH)
    assert dict(m.methods) == {"gpu": "constant", "cpu": "constant", "ram": "constant"}
    assert m.estimated and m.ranks == 1 and m.note == ""
    assert m.start_utc == datetime.fromtimestamp(WALL0, tz=timezone.utc)
    assert m.end_utc - m.start_utc == timedelta(seconds=10)


def test_nested_windows_and_snapshot() -> None:
    rec, mono, wall = recorder(constant)
    rec.begin("train")
    advance(5.0, mono, wall)
    rec.begin("validate")
    advance(3.0, mono, wall)
    assert rec.snapshot("train").energy_j["gpu"] == 2400.0
    assert rec.is_open("train")
    val = rec.end("validate")
    advance(2.0, mono, wall)
    train = rec.end("train")
    assert (val.duration_s, val.energy_j["gpu"]) == (3.0, 900.0)
    assert (train.duration_s, train.energy_j["gpu"]) == (10.0, 3000.0)
    assert not rec.is_open("train") and not rec.is_open("validate")
    with pytest.raises(KeyError):
        rec.end("train")


def test_host_components_are_dropped_off_the_host_rank() -> None:
    rec, mono, wall = recorder(constant, host=False)
    rec.begin("train")
    advance(4.0, mono, wall)
    m = rec.end("train")
    assert dict(m.energy_j) == {"gpu": 1200.0}
    assert set(m.methods) == {"gpu"}


def test_sync_runs_before_every_read() -> None:
    calls: list[int] = []
    meter = FakeMeter(joules_per_read={"gpu": 1.0})
    rec = WindowRecorder(meter, sync=lambda: calls.append(meter.reads))
    rec.begin("train")
    rec.end("train")
    assert calls == [0, 1]  # before read 0 and before read 1


def _measurement(**changes) -> Measurement:
    base = Measurement(
        stage="train",
        start_utc=datetime(2024, 1, 1, 10, 0, tzinfo=timezone.utc),
        end_utc=datetime(2024, 1, 1, 11, 0, tzinfo=timezone.utc),
        duration_s=3600.0,
        energy_j={"gpu": 1000.0, "cpu": 200.0},
        methods={"gpu": "nvml_counter", "cpu": "rapl"},
        estimated=False,
    )
    return Measurement(**{**base.__dict__, **changes})


def test_merged_sums_energies_and_combines_labels() -> None:
    a = _measurement()
    b = _measurement(
        start_utc=a.start_utc - timedelta(seconds=2),
        duration_s=3601.0,
        energy_j={"gpu": 500.0, "ram": 7.0},
        methods={"gpu": "nvml_counter+extrapolated", "ram": "ram_w_per_gb"},
        estimated=True,
        note="rank 1 meter failed",
    )
    m = a.merged(b)
    assert dict(m.energy_j) == {"gpu": 1500.0, "cpu": 200.0, "ram": 7.0}
    assert dict(m.methods) == {"gpu": "nvml_counter+extrapolated", "cpu": "rapl", "ram": "ram_w_per_gb"}
    assert m.estimated and m.ranks == 2 and m.duration_s == 3601.0
    assert m.start_utc == b.start_utc and m.end_utc == a.end_utc
    assert m.note == "rank 1 meter failed"


def test_to_vector_sum_matches_merged() -> None:
    a = _measurement()
    b = _measurement(energy_j={"gpu": 250.0, "cpu": 0.5, "ram": 3.0}, estimated=True)
    summed = [x + y for x, y in zip(a.to_vector(), b.to_vector())]
    assert len(summed) == len(COMPONENTS) + 2
    reduced = a.with_reduced(summed)
    assert dict(reduced.energy_j) == dict(a.merged(b).energy_j)
    assert reduced.estimated and reduced.ranks == 2
    assert reduced.start_utc == a.start_utc and reduced.methods == a.methods
    alone = a.with_reduced(a.to_vector())
    assert (alone.estimated, alone.ranks) == (False, 1)


def test_failing_meter_degrades_warns_once_and_continues() -> None:
    steps = [{"gpu": 0.0, "cpu": 0.0}, {"gpu": 1000.0, "cpu": 100.0}]
    rec, mono, wall = recorder(lambda _: FakeMeter(steps=steps, fail_from_read=2))
    rec.begin("train")
    advance(10.0, mono, wall)
    first = rec.end("train")  # reads 0 and 1 succeed: 100 W gpu, 10 W cpu
    assert dict(first.energy_j) == {"gpu": 1000.0, "cpu": 100.0} and first.note == ""

    with pytest.warns(RuntimeWarning, match="fake meter failed.*Training continues"):
        rec.begin("train")  # read 2 fails
    advance(20.0, mono, wall)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        second = rec.end("train")
        rec.begin("validate")
        advance(5.0, mono, wall)
        third = rec.end("validate")
    assert dict(second.energy_j) == pytest.approx({"gpu": 2000.0, "cpu": 200.0})
    assert dict(third.energy_j) == pytest.approx({"gpu": 500.0, "cpu": 50.0})
    assert second.methods["gpu"] == "fake+extrapolated" and second.estimated
    assert "fake meter failed" in second.note and "extrapolated" in third.note


def test_failure_before_any_reading_is_zero_and_said() -> None:
    rec, mono, wall = recorder(lambda _: FakeMeter(joules_per_read={"gpu": 1.0}, fail_from_read=0))
    with pytest.warns(RuntimeWarning, match="0 W"):
        rec.begin("train")
    advance(3.0, mono, wall)
    m = rec.end("train")
    assert m.it_energy_j == 0.0 and "no good reading yet" in m.note


def test_degrading_meter_is_not_wrapped_twice() -> None:
    inner = DegradingMeter(FakeMeter(joules_per_read={"gpu": 1.0}))
    assert WindowRecorder(inner).meter is inner


@pytest.mark.parametrize("jump_s", [3600.0, -120.0])
def test_wall_clock_jump_is_noted_and_duration_is_monotonic(jump_s: float) -> None:
    rec, mono, wall = recorder(constant)
    rec.begin("train")
    advance(10.0, mono, wall)
    wall.t += jump_s  # NTP step or a suspended VM
    m = rec.end("train")
    assert m.duration_s == 10.0 and m.energy_j["gpu"] == 3000.0
    assert f"wall clock moved {jump_s:+.0f} s" in m.note


def test_small_wall_clock_drift_is_not_noted() -> None:
    rec, mono, wall = recorder(constant)
    rec.begin("train")
    advance(10.0, mono, wall)
    wall.t += 1.5
    assert rec.end("train").note == ""
