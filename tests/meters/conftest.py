"""A fake of the pynvml module (same function names and error classes) for machines without an NVIDIA GPU."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import pytest


class NVMLError(Exception):
    """Stands for pynvml.NVMLError."""


class NVMLError_NotSupported(NVMLError):  # noqa: N801 - pynvml's name
    """Stands for pynvml.NVMLError_NotSupported."""


class NVMLError_DriverNotLoaded(NVMLError):  # noqa: N801 - pynvml's name
    """Stands for pynvml.NVMLError_DriverNotLoaded."""


class NVMLError_GpuIsLost(NVMLError):  # noqa: N801 - pynvml's name
    """Stands for pynvml.NVMLError_GpuIsLost."""


@dataclass
class FakeGpu:
    """One board: ``energy_mj()`` and ``power_mw()`` are evaluated at each query (None: not supported)."""

    uuid: str
    name: str = "NVIDIA Fake V100"
    energy_mj: Callable[[], int] | None = None
    power_mw: Callable[[], int] | None = None
    lost: bool = False


class FakeNvml:
    """The subset of pynvml's API that NvmlMeter uses, with call counters."""

    NVMLError = NVMLError
    NVMLError_NotSupported = NVMLError_NotSupported
    NVMLError_DriverNotLoaded = NVMLError_DriverNotLoaded
    NVMLError_GpuIsLost = NVMLError_GpuIsLost

    def __init__(self, gpus: list[FakeGpu], driver_loaded: bool = True) -> None:
        self.gpus = gpus
        self.driver_loaded = driver_loaded
        self.inits = 0
        self.shutdowns = 0

    def nvmlInit(self) -> None:  # noqa: N802 - pynvml's name
        if not self.driver_loaded:
            raise NVMLError_DriverNotLoaded("Driver Not Loaded")
        self.inits += 1

    def nvmlShutdown(self) -> None:  # noqa: N802
        self.shutdowns += 1

    def nvmlDeviceGetCount(self) -> int:  # noqa: N802
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> FakeGpu:  # noqa: N802
        if not 0 <= index < len(self.gpus):
            raise NVMLError("Invalid Argument")
        return self.gpus[index]

    def nvmlDeviceGetHandleByUUID(self, uuid: str | bytes) -> FakeGpu:  # noqa: N802
        uuid = uuid.decode() if isinstance(uuid, bytes) else uuid
        for gpu in self.gpus:
            if gpu.uuid == uuid:
                return gpu
        raise NVMLError("Not Found")

    def nvmlDeviceGetName(self, handle: FakeGpu) -> str:  # noqa: N802
        return handle.name

    def nvmlDeviceGetUUID(self, handle: FakeGpu) -> str:  # noqa: N802
        return handle.uuid

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: FakeGpu) -> int:  # noqa: N802
        if handle.lost:
            raise NVMLError_GpuIsLost("GPU is lost")
        if handle.energy_mj is None:
            raise NVMLError_NotSupported("Not Supported")
        return handle.energy_mj()

    def nvmlDeviceGetPowerUsage(self, handle: FakeGpu) -> int:  # noqa: N802
        if handle.lost:
            raise NVMLError_GpuIsLost("GPU is lost")
        if handle.power_mw is None:
            raise NVMLError_NotSupported("Not Supported")
        return handle.power_mw()


class FakeClock:
    """A monotonic clock advanced by hand (seconds)."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def fake_nvml_cls() -> type[FakeNvml]:
    return FakeNvml


@pytest.fixture
def fake_gpu_cls() -> type[FakeGpu]:
    return FakeGpu


@pytest.fixture(autouse=True)
def _no_meter_thread_left():
    """Every test must close the meters it starts: no polling thread may outlive it."""
    yield
    import threading

    left = [t.name for t in threading.enumerate() if t.name.startswith("carbon-callbacks-") and t.is_alive()]
    assert not left, f"meter threads left running: {left}"
