"""NVIDIA GPU energy through NVML: the total-energy counter (Volta+), else integrated board power.

The ``nvml`` constructor argument is the public injection point: any module-like object with the API of
``pynvml`` (``nvmlInit``, ``nvmlShutdown``, ``nvmlDeviceGetCount``, ``nvmlDeviceGetHandleByUUID``,
``nvmlDeviceGetHandleByIndex``, ``nvmlDeviceGetTotalEnergyConsumption`` (mJ), ``nvmlDeviceGetPowerUsage`` (mW),
``nvmlDeviceGetName``, ``nvmlDeviceGetUUID``, ``NVMLError``, ``NVMLError_NotSupported``). By default ``pynvml``
(package ``nvidia-ml-py``) is imported when first needed. An injected module is not pickled: after unpickling
(``ddp_spawn``) the meter uses the real ``pynvml``.
"""

from __future__ import annotations

import os
import re
import sys
import threading
import time
import warnings
from typing import Any, Callable, Mapping

from ..errors import ConfigError, MeterError
from ._poller import Poller
from .base import ComponentEnergy, Meter

__all__ = ["RATIO_BOUNDS", "NvmlNotSupported", "NvmlMeter", "load_nvml", "nvml_unavailable_reason", "cuda_uuid"]

#: Accepted counter/integral ratio (as Zeus does for AMD counters); outside it the counter is abandoned.
RATIO_BOUNDS = (0.1, 10.0)
#: Shortest span (s) of polled power on which the counter is checked (the sensor averages over ~1 s).
MIN_CHECK_SPAN_S = 5.0
_CUDA = re.compile(r"^cuda(?::(\d+))?$")


class NvmlNotSupported(MeterError):
    """The GPU or driver does not support an NVML query (e.g. no energy counter before Volta)."""


def load_nvml(nvml: Any = None) -> Any:
    """The injected module, or ``pynvml`` imported now. Raises MeterError when pynvml is not installed."""
    if nvml is not None:
        return nvml
    try:
        import pynvml  # type: ignore[import-not-found]
    except ImportError as exc:
        raise MeterError("pynvml is not installed (pip install nvidia-ml-py)") from exc
    return pynvml


def _call(nvml: Any, fn: Callable[..., Any], *args: Any) -> Any:
    """Call one NVML function: the single place where pynvml errors become MeterError."""
    try:
        return fn(*args)
    except nvml.NVMLError as exc:
        not_supported = getattr(nvml, "NVMLError_NotSupported", None)
        kind = NvmlNotSupported if not_supported is not None and isinstance(exc, not_supported) else MeterError
        raise kind(f"NVML {getattr(fn, '__name__', 'call')} failed: {exc}") from exc


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def nvml_unavailable_reason(nvml: Any = None) -> str | None:
    """Why NVML cannot read a GPU here (None when it can). Never raises."""
    try:
        module = load_nvml(nvml)
        _call(module, module.nvmlInit)
    except MeterError as exc:
        return str(exc)
    try:
        count = int(_call(module, module.nvmlDeviceGetCount))
    except MeterError as exc:
        return str(exc)
    finally:
        try:
            _call(module, module.nvmlShutdown)
        except MeterError:
            pass
    return None if count > 0 else "NVML sees no GPU"


def cuda_uuid(index: int) -> str | None:
    """NVML UUID of CUDA device ``index`` as torch numbers it (after CUDA_VISIBLE_DEVICES), or None.

    torch is used if it is already imported, or imported when the index is ambiguous without it
    (CUDA_VISIBLE_DEVICES set). Otherwise None: the caller falls back to the NVML index.
    """
    torch = sys.modules.get("torch")
    if torch is None and os.environ.get("CUDA_VISIBLE_DEVICES") is not None:
        try:
            import torch  # type: ignore[no-redef]
        except ImportError:
            return None
    if torch is None or not torch.cuda.is_available() or index >= torch.cuda.device_count():
        return None
    uuid = str(torch.cuda.get_device_properties(index).uuid)
    return uuid if uuid.startswith(("GPU-", "MIG-")) else "GPU-" + uuid


def _current_cuda_index() -> int:
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        return int(torch.cuda.current_device())
    return 0


def _parse_device(device: Any) -> int | None:
    """None (current device at start()), or a CUDA index. Raises ConfigError."""
    if device is None:
        return None
    if isinstance(device, bool) or not isinstance(device, (int, str)) and not hasattr(device, "type"):
        raise ConfigError(f"device={device!r} is not allowed: give None, an index >= 0, 'cuda', 'cuda:N' or a torch.device")
    if isinstance(device, int):
        if device < 0:
            raise ConfigError(f"device={device!r} is not allowed: give a CUDA index >= 0")
        return device
    if not isinstance(device, str):  # torch.device
        if device.type != "cuda":
            raise ConfigError(f"device={device!r} is not allowed: NvmlMeter needs a CUDA device")
        return device.index
    match = _CUDA.match(device.strip())
    if match is None:
        raise ConfigError(f"device={device!r} is not allowed: give 'cuda' or 'cuda:N'")
    return None if match.group(1) is None else int(match.group(1))


