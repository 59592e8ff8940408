"""NvmlMeter against a fake pynvml module (no NVIDIA GPU on the CI machines)."""

from __future__ import annotations

import pickle
import threading
import types
import warnings

import pytest

from carbon_callbacks.errors import ConfigError, MeterError
from carbon_callbacks.meters import NvmlMeter, nvml_unavailable_reason
from carbon_callbacks.meters import nvml as nvml_mod

UUID0 = "GPU-00000000-0000-0000-0000-000000000000"
UUID1 = "GPU-11111111-1111-1111-1111-111111111111"


def _watts_gpu(fake_gpu_cls, clock, uuid=UUID0, counter_w=300.0, power_w=300.0, counter=True, power=True):
    return fake_gpu_cls(
        uuid=uuid,
        energy_mj=(lambda: int(clock.t * counter_w * 1000)) if counter else None,
        power_mw=(lambda: int(power_w * 1000)) if power else None,
    )


@pytest.fixture(autouse=True)
def _no_torch_mapping(monkeypatch):
    """By default map devices by NVML index; tests of the UUID path patch cuda_uuid themselves."""
    monkeypatch.setattr(nvml_mod, "cuda_uuid", lambda index: None)


def test_counter_gives_measured_device_energy(fake_nvml_cls, fake_gpu_cls, clock):
    fake = fake_nvml_cls([_watts_gpu(fake_gpu_cls, clock, counter_w=250.0, power_w=250.0)])
    meter = NvmlMeter(0, nvml=fake, clock=clock, check_interval_s=3600)
    meter.start()
    clock.t += 10.0
    gpu = meter.read()["gpu"]
    meter.close()
    assert gpu.energy_j == pytest.approx(2500.0)
    assert (gpu.method, gpu.estimated, gpu.scope) == ("nvml_counter", False, "device")
    assert meter.describe() == {
        "meter": "nvml",
        "gpu_name": "NVIDIA Fake V100",
        "gpu_uuid": UUID0,
        "gpu_method": "nvml_counter",
    }
    assert fake.inits == fake.shutdowns == 1


def test_device_is_mapped_by_uuid(monkeypatch, fake_nvml_cls, fake_gpu_cls, clock):
    gpus = [_watts_gpu(fake_gpu_cls, clock, UUID0, 100.0, 100.0), _watts_gpu(fake_gpu_cls, clock, UUID1, 400.0, 400.0)]
    # CUDA_VISIBLE_DEVICES=1: torch's cuda:0 is NVML's device 1.
    monkeypatch.setattr(nvml_mod, "cuda_uuid", lambda index: [UUID1][index])
    meter = NvmlMeter("cuda:0", nvml=fake_nvml_cls(gpus), clock=clock, check_interval_s=None)
    meter.start()
    clock.t += 1.0
    assert meter.read()["gpu"].energy_j == pytest.approx(400.0)
    assert meter.describe()["gpu_uuid"] == UUID1


def test_cuda_uuid_reads_torch_properties(monkeypatch):
    monkeypatch.undo()  # the real cuda_uuid
    props = types.SimpleNamespace(uuid="11111111-1111-1111-1111-111111111111")
    cuda = types.SimpleNamespace(is_available=lambda: True, device_count=lambda: 1, get_device_properties=lambda i: props)
    monkeypatch.setitem(__import__("sys").modules, "torch", types.SimpleNamespace(cuda=cuda))
    assert nvml_mod.cuda_uuid(0) == UUID1
    assert nvml_mod.cuda_uuid(1) is None


def test_without_counter_integrates_polled_power_in_one_thread(fake_nvml_cls, fake_gpu_cls, clock):
    fake = fake_nvml_cls([_watts_gpu(fake_gpu_cls, clock, counter=False, power_w=200.0)])
    before = threading.active_count()
    meter = NvmlMeter(nvml=fake, clock=clock, poll_interval_s=0.05)
    assert threading.active_count() == before  # nothing started in __init__
    meter.start()
    thread = meter._live_poller.thread if meter._live_poller else None
    assert thread is not None and thread.daemon and thread.is_alive()
    clock.t += 10.0
    gpu = meter.read()["gpu"]
    meter.close()
    assert not thread.is_alive()
    assert gpu.energy_j == pytest.approx(2000.0)
    assert (gpu.method, gpu.estimated) == ("nvml_power_integral", False)


def test_stuck_counter_on_busy_gpu_switches_to_power_and_warns_once(fake_nvml_cls, fake_gpu_cls, clock):
    gpu = fake_gpu_cls(uuid=UUID0, energy_mj=lambda: 5_000_000, power_mw=lambda: 100_000)
    meter = NvmlMeter(nvml=fake_nvml_cls([gpu]), clock=clock, check_interval_s=3600)
    meter.start()
    clock.t += 2.0
    assert meter.read()["gpu"].method == "nvml_counter"  # too short to judge
    clock.t += 8.0
    with pytest.warns(RuntimeWarning, match="switched to power integration"):
        first = meter.read()["gpu"]
    clock.t += 10.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        second = meter.read()["gpu"]
    meter.close()
    assert first.method == second.method == "nvml_power_integral"
    assert first.energy_j == pytest.approx(1000.0)  # 100 W x 10 s instead of 0 J
    assert second.energy_j == pytest.approx(2000.0)
    assert "ratio" in meter.describe()["gpu_check"]


