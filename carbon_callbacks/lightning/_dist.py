"""Collectives and small helpers shared by the Lightning callbacks.

Every function here that talks to other ranks must be called on every rank at the same hook.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

import torch

import lightning.pytorch as pl
from lightning.pytorch.utilities.data import extract_batch_size
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from lightning.pytorch.utilities.rank_zero import rank_zero_warn

__all__ = [
    "all_sum",
    "broadcast_from_zero",
    "batch_size_of",
    "device_sync",
    "is_evaluating_outside_fit",
    "warn_if_foreign_trainer",
]


def all_sum(trainer: "pl.Trainer", pl_module: "pl.LightningModule", values: Sequence[float]) -> list[float]:
    """SUM all-reduce of a float64 vector on the module's device (identity with one process). Collective."""
    if trainer.world_size <= 1:
        return [float(v) for v in values]
    tensor = torch.tensor([float(v) for v in values], dtype=torch.float64, device=pl_module.device)
    reduced = trainer.strategy.reduce(tensor, reduce_op="sum")
    return [float(v) for v in reduced.cpu().tolist()]


def broadcast_from_zero(trainer: "pl.Trainer", obj: Any) -> Any:
    """Global rank 0's ``obj`` on every rank (identity with one process). Collective."""
    if trainer.world_size <= 1:
        return obj
    return trainer.strategy.broadcast(obj, src=0)


def batch_size_of(batch: Any) -> int:
    """Utterances in a batch: the leading size of its first tensor, as Lightning infers it (1 if none)."""
    try:
        return int(extract_batch_size(batch))
    except (MisconfigurationException, RecursionError, TypeError):
        return 1


def device_sync(device: torch.device) -> Callable[[], None] | None:
    """A picklable function that waits for queued work on ``device`` (None for CPU devices)."""
    if device.type == "cuda":
        return functools.partial(torch.cuda.synchronize, device)
    return None


def is_evaluating_outside_fit(trainer: "pl.Trainer") -> bool:
    """True during ``trainer.validate/test/predict`` (not the validation loop inside ``fit``)."""
    from lightning.pytorch.trainer.states import TrainerFn

    return trainer.state.fn != TrainerFn.FITTING


def warn_if_foreign_trainer(trainer: Any, who: str) -> None:
    """Warn when a ``pytorch_lightning`` Trainer runs a callback of the ``lightning.pytorch`` namespace.

    Such a Trainer calls the hooks (duck typing), but does not recognise the callback's base classes: an
    ``EarlyStopping`` subclass is neither found by ``trainer.early_stopping_callback`` nor ordered after the
    LightningModule's epoch-end hooks.
    """
    if not isinstance(trainer, pl.Trainer):
        rank_zero_warn(
            f"{who} is a lightning.pytorch callback run by a {type(trainer).__module__}.Trainer: only"
            " lightning.pytorch is supported (import Trainer from lightning.pytorch)",
            category=UserWarning,
        )
