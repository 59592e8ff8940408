"""carbon_callbacks: energy and CO2 per epoch next to WER/EER, energy-aware early stopping, and an analyzer.

The core (meters, measurements, ledger, analysis) imports no deep-learning framework; the adapters live in
``carbon_callbacks.lightning`` and ``carbon_callbacks.speechbrain``.
"""

from ._version import __version__
from .accounting import EnergyAccountant, Totals
from .errors import CarbonCallbacksError, ConfigError, MeterError, ReadError
from .ledger import LedgerRow, read_ledger
from .measurement import Measurement, WindowRecorder
from .meters import ConstantPower, FakeMeter, Meter

__all__ = [
    "__version__",
    "EnergyAccountant",
    "Totals",
    "CarbonCallbacksError",
    "ConfigError",
    "MeterError",
    "ReadError",
    "LedgerRow",
    "read_ledger",
    "Measurement",
    "WindowRecorder",
    "ConstantPower",
    "FakeMeter",
    "Meter",
]