class _PowerIntegral:
    """Trapezoid integral of polled power (mW samples) in joules; thread-safe."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.energy_j = 0.0
        self.t_last: float | None = None
        self.p_last_w = 0.0

    def add(self, clock: Callable[[], float], power_w: float) -> None:
        with self.lock:
            t_s = clock()
            if self.t_last is not None:
                self.energy_j += (power_w + self.p_last_w) / 2 * max(0.0, t_s - self.t_last)
            self.t_last, self.p_last_w = t_s, power_w


class NvmlMeter(Meter):
    """Energy of this rank's GPU board (scope ``device``), measured by NVML.

    Method ``nvml_counter``: the total-energy counter (mJ, Volta and newer). A 1 Hz thread polls power to
    check the counter on every read: if counter / integrated power leaves :data:`RATIO_BOUNDS` over at least
    :data:`MIN_CHECK_SPAN_S`, the meter warns once and switches to power integration.
    Method ``nvml_power_integral``: without the counter, one daemon thread samples power every
    ``poll_interval_s`` and integrates it (trapezoid). Both are measured (``estimated=False``).

    Args:
        device: None (torch's current CUDA device at :meth:`start`), an index, ``'cuda:N'`` or a torch.device;
            mapped to NVML by UUID because NVML ignores CUDA_VISIBLE_DEVICES.
        nvml: a module with pynvml's API (see the module docstring); default ``pynvml``, imported lazily.
        poll_interval_s: power sampling period when integrating.
        check_interval_s: power sampling period for the counter check; None disables the check and thread.
        use_counter: False integrates polled power even where the counter exists (for cross-checks).
        clock: monotonic clock in seconds.
    """

    name = "nvml"

    def __init__(
        self,
        device: Any = None,
        *,
        nvml: Any = None,
        poll_interval_s: float = 0.1,
        check_interval_s: float | None = 1.0,
        use_counter: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.device_index = _parse_device(device)
        for label, value in (("poll_interval_s", poll_interval_s), ("check_interval_s", check_interval_s)):
            if value is not None and not 0 < float(value) < float("inf"):
                raise ConfigError(f"{label}={value!r} is not allowed: give a finite number of seconds > 0")
        self.poll_interval_s = float(poll_interval_s)
        self.check_interval_s = None if check_interval_s is None else float(check_interval_s)
        self.use_counter = bool(use_counter)
        self.clock = clock
        self.method = "not started"
        self.gpu_name = self.gpu_uuid = ""
        self.check_note = ""
        self._live_nvml: Any = nvml
        self._reset_live()

    def _reset_live(self) -> None:
        self._live_handle: Any = None
        self._live_integral: _PowerIntegral | None = None
        self._live_poller: Poller | None = None
        self._counter0_mj = 0
        self._trusted = (0.0, 0.0, 0.0)  # (cumulative J, integral J, clock s) at the last good check
        self._offset_j = 0.0  # energy booked before switching to the integral
        self._last_j = 0.0
        self._warned_stuck = False

    @classmethod
    def is_available(cls, nvml: Any = None) -> bool:
        return nvml_unavailable_reason(nvml) is None

    # -- start -------------------------------------------------------------------------------------------
    def start(self) -> None:
        if self._live_handle is not None:
            return
        self._reset_live()  # a new zero: first start, after close(), or in a new process after unpickling
        nvml = self._live_nvml = load_nvml(self._live_nvml)
        _call(nvml, nvml.nvmlInit)
        handle = self._handle(nvml)
        self.gpu_name = _text(_call(nvml, nvml.nvmlDeviceGetName, handle))
        self.gpu_uuid = _text(_call(nvml, nvml.nvmlDeviceGetUUID, handle))
        has_power = self._power_w(nvml, handle, probe=True) is not None
        try:
            if not self.use_counter:
                raise NvmlNotSupported("counter not used (use_counter=False)")
            self._counter0_mj = int(_call(nvml, nvml.nvmlDeviceGetTotalEnergyConsumption, handle))
            self.method = "nvml_counter"
        except NvmlNotSupported:
            if not has_power:
                raise MeterError(f"{self.gpu_name}: NVML supports neither the energy counter nor power readings")
            self.method = "nvml_power_integral"
        self._live_handle = handle
        self._trusted = (0.0, 0.0, self.clock())
        interval_s = self.poll_interval_s if self.method == "nvml_power_integral" else self.check_interval_s
        if has_power and interval_s is not None:
            self._start_thread(interval_s)

    def _handle(self, nvml: Any) -> Any:
        index = self.device_index if self.device_index is not None else _current_cuda_index()
        uuid = cuda_uuid(index)
        if uuid is None:
            return _call(nvml, nvml.nvmlDeviceGetHandleByIndex, index)
        if uuid.startswith("GPU-"):  # torch gives no prefix: a MIG instance needs "MIG-"
            try:
                return _call(nvml, nvml.nvmlDeviceGetHandleByUUID, uuid)
            except MeterError:
                uuid = "MIG-" + uuid[4:]
        return _call(nvml, nvml.nvmlDeviceGetHandleByUUID, uuid)

    def _power_w(self, nvml: Any, handle: Any, probe: bool = False) -> float | None:
        try:
            return float(_call(nvml, nvml.nvmlDeviceGetPowerUsage, handle)) / 1000.0
        except NvmlNotSupported:
            if probe:
                return None
            raise

    # -- polling thread ----------------------------------------------------------------------------------
    def _start_thread(self, interval_s: float) -> None:
        self._live_integral = _PowerIntegral()
        self._sample()
        self._poll_interval_now_s = interval_s
        self._live_poller = Poller(self._sample, lambda: self._poll_interval_now_s, "carbon-callbacks-nvml")

    def _sample(self) -> None:
        integral = self._live_integral
        if integral is not None:
            power_w = self._power_w(self._live_nvml, self._live_handle)
            integral.add(self.clock, power_w if power_w is not None else 0.0)

    # -- read --------------------------------------------------------------------------------------------
    def read(self) -> Mapping[str, ComponentEnergy]:
        self.start()
        if self._live_poller is not None and self._live_poller.error is not None:
            raise self._live_poller.error
        nvml, integral = self._live_nvml, self._live_integral
        if integral is not None:
            self._sample()
        if self.method == "nvml_counter":
            counter_mj = int(_call(nvml, nvml.nvmlDeviceGetTotalEnergyConsumption, self._live_handle))
            energy_j = (counter_mj - self._counter0_mj) / 1000.0
            if integral is not None:
                energy_j = self._check(energy_j, integral)
            else:
                self._warn_if_stuck(energy_j)
        else:
            assert integral is not None
            energy_j = self._offset_j + integral.energy_j
        self._last_j = max(self._last_j, energy_j)
        return {"gpu": ComponentEnergy(self._last_j, self.method, False, "device")}

    def _check(self, counter_j: float, integral: _PowerIntegral) -> float:
        """Compare the counter with integrated power since the last good check; switch on a bad ratio."""
        trusted_j, trusted_integral_j, trusted_t = self._trusted
        now = self.clock()
        if now - trusted_t < MIN_CHECK_SPAN_S:
            return counter_j
        counter_delta_j = counter_j - trusted_j
        integral_delta_j = integral.energy_j - trusted_integral_j
        if counter_delta_j <= 0 and integral_delta_j <= 0:
            return counter_j
        ratio = counter_delta_j / integral_delta_j if integral_delta_j > 0 else float("inf")
        if RATIO_BOUNDS[0] <= ratio <= RATIO_BOUNDS[1]:
            self._trusted = (counter_j, integral.energy_j, now)
            return counter_j
        self.check_note = (
            f"energy counter gave {counter_delta_j:.1f} J but integrated power {integral_delta_j:.1f} J over "
            f"{now - trusted_t:.1f} s (ratio {ratio:.3g}, outside {RATIO_BOUNDS}); switched to power integration"
        )
        warnings.warn(f"carbon_callbacks: NVML on {self.gpu_name}: {self.check_note}", RuntimeWarning, stacklevel=4)
        self.method = "nvml_power_integral"
        self._offset_j = trusted_j - trusted_integral_j
        self._poll_interval_now_s = self.poll_interval_s
        return self._offset_j + integral.energy_j

    def _warn_if_stuck(self, energy_j: float) -> None:
        if energy_j <= 0 and not self._warned_stuck and self.clock() - self._trusted[2] >= MIN_CHECK_SPAN_S:
            self._warned_stuck = True
            warnings.warn(
                f"carbon_callbacks: the NVML energy counter of {self.gpu_name} has not advanced in "
                f"{self.clock() - self._trusted[2]:.0f} s and power cannot be read to check it: GPU energy "
                "may be under-reported.",
                RuntimeWarning,
                stacklevel=3,
            )

    # -- close / describe --------------------------------------------------------------------------------
    def close(self) -> None:
        if self._live_poller is not None:
            self._live_poller.stop()
            self._live_poller = None
        if self._live_handle is not None:
            self._live_handle = None
            try:
                _call(self._live_nvml, self._live_nvml.nvmlShutdown)
            except MeterError:
                pass

    def describe(self) -> Mapping[str, str]:
        out = {
            "meter": self.name,
            "gpu_name": self.gpu_name or "not started",
            "gpu_uuid": self.gpu_uuid or "not started",
            "gpu_method": self.method,
        }
        if self.check_note:
            out["gpu_check"] = self.check_note
        return out
