"""Code path: ``with_energy(ASR)`` gives a Brain whose stage hooks meter train, validation and test separately.

The mixin comes FIRST in the MRO because recipe hooks (``ASR.on_stage_end``) never call ``super()``: its
accounting runs, then the recipe's hook (which logs and saves the checkpoint, so the checkpoint holds the epoch).
"""

from __future__ import annotations

import logging
import math
from typing import Any

import speechbrain as sb
import torch

from ..errors import ConfigError
from .logger import EnergyTrainLogger
from .tracker import EnergyTracker

__all__ = ["EnergyBrainMixin", "with_energy"]

logger = logging.getLogger(__name__)

_STAGES = {sb.Stage.TRAIN: "train", sb.Stage.VALID: "validate", sb.Stage.TEST: "test"}


def _batch_size(batch: Any) -> int:
    """Utterances in a batch: ``PaddedBatch.batchsize``, else the first tensor's first dimension."""
    size = getattr(batch, "batchsize", None)
    if isinstance(size, int):
        return size
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0]) if batch.dim() else 1
    if isinstance(batch, (list, tuple)) and batch:
        return _batch_size(batch[0])
    if isinstance(batch, dict) and batch:
        return _batch_size(next(iter(batch.values())))
    return 0


def _loss(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError, RuntimeError):
        return None
    return number if math.isfinite(number) else None


class EnergyBrainMixin:
    """Energy accounting in a Brain's hooks. Use :func:`with_energy` rather than subclassing by hand.

    The tracker is, in order: the one given to ``with_energy``, ``hparams["energy_tracker"]``, the tracker of an
    :class:`EnergyTrainLogger` in ``hparams["train_logger"]``, or a new ``EnergyTracker(**tracker_kwargs)``.
    It is registered as the optional recoverable ``energy`` (checkpoints saved without it still load), and a plain
    ``hparams["train_logger"]`` is wrapped in an ``EnergyTrainLogger`` so each line carries the epoch's energy.
    """

    _energy_tracker_arg: EnergyTracker | None = None
    _energy_tracker_kwargs: dict[str, Any] = {}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.energy_tracker = self._resolve_energy_tracker()
        hparams = getattr(self, "hparams", None)
        self.energy_tracker.attach_brain(str(self.device), getattr(hparams, "output_folder", None))
        self._register_energy_recoverable()
        if hparams is not None:
            train_logger = getattr(hparams, "train_logger", None)
            if train_logger is not None and not isinstance(train_logger, EnergyTrainLogger):
                hparams.train_logger = EnergyTrainLogger(tracker=self.energy_tracker, logger=train_logger)

    def _resolve_energy_tracker(self) -> EnergyTracker:
        if self._energy_tracker_arg is not None:
            return self._energy_tracker_arg
        hparams = getattr(self, "hparams", None)
        found = getattr(hparams, "energy_tracker", None)
        if found is None and isinstance(getattr(hparams, "train_logger", None), EnergyTrainLogger):
            found = hparams.train_logger.tracker
        if found is not None:
            if not isinstance(found, EnergyTracker):
                raise ConfigError(f"hparams energy_tracker={found!r} is not allowed: give an EnergyTracker")
            return found
        return EnergyTracker(**self._energy_tracker_kwargs)

    def _register_energy_recoverable(self) -> None:
        checkpointer = getattr(self, "checkpointer", None)
        if checkpointer is None:
            return
        names = [name for name, obj in checkpointer.recoverables.items() if obj is self.energy_tracker]
        for name in names:  # listed in the YAML: make it optional, so older checkpoints still load
            checkpointer.optional_recoverables[name] = True
        if not names:
            name = "energy" if "energy" not in checkpointer.recoverables else "energy_tracker"
            checkpointer.add_recoverable(name, self.energy_tracker, optional_load=True)

    # -- hooks (all ranks) --------------------------------------------------------------------------------
    def on_stage_start(self, stage: sb.Stage, epoch: int | None = None) -> Any:
        self.energy_tracker.stage_start(_STAGES[stage], epoch)
        return super().on_stage_start(stage, epoch)  # type: ignore[misc]

    def on_stage_end(self, stage: sb.Stage, stage_loss: Any, epoch: int | None = None) -> Any:
        name = _STAGES[stage]
        self.energy_tracker.global_step = int(getattr(self, "optimizer_step", 0) or 0)
        self.energy_tracker.stage_end(name, epoch, _loss(stage_loss))
        result = super().on_stage_end(stage, stage_loss, epoch)  # type: ignore[misc]
        self.energy_tracker.after_stage_end(name, epoch)
        return result

    def on_fit_batch_end(self, batch: Any, outputs: Any, loss: Any, should_step: bool) -> Any:
        self.energy_tracker.heartbeat()
        return super().on_fit_batch_end(batch, outputs, loss, should_step)  # type: ignore[misc]

    def evaluate_batch(self, batch: Any, stage: sb.Stage) -> Any:
        if stage == sb.Stage.TEST:
            self.energy_tracker.utterances += _batch_size(batch)
        return super().evaluate_batch(batch, stage)  # type: ignore[misc]

    def fit(self, epoch_counter: Any, *args: Any, **kwargs: Any) -> Any:
        """``Brain.fit``, then the last window and the report (SpeechBrain has no ``on_fit_end``)."""
        ok = False
        try:
            result = super().fit(epoch_counter, *args, **kwargs)  # type: ignore[misc]
            ok = True
            return result
        finally:
            self.energy_tracker.finish_training(reduce=ok)

    def evaluate(self, test_set: Any, *args: Any, audio_seconds: float | None = None, **kwargs: Any) -> Any:
        """``Brain.evaluate``; the inference energy (per utterance, per hour of audio when ``audio_seconds`` is
        given) is then in ``self.energy_tracker.inference`` and on the ledger's ``test`` row."""
        if audio_seconds is not None and not (isinstance(audio_seconds, (int, float)) and audio_seconds > 0):
            raise ConfigError(f"audio_seconds={audio_seconds!r} is not allowed: give the seconds of audio (> 0)")
        self.energy_tracker.audio_s = None if audio_seconds is None else float(audio_seconds)
        result = super().evaluate(test_set, *args, **kwargs)  # type: ignore[misc]
        inference = self.energy_tracker.inference
        if inference is not None and sb.utils.distributed.if_main_process():
            per_utt = inference.kwh_per_utterance
            logger.info("carbon_callbacks: inference %.4g kWh over %s utterances (%s kWh/utterance, %d ranks)",
                        inference.energy_kwh, inference.utterances, "n/a" if per_utt is None else f"{per_utt:.3g}",
                        inference.ranks)
        return result


