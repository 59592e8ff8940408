"""``EnergyAwareEarlyStopping``: Lightning's ``EarlyStopping`` plus a rule on metric gained per kWh (or kg CO2).

Everything Lightning's callback does (patience, thresholds, non-finite values, where the check runs, state) is
kept; the energy rule is one more reason to stop. Overrides the private ``_run_early_stopping_check`` of
lightning 2.6 (pinned ``lightning>=2.6,<2.7``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping

from torch import Tensor

import lightning.pytorch as pl
from lightning.pytorch.callbacks import EarlyStopping

from ..analysis.stopping import Decision, EnergyAwareRule, call_decide, companion_metric
from ..analysis.threshold import resolve_threshold
from ..errors import ConfigError
from ._dist import warn_if_foreign_trainer
from ._hooks import skip_unused_batch_hooks
from .tracker import EnergyTracker, find_tracker

__all__ = ["EnergyAwareEarlyStopping"]


@skip_unused_batch_hooks
class EnergyAwareEarlyStopping(EarlyStopping):
    """Stop when the monitored metric stops paying for its energy, or for any reason ``EarlyStopping`` stops.

    Args:
        monitor, min_delta, patience, verbose, mode, strict, check_finite, stopping_threshold,
            divergence_threshold, check_on_train_epoch_end, log_rank_zero_only: as in ``EarlyStopping``
            (``patience`` defaults to 1000: the energy rule decides).
        threshold: metric units gained per kWh (per kg CO2 with ``unit="kg_co2"``) below which an evaluation is
            not worth its energy; or the path of an earlier run, whose suggested threshold is read by the
            analyzer (with the rule settings it was validated with); None: the rule's scale-free default.
        unit: ``kwh`` or ``kg_co2``.
        energy_rule: False turns the energy rule off (then this is ``EarlyStopping`` with another patience).
        rule_kwargs: further keyword arguments of :class:`~carbon_callbacks.analysis.stopping.EnergyAwareRule`.
        rule: any object with ``decide(energy, metric) -> Decision`` to use instead of ``EnergyAwareRule``.
        companion: the logged finer-grained metric that can veto an energy stop (a WER plateau while the CER
            still improves): ``"auto"`` (``val_cer`` for ``val_wer``, when logged), a key, or None.
        tracker: the :class:`EnergyTracker` to read; default the one in ``Trainer(callbacks=[...])``.

    Attributes:
        energy_history: cumulative energy (``unit``) at each check, identical on all ranks.
        metric_history: the monitored value at each check.
        companion_history: the companion's value at each check since it was first logged (NaN before).
        energy_stopped: True when the energy rule stopped training (``stopping_reason`` stays ``NOT_STOPPED``:
            Lightning's enum cannot be extended; ``stopping_reason_message`` says why).
    """

    def __init__(
        self,
        monitor: str,
        min_delta: float = 0.0,
        patience: int = 1000,
        verbose: bool = False,
        mode: str = "min",
        strict: bool = True,
        check_finite: bool = True,
        stopping_threshold: float | None = None,
        divergence_threshold: float | None = None,
        check_on_train_epoch_end: bool | None = None,
        log_rank_zero_only: bool = False,
        threshold: float | str | Path | None = None,
        unit: str = "kwh",
        energy_rule: bool = True,
        rule_kwargs: Mapping[str, Any] | None = None,
        rule: Any = None,
        tracker: EnergyTracker | None = None,
        companion: str | None = "auto",
    ) -> None:
        super().__init__(
            monitor=monitor,
            min_delta=min_delta,
            patience=patience,
            verbose=verbose,
            mode=mode,
            strict=strict,
            check_finite=check_finite,
            stopping_threshold=stopping_threshold,
            divergence_threshold=divergence_threshold,
            check_on_train_epoch_end=check_on_train_epoch_end,
            log_rank_zero_only=log_rank_zero_only,
        )
        if unit not in ("kwh", "kg_co2"):
            raise ConfigError(f"unit={unit!r} is not allowed: use 'kwh' or 'kg_co2'")
        if rule is not None and not callable(getattr(rule, "decide", None)):
            raise ConfigError(f"rule={rule!r} is not allowed: give an object with decide(energy, metric)")
        if companion is not None and (not isinstance(companion, str) or not companion):
            raise ConfigError(f"companion={companion!r} is not allowed: give 'auto', a logged metric name or None")
        if tracker is not None and not isinstance(tracker, EnergyTracker):
            raise ConfigError(f"tracker={tracker!r} is not allowed: give an EnergyTracker or None")
        self.threshold = str(threshold) if isinstance(threshold, Path) else threshold
        self.unit = unit
        self.energy_rule = bool(energy_rule)
        self.rule_kwargs = dict(rule_kwargs or {})
        self.rule = rule
        self.tracker = tracker
        self.companion = companion
        self.threshold_per_unit, suggested_kwargs = resolve_threshold(threshold, unit=unit, metric=monitor, mode=mode)
        self.rule_kwargs = {**suggested_kwargs, **self.rule_kwargs}
        if self.energy_rule:
            self._energy_rule()  # bad rule arguments fail here, not at the first check
        self.energy_history: list[float] = []
        self.metric_history: list[float] = []
        self.companion_history: list[float] = []
        self.energy_stopped = False
        self._tracker: EnergyTracker | None = None

    def _energy_rule(self) -> Any:
        """The rule (built on demand, so the callback holds plain values only and pickles equal)."""
        if self.rule is not None:
            return self.rule
        try:
            return EnergyAwareRule(
                threshold=self.threshold_per_unit, unit=self.unit, mode=self.mode, **self.rule_kwargs
            )
        except TypeError as exc:
            raise ConfigError(f"rule_kwargs={self.rule_kwargs!r} is not allowed for EnergyAwareRule: {exc}") from None

    @property
    def state_key(self) -> str:
        return self._generate_state_key(monitor=self.monitor, mode=self.mode, unit=self.unit, threshold=self.threshold)

    def setup(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        warn_if_foreign_trainer(trainer, type(self).__name__)
        if self.energy_rule:
            self._tracker = find_tracker(trainer, self.tracker, type(self).__name__)

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state.update(
            energy_history=list(self.energy_history),
            metric_history=list(self.metric_history),
            companion_history=list(self.companion_history),
            energy_stopped=self.energy_stopped,
        )
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self.energy_history = [float(v) for v in state_dict.get("energy_history", [])]
        self.metric_history = [float(v) for v in state_dict.get("metric_history", [])]
        self.companion_history = [float(v) for v in state_dict.get("companion_history", [])]
        self.energy_stopped = bool(state_dict.get("energy_stopped", False))

    def on_train_epoch_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        if self._tracker is not None and self._check_on_train_epoch_end and not self._should_skip_check(trainer):
            self._tracker.settle(trainer, pl_module)  # this epoch's energy counts, whatever the callback order
        super().on_train_epoch_end(trainer, pl_module)

    def _run_early_stopping_check(self, trainer: "pl.Trainer") -> None:
        """``EarlyStopping``'s check, with the energy rule consulted when the usual criteria do not stop."""
        logs = trainer.callback_metrics
        if trainer.fast_dev_run or not self._validate_condition_metric(logs):
            return
        current = logs[self.monitor].squeeze()
        should_stop, reason = self._evaluate_stopping_criteria(current)
        energy = self._energy_decision(current, logs)
        if energy is not None and energy.stop and not should_stop:
            should_stop = True
            self.energy_stopped = True
            reason = (
                f"Energy-aware stop on {self.monitor} = {float(current):.4g} after"
                f" {self.energy_history[-1]:.4g} {self.unit}: {energy.reason}. Signaling Trainer to stop."
            )
        should_stop = trainer.strategy.reduce_boolean_decision(should_stop, all=False)  # any rank stops all
        trainer.should_stop = trainer.should_stop or should_stop
        if should_stop:
            self.stopped_epoch = trainer.current_epoch
            self.stopping_reason_message = reason
        if reason and self.verbose:
            self._log_info(trainer, reason, self.log_rank_zero_only)

    def _energy_decision(self, current: Tensor, logs: Mapping[str, Any]) -> Decision | None:
        """Append this check to the histories and ask the rule (None when the rule is off or has no tracker)."""
        if not self.energy_rule or self._tracker is None:
            return None
        self.energy_history.append(self._tracker.cumulative(self.unit))
        self.metric_history.append(_finite(current))
        key = companion_metric(self.monitor, logs) if self.companion == "auto" else self.companion
        if (key is not None and key in logs) or self.companion_history:  # from the first check that logs it
            missing = len(self.metric_history) - 1 - len(self.companion_history)
            self.companion_history.extend([math.nan] * missing)
            self.companion_history.append(_finite(logs[key]) if key is not None and key in logs else math.nan)
        companion = list(self.companion_history) or None
        return call_decide(self._energy_rule(), list(self.energy_history), list(self.metric_history), companion)


def _finite(value: Any) -> float:
    """A logged scalar as a float, NaN when not finite."""
    number = float(value.squeeze()) if isinstance(value, Tensor) else float(value)
    return number if math.isfinite(number) else math.nan
