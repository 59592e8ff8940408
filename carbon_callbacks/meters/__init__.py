"""Energy meters: cumulative joules per component, with how each number was obtained."""

from .auto import CompositeMeter, auto_meter
from .base import COMPONENTS, ComponentEnergy, Meter
from .constant import ConstantPower
from .cpu_power import CpuPower, cpu_power_per_core
from .estimate import EstimateMeter
from .fake import FakeMeter
from .nvml import NvmlMeter, nvml_unavailable_reason
from .rapl import RaplMeter, rapl_unavailable_reason
from .safe import DegradingMeter

__all__ = [
    "COMPONENTS",
    "ComponentEnergy",
    "Meter",
    "ConstantPower",
    "FakeMeter",
    "DegradingMeter",
    "NvmlMeter",
    "nvml_unavailable_reason",
    "RaplMeter",
    "rapl_unavailable_reason",
    "EstimateMeter",
    "CpuPower",
    "cpu_power_per_core",
    "CompositeMeter",
    "auto_meter",
]
