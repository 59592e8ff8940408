"""``EnergyAwareEpochCounter``: SpeechBrain's ``EpochCounter`` that also stops on an energy-aware rule or budget.

``__next__`` is reached by every rank between epochs: it closes the previous epoch's energy window (a SUM across
ranks), decides on rank 0 and broadcasts the decision, so every rank leaves ``fit()`` after the same epoch.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any, Sequence

from speechbrain.utils.checkpoints import mark_as_loader, mark_as_saver, register_checkpoint_hooks
from speechbrain.utils.distributed import if_main_process
from speechbrain.utils.epoch_loop import EpochCounter

from ..analysis.stopping import EnergyAwareRule, call_decide, companion_metric
from ..analysis.threshold import resolve_threshold
from ..errors import ConfigError
from ._dist import broadcast_from_main
from .records import EpochEnergy
from .tracker import EnergyTracker

__all__ = ["EnergyAwareEpochCounter", "infer_metric"]

logger = logging.getLogger(__name__)

#: Validation stats preferred as the monitored metric, in order, when ``metric=None``.
PREFERRED_METRICS: tuple[str, ...] = ("WER", "CER", "PER", "EER", "error_rate", "ErrorRate", "error", "loss")
_RECENT_EPOCHS = 3


def infer_metric(metrics: Sequence[str]) -> str | None:
    """The validation metric to monitor among logged names (``valid_WER`` -> ``WER``); None if none is logged."""
    valid = [name[len("valid_"):] for name in metrics if name.startswith("valid_")]
    for wanted in PREFERRED_METRICS:
        for name in valid:
            if name.lower() == wanted.lower():
                return name
    return valid[0] if valid else None


def _build_rule(rule: Any, threshold: float | None, unit: str, mode: str, rule_kwargs: dict[str, Any]) -> Any:
    if rule is None or rule == "none":
        return None
    if rule == "energy":
        try:
            return EnergyAwareRule(threshold, unit=unit, mode=mode, **rule_kwargs)
        except TypeError as exc:
            raise ConfigError(f"EnergyAwareRule does not take {sorted(rule_kwargs)}: {exc}") from None
    if callable(getattr(rule, "decide", None)):
        return rule
    raise ConfigError(f"rule={rule!r} is not allowed: use 'energy', 'none', or an object with decide()")


def _budget(name: str, value: float | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or math.isinf(value):
        raise ConfigError(f"{name}={value!r} is not allowed: give a finite number > 0, or null")
    return float(value)


@register_checkpoint_hooks
class EnergyAwareEpochCounter(EpochCounter):
    """Drop-in for ``speechbrain.utils.epoch_loop.EpochCounter`` with energy-aware stopping.

    Args:
        limit: maximum number of epochs (as ``EpochCounter``).
        tracker: the run's :class:`EnergyTracker`.
        threshold: the rule's exchange rate (metric units per kWh, or per kg CO2), a file holding it, or None
            (the rule's scale-free default).
        unit: ``kwh`` or ``kg_co2``, for the rule.
        max_kwh / max_kg_co2: budgets; training stops before an epoch predicted (mean of the last measured
            epochs) to cross one, and at once when one is already crossed (e.g. on resume).
        metric: validation stat to monitor (``WER``, ``EER``...); None: inferred from ``valid_stats``.
        mode: ``min`` or ``max``.
        rule: ``energy`` (:class:`~carbon_callbacks.analysis.stopping.EnergyAwareRule`), ``none`` (budgets
            only), or any object with ``decide(energy, metric)``.
        companion: the finer-grained stat that can veto an energy stop (a WER plateau while the CER still
            improves): ``"auto"`` (``valid_CER`` for ``valid_WER``, when logged), a stat name, or None.
        **rule_kwargs: passed to ``EnergyAwareRule``.
    """

    def __init__(
        self,
        limit: int,
        tracker: EnergyTracker,
        threshold: float | str | Path | None = None,
        unit: str = "kwh",
        max_kwh: float | None = None,
        max_kg_co2: float | None = None,
        metric: str | None = None,
        mode: str = "min",
        rule: Any = "energy",
        companion: str | None = "auto",
        **rule_kwargs: Any,
    ) -> None:
        super().__init__(limit)
        if not isinstance(tracker, EnergyTracker):
            raise ConfigError(f"tracker={tracker!r} is not allowed: give the run's EnergyTracker (!ref <energy_tracker>)")
        if unit not in ("kwh", "kg_co2"):
            raise ConfigError(f"unit={unit!r} is not allowed: use 'kwh' or 'kg_co2'")
        if mode not in ("min", "max"):
            raise ConfigError(f"mode={mode!r} is not allowed: use 'min' or 'max'")
        if companion is not None and (not isinstance(companion, str) or not companion):
            raise ConfigError(f"companion={companion!r} is not allowed: give 'auto', a stat name or None")
        self.tracker = tracker
        self.unit, self.mode, self.metric, self.companion = unit, mode, metric, companion
        self.max_kwh = _budget("max_kwh", max_kwh)
        self.max_kg_co2 = _budget("max_kg_co2", max_kg_co2)
        self.threshold, suggested_kwargs = resolve_threshold(threshold, unit=unit, metric=metric, mode=mode)
        self.rule = _build_rule(rule, self.threshold, unit, mode, {**suggested_kwargs, **rule_kwargs})
        self.stop_reason = ""
        self._saved_history: dict[int, EpochEnergy] = {}
        if metric is not None:
            tracker.set_monitor(self._metric_key_for(metric), mode)

    # -- iteration ------------------------------------------------------------------------------------
    def __next__(self) -> int:
        self.tracker.close_epoch(self.current)
        hist = self.history()
        if hist:
            self._metric_key(hist)  # names the monitored metric for the report, rule or not
        if self.current >= self.limit:
            self._finish("")
            raise StopIteration
        reason = broadcast_from_main(self.decide() if if_main_process() else "")
        if reason:
            self._finish(reason)
            raise StopIteration
        self.current += 1
        logger.info("Going into epoch %d", self.current)
        self.tracker.open_epoch(self.current)
        return self.current

    def _finish(self, reason: str) -> None:
        if reason and reason != self.stop_reason and if_main_process():
            logger.warning("carbon_callbacks: stopping after epoch %d: %s", self.current, reason)
        if reason:
            self.stop_reason = reason
            self.tracker.stop_reason = reason
        self.tracker.finish_training()

    # -- the decision ----------------------------------------------------------------------------------
    def history(self) -> list[EpochEnergy]:
        """Epochs done so far (the tracker's records win over this counter's checkpointed copy)."""
        merged = {**self._saved_history, **self.tracker.history}
        return [merged[e] for e in sorted(merged) if e <= self.current]

    def decide(self) -> str:
        """Why to stop now (empty: go on), from the budgets then the rule. Pure given the history and totals."""
        hist = self.history()
        key = self._metric_key(hist) if hist else None
        reason = self._budget_reason(hist)
        if reason or self.rule is None or key is None:
            return reason
        energy = [h.total_kwh if self.unit == "kwh" else h.total_co2_kg for h in hist]
        values = [h.metrics.get(key, math.nan) for h in hist]
        partner = self._companion_key(key, hist)
        companion = None if partner is None else [h.metrics.get(partner, math.nan) for h in hist]
        decision = call_decide(self.rule, energy, values, companion)
        if not decision.stop:
            return ""
        return f"{key}: {decision.reason or 'the energy-aware rule says the next epoch is not worth its cost'}"

    def _budget_reason(self, hist: list[EpochEnergy]) -> str:
        totals = self.tracker.totals
        checks = (
            ("kWh", "max_kwh", self.max_kwh, totals.energy_kwh, [h.energy_kwh for h in hist]),
            ("kg CO2", "max_kg_co2", self.max_kg_co2, totals.co2_kg, [h.co2_kg for h in hist]),
        )
        for label, name, budget, used, costs in checks:
            if budget is None:
                continue
            if used >= budget:
                return f"energy budget reached: {used:.4g} {label} used, {name}={budget:g}"
            recent = [c for c in costs if c > 0][-_RECENT_EPOCHS:]
            if recent:
                next_cost = sum(recent) / len(recent)
                if used + next_cost > budget:
                    return (f"energy budget: one more epoch (about {next_cost:.3g} {label}, mean of the last "
                            f"{len(recent)}) would exceed {name}={budget:g} ({used:.4g} {label} used)")
        return ""

    def _companion_key(self, key: str, hist: list[EpochEnergy]) -> str | None:
        names = {k for h in hist for k in h.metrics}
        if self.companion == "auto":
            return companion_metric(key, names)
        if self.companion is None:
            return None
        named = self._metric_key_for(self.companion)
        return named if named in names else None

    @staticmethod
    def _metric_key_for(metric: str) -> str:
        return metric if metric.startswith(("valid_", "train_", "test_")) else f"valid_{metric}"

    def _metric_key(self, hist: list[EpochEnergy]) -> str | None:
        names = [k for h in hist for k in h.metrics]
        if self.metric is not None:
            key = self._metric_key_for(self.metric)
            return key if key in names or self.metric not in names else self.metric
        inferred = infer_metric(names)
        if inferred is None:
            return None
        key = f"valid_{inferred}"
        self.tracker.set_monitor(key, self.mode)
        return key

    # -- checkpoint hooks ------------------------------------------------------------------------------
    @mark_as_saver
    def _save(self, path: Path) -> None:
        payload = {
            "current": self.current,
            "stop_reason": self.stop_reason,
            "history": [h.to_dict() for h in self.history()],
        }
        Path(path).write_text(json.dumps(payload, sort_keys=True), encoding="utf-8")

    @mark_as_loader
    def _recover(self, path: Path, end_of_epoch: bool = True) -> None:
        """Also reads a plain ``EpochCounter`` checkpoint (the epoch number alone)."""
        text = Path(path).read_text(encoding="utf-8")
        data: Any = json.loads(text)
        if isinstance(data, dict):
            saved = int(data["current"])
            self.stop_reason = self.stop_reason or str(data.get("stop_reason", ""))
            self._saved_history = {int(d["epoch"]): EpochEnergy.from_dict(d) for d in data.get("history", [])}
        else:
            saved = int(data)
        self.current = saved if end_of_epoch else saved - 1