def test_consistent_counter_is_kept(fake_nvml_cls, fake_gpu_cls, clock):
    gpu = _watts_gpu(fake_gpu_cls, clock, counter_w=300.0, power_w=280.0)
    meter = NvmlMeter(nvml=fake_nvml_cls([gpu]), clock=clock, check_interval_s=3600)
    meter.start()
    for _ in range(3):
        clock.t += 10.0
        reading = meter.read()["gpu"]
    meter.close()
    assert reading.method == "nvml_counter"
    assert reading.energy_j == pytest.approx(9000.0)


def test_counter_without_power_warns_when_it_does_not_advance(fake_nvml_cls, fake_gpu_cls, clock):
    gpu = fake_gpu_cls(uuid=UUID0, energy_mj=lambda: 7, power_mw=None)
    meter = NvmlMeter(nvml=fake_nvml_cls([gpu]), clock=clock)
    meter.start()
    assert meter._live_poller is None  # nothing to poll
    clock.t += 60.0
    with pytest.warns(RuntimeWarning, match="has not advanced"):
        meter.read()


def test_gpu_with_neither_counter_nor_power_fails_to_start(fake_nvml_cls, fake_gpu_cls, clock):
    gpu = fake_gpu_cls(uuid=UUID0)
    with pytest.raises(MeterError, match="neither"):
        NvmlMeter(nvml=fake_nvml_cls([gpu]), clock=clock).start()


def test_nvml_errors_become_meter_errors(fake_nvml_cls, fake_gpu_cls, clock):
    gpu = _watts_gpu(fake_gpu_cls, clock)
    meter = NvmlMeter(nvml=fake_nvml_cls([gpu]), clock=clock, check_interval_s=None)
    meter.start()
    gpu.lost = True
    with pytest.raises(MeterError, match="GPU is lost"):
        meter.read()
    with pytest.raises(MeterError, match="Invalid Argument"):
        NvmlMeter(3, nvml=fake_nvml_cls([gpu])).start()


def test_availability_never_raises(fake_nvml_cls, fake_gpu_cls, clock):
    assert NvmlMeter.is_available(nvml=fake_nvml_cls([_watts_gpu(fake_gpu_cls, clock)]))
    assert not NvmlMeter.is_available(nvml=fake_nvml_cls([]))
    assert "Driver Not Loaded" in nvml_unavailable_reason(fake_nvml_cls([], driver_loaded=False))
    assert isinstance(NvmlMeter.is_available(), bool)  # the real pynvml: False on machines without a driver


@pytest.mark.parametrize("device", ["cpu", -1, "cuda:x", 1.5, True])
def test_bad_device_is_a_config_error(device):
    with pytest.raises(ConfigError, match="device="):
        NvmlMeter(device)


def test_torch_device_is_accepted():
    device = types.SimpleNamespace(type="cuda", index=2)
    assert NvmlMeter(device).device_index == 2
    with pytest.raises(ConfigError, match="CUDA"):
        NvmlMeter(types.SimpleNamespace(type="mps", index=None))


def test_pickles_without_live_handles(fake_nvml_cls, fake_gpu_cls, clock):
    meter = NvmlMeter("cuda:0", nvml=fake_nvml_cls([_watts_gpu(fake_gpu_cls, clock)]), check_interval_s=0.5)
    meter.start()
    copy = pickle.loads(pickle.dumps(meter))
    meter.close()
    assert copy._live_handle is None and copy._live_poller is None and copy._live_nvml is None
    assert copy.device_index == 0 and copy.gpu_uuid == UUID0


def test_mig_instance_is_found_by_its_mig_uuid(monkeypatch, fake_nvml_cls, fake_gpu_cls, clock):
    mig = _watts_gpu(fake_gpu_cls, clock, uuid="MIG-22222222-2222-2222-2222-222222222222")
    monkeypatch.setattr(nvml_mod, "cuda_uuid", lambda index: "GPU-22222222-2222-2222-2222-222222222222")
    meter = NvmlMeter(0, nvml=fake_nvml_cls([mig]), check_interval_s=None)
    meter.start()
    assert meter.describe()["gpu_uuid"].startswith("MIG-")
    meter.close()


def test_power_integration_can_be_forced(fake_nvml_cls, fake_gpu_cls, clock):
    gpu = _watts_gpu(fake_gpu_cls, clock, counter_w=300.0, power_w=120.0)
    meter = NvmlMeter(nvml=fake_nvml_cls([gpu]), clock=clock, use_counter=False, poll_interval_s=3600)
    meter.start()
    clock.t += 10.0
    reading = meter.read()["gpu"]
    meter.close()
    assert (reading.method, reading.energy_j) == ("nvml_power_integral", pytest.approx(1200.0))
