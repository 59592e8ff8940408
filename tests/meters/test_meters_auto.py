"""auto_meter picks per component, and CompositeMeter merges the parts."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from carbon_callbacks.accounting import EnergyAccountant
from carbon_callbacks.errors import ConfigError, MeterError
from carbon_callbacks.meters import CompositeMeter, EstimateMeter, FakeMeter, auto_meter, rapl_unavailable_reason
from carbon_callbacks.meters import nvml as nvml_mod
from carbon_callbacks.meters import rapl as rapl_mod


def _zone(root: Path, zone: str, name: str) -> None:
    path = root / zone
    path.mkdir(parents=True)
    (path / "name").write_text(name)
    (path / "energy_uj").write_text("0")
    (path / "max_energy_range_uj").write_text("262143328850")


def _burn_cpu() -> None:
    total = 0
    for i in range(300_000):
        total += i * i


def test_this_machine_gets_estimates_and_no_gpu():
    meter = auto_meter(device=None)
    reason = rapl_unavailable_reason()
    if reason is None:
        pytest.skip("RAPL is readable here: covered by the fake-tree tests")
    meter.start()
    _burn_cpu()
    reading = meter.read()
    meter.close()
    assert set(reading) == {"cpu", "ram"}
    assert (reading["cpu"].method, reading["ram"].method) == ("cpu_time_x_tdp", "ram_w_per_gb")
    assert reading["cpu"].energy_j > 0
    described = meter.describe()
    assert described["gpu"] == "none: device None is not CUDA"
    assert described["cpu"] == f"estimate: rapl unavailable ({reason})"
    assert "estimate.cpu_w_per_core_source" in described


def test_readable_rapl_is_preferred(tmp_path):
    root = tmp_path / "powercap"
    _zone(root, "intel-rapl:0", "package-0")
    meter = auto_meter("cpu", rapl_root=root)
    assert meter.describe()["cpu"] == "rapl: package counters readable"
    assert meter.describe()["ram"] == "estimate: rapl has no dram domain"
    _zone(root, "intel-rapl:0:0", "dram")
    meter = auto_meter("cpu", rapl_root=root)
    meter.start()
    reading = meter.read()
    meter.close()
    assert (reading["cpu"].method, reading["ram"].method) == ("rapl", "rapl")


def test_rapl_permission_problem_warns_once(tmp_path, monkeypatch):
    root = tmp_path / "powercap"
    _zone(root, "intel-rapl:0", "package-0")

    def deny(path: Path) -> int:
        if path.name == "energy_uj":
            raise PermissionError(13, "Permission denied", str(path))
        return int(path.read_text())

    monkeypatch.setattr(rapl_mod, "_read_int", deny)
    monkeypatch.setattr(rapl_mod, "_warned", set())
    with pytest.warns(RuntimeWarning, match="CVE-2020-8694"):
        meter = auto_meter(rapl_root=root)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        auto_meter(rapl_root=root)
    assert meter.describe()["cpu"].startswith("estimate: rapl unavailable (cannot read")


def test_cuda_device_uses_nvml_when_it_works(fake_nvml_cls, fake_gpu_cls, clock, monkeypatch, tmp_path):
    monkeypatch.setattr(nvml_mod, "cuda_uuid", lambda index: None)
    gpu = fake_gpu_cls(uuid="GPU-0", energy_mj=lambda: 1000, power_mw=lambda: 50_000)
    meter = auto_meter("cuda:0", rapl_root=tmp_path, nvml=fake_nvml_cls([gpu]))
    assert meter.describe()["gpu"] == "nvml: device cuda:0"
    meter.start()
    assert meter.read()["gpu"].method == "nvml_counter"
    meter.close()
    broken = auto_meter("cuda:0", rapl_root=tmp_path, nvml=fake_nvml_cls([], driver_loaded=False))
    assert broken.describe()["gpu"].startswith("none: nvml unavailable (NVML nvmlInit failed")
    assert "gpu" not in broken.sources


def test_composite_reads_a_shared_part_once():
    shared = FakeMeter(joules_per_read={"cpu": 10.0, "ram": 1.0})
    gpu = FakeMeter(joules_per_read={"gpu": 100.0})
    meter = CompositeMeter({"gpu": gpu, "cpu": shared, "ram": shared}, {"cpu": "because"})
    meter.start()
    meter.read()
    reading = meter.read()
    meter.close()
    assert {k: v.energy_j for k, v in reading.items()} == {"gpu": 100.0, "cpu": 10.0, "ram": 1.0}
    assert shared.reads == gpu.reads == 2 and shared.closed and gpu.closed
    assert meter.describe()["cpu"] == "because" and meter.describe()["gpu"] == "fake"


def test_composite_drops_a_part_that_fails_to_start():
    class Broken(EstimateMeter):
        name = "broken"

        def start(self) -> None:
            raise MeterError("no device")

    meter = CompositeMeter({"gpu": Broken(), "cpu": FakeMeter(joules_per_read={"cpu": 1.0})})
    with pytest.warns(RuntimeWarning, match="broken meter failed to start"):
        meter.start()
    assert set(meter.read()) == {"cpu"}
    assert meter.describe()["gpu"] == "none: broken failed to start (no device)"


def test_composite_rejects_unknown_components():
    with pytest.raises(ConfigError, match="disk"):
        CompositeMeter({"disk": FakeMeter(joules_per_read={"disk": 1.0})})


def test_accountant_auto_meter_measures_a_window():
    accountant = EnergyAccountant(intensity=50.0)
    accountant.setup(directory=None, device="cpu")
    accountant.begin("train")
    _burn_cpu()
    measurement = accountant.end("train")
    accountant.close()
    assert measurement.energy_j["cpu"] > 0
    expected = "cpu_time_x_tdp" if rapl_unavailable_reason() is not None else "rapl"
    assert measurement.methods["cpu"] == expected
