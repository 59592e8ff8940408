"""EstimateMeter for real on this machine, and the CPU power table lookup on real cpuinfo texts."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from carbon_callbacks.errors import ConfigError, ReadError
from carbon_callbacks.meters import EstimateMeter, cpu_power_per_core
from carbon_callbacks.meters import estimate as estimate_mod
from carbon_callbacks.meters.cpu_power import (
    FALLBACK_W_PER_CORE,
    codecarbon_table_path,
    load_tdp_table,
    match_tdp,
)


def _burn(cpu_s: float) -> None:
    start = time.process_time()
    while time.process_time() - start < cpu_s:
        pass


def test_cpu_energy_is_cpu_time_times_power_per_core():
    meter = EstimateMeter(cpu_w_per_core=10.0)
    meter.start()
    first = meter.read()["cpu"]
    before = time.process_time()
    _burn(0.3)
    burnt_s = time.process_time() - before
    second = meter.read()["cpu"]
    assert second.energy_j > 0
    assert second.energy_j - first.energy_j == pytest.approx(10.0 * burnt_s, abs=10.0 * 0.03)
    assert (second.method, second.estimated, second.scope) == ("cpu_time_x_tdp", True, "process")
    assert meter.describe()["cpu_w_per_core_source"] == "given as cpu_w_per_core"


def test_default_power_on_this_machine_is_documented():
    meter = EstimateMeter()
    meter.start()
    _burn(0.1)
    assert meter.read()["cpu"].energy_j > 0
    described = meter.describe()
    assert float(described["cpu_w_per_core"]) == meter.power.w_per_core > 0
    assert "Green Algorithms" in described["cpu_w_per_core_source"] or "codecarbon" in described["cpu_w_per_core_source"]


def test_children_are_counted_only_when_asked():
    with_kids, without = EstimateMeter(cpu_w_per_core=1.0, include_children=True), EstimateMeter(cpu_w_per_core=1.0)
    with_kids.start()
    without.start()
    loop = "import time\nt=time.process_time()\nwhile time.process_time()-t<0.2: pass"
    subprocess.run([sys.executable, "-S", "-c", loop], check=True)
    assert with_kids.read()["cpu"].energy_j - without.read()["cpu"].energy_j >= 0.19


def test_ram_energy_integrates_resident_memory_between_reads(monkeypatch, clock):
    monkeypatch.setattr(estimate_mod, "process_rss_bytes", lambda: 2_000_000_000)
    meter = EstimateMeter(clock=clock)
    meter.start()
    clock.t += 10.0
    ram = meter.read()["ram"]
    assert ram.energy_j == pytest.approx(0.3725 * 2 * 10)
    assert (ram.method, ram.estimated, ram.scope) == ("ram_w_per_gb", True, "process")
    clock.t += 5.0
    assert meter.read()["ram"].energy_j == pytest.approx(0.3725 * 2 * 15)


def test_real_resident_memory_is_positive():
    assert estimate_mod.process_rss_bytes() > 1_000_000


@pytest.mark.parametrize("bad", [{"cpu_w_per_core": -1.0}, {"ram_w_per_gb": float("nan")}])
def test_bad_powers_are_config_errors(bad):
    with pytest.raises(ConfigError, match="not allowed"):
        EstimateMeter(**bad)


@pytest.fixture
def table() -> dict[str, float]:
    path = codecarbon_table_path()
    if path is None:
        pytest.skip("codecarbon's cpu_power.csv is not installed")
    return load_tdp_table(path)


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz", ("Intel Xeon Gold 6248", 150.0)),
        ("AMD EPYC 7763 64-Core Processor", ("AMD EPYC 7763", 280.0)),
        ("Intel(R) Core(TM) i9-9900K CPU @ 3.60GHz", ("Intel Core i9-9900K", 95.0)),
        ("AMD EPYC", None),
        ("QEMU Virtual CPU version 2.5+", None),
    ],
)
def test_model_names_match_the_codecarbon_table(table, model, expected):
    assert match_tdp(model, table) == expected


def test_power_per_core_is_tdp_over_cores(tmp_path, table):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz\ncpu cores\t: 20\n")
    power = cpu_power_per_core(cpuinfo)
    assert power.w_per_core == pytest.approx(7.5)
    assert (power.tdp_w, power.cores) == (150.0, 20)
    assert "cpu_power.csv" in power.source and "Intel Xeon Gold 6248" in power.source


def test_unknown_model_falls_back_to_green_algorithms(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("model name\t: AMD EPYC\ncpu cores\t: 2\n")
    power = cpu_power_per_core(cpuinfo)
    assert power.w_per_core == FALLBACK_W_PER_CORE
    assert "Green Algorithms" in power.source and "'AMD EPYC'" in power.source


def test_unreadable_table_falls_back_and_says_why(tmp_path):
    bad = tmp_path / "table.csv"
    bad.write_text("Model;Watts\nX;1\n")
    with pytest.raises(ReadError, match="Name,TDP"):
        load_tdp_table(bad)
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("model name\t: AMD EPYC 7763 64-Core Processor\ncpu cores\t: 64\n")
    power = cpu_power_per_core(cpuinfo, table_path=bad)
    assert power.w_per_core == FALLBACK_W_PER_CORE and "Name,TDP" in power.source


def test_a_model_without_number_skips_the_table(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("model name\t: AMD EPYC\ncpu cores\t: 2\n")
    power = cpu_power_per_core(cpuinfo, table_path=tmp_path / "absent.csv")  # never opened
    assert power.w_per_core == FALLBACK_W_PER_CORE and "names no model number" in power.source


def test_codecarbon_is_not_imported():
    code = "import sys; from carbon_callbacks.meters import EstimateMeter; EstimateMeter().describe(); " \
           "print('codecarbon' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.split() == ["False", "False"]
