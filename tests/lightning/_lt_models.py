"""Small Lightning modules and a Trainer factory shared by the tests of carbon_callbacks.lightning.

Module-level (not inside tests) so that ``ddp_spawn`` and subprocesses can import them.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any, Sequence

from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.demos.boring_classes import BoringModel, RandomDataset
from torch.utils.data import DataLoader
from lightning.pytorch.loggers import CSVLogger

KILL_ENV = "CARBON_CALLBACKS_TEST_KILL_AT"  # "epoch:batch": SIGKILL this process in that training step


class SpeechLikeModel(BoringModel):
    """A BoringModel that logs like an ASR module: ``val_loss`` per step, ``val_wer`` per epoch.

    Args:
        wers: ``val_wer`` of epoch i (the last value repeats).
        sleep_s: seconds slept in each training step (longer windows, steadier ratios).
    """

    def __init__(self, wers: Sequence[float] = (50.0, 40.0, 35.0, 34.0), sleep_s: float = 0.0) -> None:
        super().__init__()
        self.wers = [float(w) for w in wers]
        self.sleep_s = sleep_s

    def training_step(self, batch: Any, batch_idx: int) -> Any:
        if os.environ.get(KILL_ENV) == f"{self.current_epoch}:{batch_idx}":
            os.kill(os.getpid(), signal.SIGKILL)
        if self.sleep_s:
            time.sleep(self.sleep_s)
        return super().training_step(batch, batch_idx)

    def validation_step(self, batch: Any, batch_idx: int) -> Any:
        out = super().validation_step(batch, batch_idx)
        self.log("val_loss", out["x"], sync_dist=True)
        return out

    def on_validation_epoch_end(self) -> None:
        self.log("val_wer", self.wers[min(self.current_epoch, len(self.wers) - 1)], sync_dist=True)

    def test_dataloader(self) -> DataLoader:
        return DataLoader(RandomDataset(32, 64), batch_size=4)

    def predict_dataloader(self) -> DataLoader:
        return DataLoader(RandomDataset(32, 64), batch_size=4)

    def test_step(self, batch: Any, batch_idx: int) -> Any:
        out = super().test_step(batch, batch_idx)
        self.log("test_loss", out["y"])
        return out


def make_trainer(root: Path, callbacks: list, **overrides: Any) -> Trainer:
    """A small CPU Trainer logging to ``root/logs`` with a CSVLogger."""
    options: dict[str, Any] = dict(
        default_root_dir=root,
        logger=CSVLogger(root, name="logs"),
        callbacks=callbacks,
        max_epochs=3,
        limit_train_batches=4,
        limit_val_batches=2,
        limit_test_batches=3,
        num_sanity_val_steps=1,
        accelerator="cpu",
        devices=1,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    options.update(overrides)
    return Trainer(**options)


def audio_seconds(batch: Any) -> float:
    """Pretend every example is 2.5 s of audio."""
    return 2.5 * len(batch)


class RankProbe(Callback):
    """Writes what each rank's energy callbacks hold at the end of training to ``root/probe_<rank>.json``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def on_train_end(self, trainer: Trainer, pl_module: Any) -> None:
        from carbon_callbacks.lightning import CarbonBudget, EnergyAwareEarlyStopping, EnergyTracker

        found = {type(c).__name__: c for c in trainer.callbacks}
        tracker: EnergyTracker = found["EnergyTracker"]
        stopper: EnergyAwareEarlyStopping | None = found.get("EnergyAwareEarlyStopping")
        budget: CarbonBudget | None = found.get("CarbonBudget")
        payload = {
            "rank": trainer.global_rank,
            "cumulative_kwh": tracker.cumulative("kwh"),
            "attempt": tracker.accountant.attempt,
            "energy_history": stopper.energy_history if stopper else None,
            "epoch_kwh": budget.epoch_kwh if budget else None,
        }
        (self.root / f"probe_{trainer.global_rank}.json").write_text(json.dumps(payload))


class TickClock:
    """A clock that advances ``step_s`` seconds per call: meter energy then depends on reads, not on time."""

    def __init__(self, step_s: float = 1.0) -> None:
        self.step_s = step_s
        self.now_s = 0.0

    def __call__(self) -> float:
        self.now_s += self.step_s
        return self.now_s