def with_energy(brain_class: type, tracker: EnergyTracker | None = None, **tracker_kwargs: Any) -> type:
    """``brain_class`` with :class:`EnergyBrainMixin` first in its MRO (``class EnergyASR(EnergyBrainMixin, ASR)``).

    Args:
        brain_class: a ``speechbrain.Brain`` subclass (the recipe's).
        tracker: the tracker to use; or give ``EnergyTracker`` keyword arguments instead.
    """
    if not (isinstance(brain_class, type) and issubclass(brain_class, sb.Brain)):
        raise ConfigError(f"brain_class={brain_class!r} is not allowed: give a speechbrain.Brain subclass")
    if issubclass(brain_class, EnergyBrainMixin):
        raise ConfigError(f"{brain_class.__name__} already has energy accounting")
    if tracker is not None and not isinstance(tracker, EnergyTracker):
        raise ConfigError(f"tracker={tracker!r} is not allowed: give an EnergyTracker or None")
    if tracker is not None and tracker_kwargs:
        raise ConfigError(f"give tracker= or EnergyTracker arguments, not both (got {sorted(tracker_kwargs)})")
    if tracker_kwargs:
        EnergyTracker(**tracker_kwargs)  # validate now, not at the first epoch
    namespace = {
        "_energy_tracker_arg": tracker,
        "_energy_tracker_kwargs": dict(tracker_kwargs),
        "__module__": brain_class.__module__,
        "__doc__": brain_class.__doc__,
    }
    return type(f"Energy{brain_class.__name__}", (EnergyBrainMixin, brain_class), namespace)
