"""``CarbonBudget``: stop training before an energy or CO2 budget would be exceeded (like Lightning's ``Timer``)."""

from __future__ import annotations

import math
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities.rank_zero import rank_zero_info

from ..errors import ConfigError
from ._dist import broadcast_from_zero
from ._hooks import skip_unused_batch_hooks
from .tracker import EnergyTracker, find_tracker

__all__ = ["CarbonBudget"]

_UNITS = {"kwh": "kWh", "kg_co2": "kg CO2"}


def _check_budget(name: str, value: float | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{name}={value!r} is not allowed: give a finite number > 0, or None")
    return float(value)


@skip_unused_batch_hooks
class CarbonBudget(Callback):
    """Stops at the end of an epoch when the next epoch would exceed the budget.

    The next epoch's cost is predicted as the mean of the last ``window`` epochs measured by the
    :class:`EnergyTracker`. Rank 0 decides and broadcasts, so every rank stops together. A run resumed with its
    budget already spent stops at once. ``Trainer(min_epochs=...)`` still wins, as for every Lightning stop.

    Args:
        max_kwh: budget of facility energy (kWh, with PUE), all attempts of the run included.
        max_kg_co2: budget of emissions (kg CO2-eq).
        tracker: the tracker to read; default the one in ``Trainer(callbacks=[...])``.
        window: how many of the last epochs the prediction averages.

    Attributes:
        epoch_kwh, epoch_kg_co2: measured cost of each epoch (plain floats, checkpointed).
        stopped_epoch: the epoch after which the budget stopped training (0 if it did not).
        stopping_reason_message: why, or None.
    """

    def __init__(
        self,
        max_kwh: float | None = None,
        max_kg_co2: float | None = None,
        tracker: EnergyTracker | None = None,
        window: int = 3,
    ) -> None:
        super().__init__()
        self.max_kwh = _check_budget("max_kwh", max_kwh)
        self.max_kg_co2 = _check_budget("max_kg_co2", max_kg_co2)
        if self.max_kwh is None and self.max_kg_co2 is None:
            raise ConfigError("CarbonBudget needs max_kwh=... or max_kg_co2=... (both are None)")
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ConfigError(f"window={window!r} is not allowed: give an integer >= 1")
        if tracker is not None and not isinstance(tracker, EnergyTracker):
            raise ConfigError(f"tracker={tracker!r} is not allowed: give an EnergyTracker or None")
        self.tracker = tracker
        self.window = window
        self.epoch_kwh: list[float] = []
        self.epoch_kg_co2: list[float] = []
        self.stopped_epoch = 0
        self.stopping_reason_message: str | None = None
        self._last: dict[str, float] = {}
        self._tracker: EnergyTracker | None = None

    @property
    def state_key(self) -> str:
        return self._generate_state_key(max_kwh=self.max_kwh, max_kg_co2=self.max_kg_co2)

    def _budgets(self) -> dict[str, float]:
        pairs = (("kwh", self.max_kwh), ("kg_co2", self.max_kg_co2))
        return {unit: limit for unit, limit in pairs if limit is not None}

    def setup(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", stage: str) -> None:
        self._tracker = find_tracker(trainer, self.tracker, type(self).__name__)

    def state_dict(self) -> dict[str, Any]:
        return {
            "epoch_kwh": list(self.epoch_kwh),
            "epoch_kg_co2": list(self.epoch_kg_co2),
            "stopped_epoch": self.stopped_epoch,
            "stopping_reason_message": self.stopping_reason_message,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.epoch_kwh = [float(v) for v in state_dict.get("epoch_kwh", [])]
        self.epoch_kg_co2 = [float(v) for v in state_dict.get("epoch_kg_co2", [])]
        self.stopped_epoch = int(state_dict.get("stopped_epoch", 0))
        self.stopping_reason_message = state_dict.get("stopping_reason_message")

    def _spent(self) -> dict[str, float]:
        assert self._tracker is not None
        return {unit: self._tracker.cumulative(unit) for unit in ("kwh", "kg_co2")}

    def on_train_start(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        """After a restore (and the booking of a crashed attempt): stop at once if the budget is spent."""
        if self._tracker is None:
            return
        self._last = self._spent()
        reason = None
        for unit, limit in self._budgets().items():
            if self._last[unit] >= limit:
                reason = f"Carbon budget already spent: {self._last[unit]:.6g} >= {limit:.6g} {_UNITS[unit]}."
                break
        self._stop(trainer, reason)

    def on_train_epoch_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        if self._tracker is None or trainer.sanity_checking:
            return
        self._tracker.settle(trainer, pl_module)
        spent = self._spent()
        self.epoch_kwh.append(spent["kwh"] - self._last.get("kwh", 0.0))
        self.epoch_kg_co2.append(spent["kg_co2"] - self._last.get("kg_co2", 0.0))
        self._last = spent
        self._stop(trainer, self._reason(spent))

    def _reason(self, spent: dict[str, float]) -> str | None:
        """Why the next epoch would not fit the budget, or None."""
        history = {"kwh": self.epoch_kwh, "kg_co2": self.epoch_kg_co2}
        for unit, limit in self._budgets().items():
            recent = history[unit][-self.window :]
            predicted = sum(recent) / len(recent) if recent else 0.0
            if spent[unit] + predicted > limit:
                return (
                    f"Carbon budget: {spent[unit]:.6g} of {limit:.6g} {_UNITS[unit]} spent and the next epoch would"
                    f" need about {predicted:.6g} (mean of the last {len(recent)}). Signaling Trainer to stop."
                )
        return None

    def _stop(self, trainer: "pl.Trainer", reason: str | None) -> None:
        """Apply rank 0's decision on every rank. Collective."""
        reason = broadcast_from_zero(trainer, reason)
        if reason is None:
            return
        trainer.should_stop = True
        self.stopped_epoch = trainer.current_epoch
        self.stopping_reason_message = reason
        rank_zero_info(f"carbon_callbacks: {reason}")
