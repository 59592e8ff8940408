"""Lightning (``lightning.pytorch``) callbacks: energy and CO2 per epoch, energy-aware early stopping, budgets.

Only the ``lightning.pytorch`` namespace is supported: a ``pytorch_lightning`` Trainer does not treat these
callbacks as its own ``Callback`` type (see docs/lightning.md).
"""

from .budget import CarbonBudget
from .early_stopping import EnergyAwareEarlyStopping
from .inference import InferenceCost
from .tracker import LOGGED_KEYS, EnergyTracker

__all__ = ["EnergyTracker", "EnergyAwareEarlyStopping", "CarbonBudget", "InferenceCost", "LOGGED_KEYS"]
