"""The default meter: the best available backend per component, and why each was chosen."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Mapping

from ..errors import ConfigError, MeterError
from .base import COMPONENTS, ComponentEnergy, Meter
from .estimate import EstimateMeter
from .nvml import NvmlMeter, nvml_unavailable_reason
from .rapl import DEFAULT_ROOT, RaplMeter, rapl_domains, rapl_unavailable_reason, warn_unavailable_once

__all__ = ["CompositeMeter", "auto_meter"]


class CompositeMeter(Meter):
    """Takes each component from one of several meters; a meter serving several components is read once.

    Args:
        sources: {component: meter}, components from :data:`COMPONENTS`.
        reasons: {component: why this meter (or none) was chosen}, reported by :meth:`describe`.

    A part whose :meth:`start` fails is dropped with a warning (its components are then missing, and the
    reason says so); a failure during :meth:`read` raises :class:`MeterError` for the caller to degrade.
    """

    name = "composite"

    def __init__(self, sources: Mapping[str, Meter], reasons: Mapping[str, str] | None = None) -> None:
        unknown = sorted(set(sources) - set(COMPONENTS))
        if unknown:
            raise ConfigError(f"sources has components {unknown}: allowed are {list(COMPONENTS)}")
        bad = [k for k, m in sources.items() if not isinstance(m, Meter)]
        if bad:
            raise ConfigError(f"sources[{bad[0]!r}]={sources[bad[0]]!r} is not allowed: give a Meter")
        self.sources = dict(sources)
        self.reasons = dict(reasons or {})
        self._started = False

    def _parts(self) -> list[Meter]:
        parts: list[Meter] = []
        for meter in self.sources.values():
            if not any(meter is p for p in parts):
                parts.append(meter)
        return parts

    def start(self) -> None:
        if self._started:
            return
        self._started = True
        for part in self._parts():
            try:
                part.start()
            except MeterError as exc:
                self._drop(part, exc)

    def _drop(self, part: Meter, exc: MeterError) -> None:
        comps = [k for k, m in self.sources.items() if m is part]
        for comp in comps:
            del self.sources[comp]
            self.reasons[comp] = f"none: {part.name} failed to start ({exc})"
        warnings.warn(
            f"carbon_callbacks: {part.name} meter failed to start ({exc}); {', '.join(comps)} not measured.",
            RuntimeWarning,
            stacklevel=3,
        )

    def read(self) -> Mapping[str, ComponentEnergy]:
        self.start()
        readings = {id(part): part.read() for part in self._parts()}
        out = {}
        for comp, meter in self.sources.items():
            reading = readings[id(meter)].get(comp)
            if reading is not None:
                out[comp] = reading
        return out

    def close(self) -> None:
        for part in self._parts():
            part.close()

    def describe(self) -> Mapping[str, str]:
        out = {"meter": self.name}
        for comp in COMPONENTS:
            if comp in self.reasons or comp in self.sources:
                out[comp] = self.reasons[comp] if comp in self.reasons else self.sources[comp].name
        for part in self._parts():
            for key, value in part.describe().items():
                if key != "meter":
                    out[f"{part.name}.{key}"] = value
        return out


def _cuda_device(device: Any) -> bool:
    text = "" if device is None else str(device).strip().lower()
    return text == "cuda" or text.startswith("cuda:")


def auto_meter(device: Any = None, *, rapl_root: str | Path = DEFAULT_ROOT, nvml: Any = None) -> CompositeMeter:
    """The best meter per component: gpu from NVML (CUDA devices only), cpu/ram from RAPL, else estimates.

    Args:
        device: this rank's device (``'cuda:0'``, a torch.device, ``'cpu'`` or None for no accelerator).
        rapl_root: the powercap directory.
        nvml: a module with pynvml's API, passed to :class:`NvmlMeter` (tests).
    """
    sources: dict[str, Meter] = {}
    reasons: dict[str, str] = {}
    if _cuda_device(device):
        why = nvml_unavailable_reason(nvml)
        if why is None:
            sources["gpu"] = NvmlMeter(str(device), nvml=nvml)
            reasons["gpu"] = f"nvml: device {device}"
        else:
            reasons["gpu"] = f"none: nvml unavailable ({why})"
    else:
        reasons["gpu"] = f"none: device {device!r} is not CUDA"
    rapl_why = rapl_unavailable_reason(rapl_root)
    estimate = EstimateMeter()
    if rapl_why is None:
        rapl = RaplMeter(rapl_root)
        sources["cpu"] = rapl
        reasons["cpu"] = "rapl: package counters readable"
        has_dram = any(d.name == "dram" for d in rapl_domains(rapl_root))
        sources["ram"] = rapl if has_dram else estimate
        reasons["ram"] = "rapl: dram counters readable" if has_dram else "estimate: rapl has no dram domain"
    else:
        if "permission" in rapl_why:
            warn_unavailable_once(rapl_why)
        sources["cpu"] = sources["ram"] = estimate
        reasons["cpu"] = reasons["ram"] = f"estimate: rapl unavailable ({rapl_why})"
    return CompositeMeter(sources, reasons)
