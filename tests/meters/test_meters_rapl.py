"""RaplMeter on fake powercap trees written to tmp_path (real files, fake hardware)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from carbon_callbacks.errors import ConfigError, MeterError
from carbon_callbacks.meters import RaplMeter, rapl_unavailable_reason
from carbon_callbacks.meters import rapl as rapl_mod

MAX_UJ = 1_000_000


def _zone(root: Path, zone: str, name: str, energy_uj: int, max_uj: int = MAX_UJ) -> Path:
    path = root / zone
    path.mkdir(parents=True)
    (path / "name").write_text(name + "\n")
    (path / "energy_uj").write_text(f"{energy_uj}\n")
    (path / "max_energy_range_uj").write_text(f"{max_uj}\n")
    return path


def _set(zone: Path, energy_uj: int) -> None:
    (zone / "energy_uj").write_text(f"{energy_uj}\n")


@pytest.fixture
def tree(tmp_path: Path) -> dict[str, Path]:
    """Two sockets with core/uncore/dram subzones, a psys zone and an MMIO duplicate of package 0."""
    root = tmp_path / "powercap"
    (root / "intel-rapl").mkdir(parents=True)  # the control type directory, no counters
    zones = {
        "pkg0": _zone(root, "intel-rapl:0", "package-0", 100),
        "core0": _zone(root, "intel-rapl:0:0", "core", 100),
        "uncore0": _zone(root, "intel-rapl:0:1", "uncore", 100),
        "dram0": _zone(root, "intel-rapl:0:2", "dram", 100),
        "pkg1": _zone(root, "intel-rapl:1", "package-1", 100),
        "dram1": _zone(root, "intel-rapl:1:0", "dram", 100),
        "psys": _zone(root, "intel-rapl:2", "psys", 100),
        "mmio": _zone(root, "intel-rapl-mmio:0", "package-0", 100),
    }
    zones["root"] = root
    return zones


def test_sums_packages_and_drams_without_overlapping_domains(tree):
    meter = RaplMeter(tree["root"], sample_interval_s=0)
    meter.start()
    for name, uj in {"pkg0": 500_100, "pkg1": 300_100, "dram0": 50_100, "dram1": 20_100,
                     "core0": 400_100, "uncore0": 90_100, "psys": 999_000, "mmio": 500_100}.items():
        _set(tree[name], uj)
    reading = meter.read()
    assert reading["cpu"].energy_j == pytest.approx(0.8)  # packages only
    assert reading["ram"].energy_j == pytest.approx(0.07)
    assert {(r.method, r.estimated, r.scope) for r in reading.values()} == {("rapl", False, "host")}
    assert "intel-rapl:0=package-0" in meter.describe()["rapl_domains"]
    assert "psys" not in meter.describe()["rapl_domains"]


def test_counter_wraparound_is_added_once_per_wrap(tree):
    meter = RaplMeter(tree["root"], sample_interval_s=0)
    _set(tree["pkg0"], 900_000)
    meter.start()
    _set(tree["pkg0"], 100_000)  # wrapped: 100_000 uJ to the top, 100_000 after it
    meter.poll()
    _set(tree["pkg0"], 950_000)
    meter.poll()
    _set(tree["pkg0"], 50_000)
    assert meter.read()["cpu"].energy_j == pytest.approx(0.2 + 0.85 + 0.1)


def test_psys_is_used_only_without_packages(tmp_path):
    root = tmp_path / "powercap"
    psys = _zone(root, "intel-rapl:1", "psys", 0)
    meter = RaplMeter(root, sample_interval_s=0)
    meter.start()
    _set(psys, 400_000)
    reading = meter.read()
    assert reading["cpu"].energy_j == pytest.approx(0.4)
    assert "ram" not in reading


def test_unreadable_energy_file_is_reported_not_read_as_zero(tree):
    (tree["dram1"] / "energy_uj").unlink()
    (tree["dram1"] / "energy_uj").mkdir()  # unreadable as a file even for root
    reason = rapl_unavailable_reason(tree["root"])
    assert reason is not None and "intel-rapl:1:0/energy_uj" in reason
    assert not RaplMeter.is_available(tree["root"])
    with pytest.raises(MeterError, match="RAPL unavailable"):
        RaplMeter(tree["root"]).start()


def test_permission_denied_names_the_cve_and_the_fix(tree, monkeypatch):
    real = rapl_mod._read_int

    def deny_energy(path: Path) -> int:
        if path.name == "energy_uj":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(rapl_mod, "_read_int", deny_energy)
    reason = rapl_unavailable_reason(tree["root"])
    assert "permission denied" in reason and "CVE-2020-8694" in reason and "chmod" in reason


def test_missing_or_empty_tree(tmp_path):
    assert "no " in rapl_unavailable_reason(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    assert "no package, psys or dram zone" in rapl_unavailable_reason(tmp_path / "empty")


def test_counter_vanishing_during_a_run_raises_meter_error(tree):
    meter = RaplMeter(tree["root"], sample_interval_s=0)
    meter.start()
    (tree["pkg1"] / "energy_uj").unlink()
    with pytest.raises(MeterError, match="RAPL read failed"):
        meter.read()


def test_wrap_sampling_thread_is_started_in_start_and_stopped_in_close(tree):
    before = threading.active_count()
    meter = RaplMeter(tree["root"])
    assert threading.active_count() == before
    meter.start()
    thread = meter._live_poller.thread if meter._live_poller else None
    assert thread is not None and thread.daemon and thread.is_alive()
    assert meter.describe()["rapl_sample_interval_s"] == "1"  # 1 J range / 1000 W / 2, at least 1 s
    meter.close()
    assert not thread.is_alive()


def test_interval_follows_the_wrap_range(tmp_path):
    root = tmp_path / "powercap"
    _zone(root, "intel-rapl:0", "package-0", 0, max_uj=262_143_328_850)
    meter = RaplMeter(root, sample_interval_s=0)
    meter.start()
    meter.sample_interval_s = None
    assert float(meter.describe()["rapl_sample_interval_s"]) == pytest.approx(131.07, abs=0.01)


def test_bad_interval_is_a_config_error():
    with pytest.raises(ConfigError, match="sample_interval_s"):
        RaplMeter(sample_interval_s=-1)
