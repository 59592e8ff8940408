"""Energy meters: cumulative joules per component, with how each number was obtained."""

from .base import COMPONENTS, ComponentEnergy, Meter
from .constant import ConstantPower
from .fake import FakeMeter
from .safe import DegradingMeter

__all__ = ["COMPONENTS", "ComponentEnergy", "Meter", "ConstantPower", "FakeMeter", "DegradingMeter"]
