"""``EnergyTracker``: energy and CO2 of every epoch stage, logged next to the validation metrics and kept in a
full-precision ledger (``energy.csv``) beside the logs. All arithmetic lives in
:class:`~carbon_callbacks.accounting.EnergyAccountant`; this class only wires Lightning hooks to it.
"""

from __future__ import annotations

import logging
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities.rank_zero import rank_zero_info

from ..accounting import EnergyAccountant
from ..carbon import DEFAULT_PUE, Intensity
from ..errors import ConfigError
from ..ledger import LedgerRow
from ..measurement import Measurement
from ..meters.base import Meter
from ._dist import (
    all_sum,
    batch_size_of,
    broadcast_from_zero,
    device_sync,
    is_evaluating_outside_fit,
    warn_if_foreign_trainer,
)
from ._hooks import arm_hook, skip_unused_batch_hooks
from .inference import InferenceCost

__all__ = ["EnergyTracker", "LOGGED_KEYS", "find_tracker"]

log = logging.getLogger(__name__)

#: Keys logged through ``pl_module.log`` (Wh and g: Lightning logs float32).
LOGGED_KEYS = ("energy/train_wh", "energy/val_wh", "energy/epoch_wh", "co2/epoch_g", "energy/total_wh", "co2/total_g")
_OWN_PREFIXES = ("energy/", "co2/")
_SHORT = {"validate": "val", "test": "test", "predict": "predict"}
_METRIC_PREFIXES = {"validate": ("val", "valid"), "test": ("test",), "predict": ()}
_Pending = tuple[Measurement, LedgerRow]


def _check_monitor(monitor: str | Sequence[str] | None) -> tuple[str, ...] | None:
    if monitor is None:
        return None
    keys = (monitor,) if isinstance(monitor, str) else tuple(monitor)
    if not keys or not all(isinstance(k, str) and k for k in keys):
        raise ConfigError(f"monitor={monitor!r} is not allowed: give a metric name, a list of names, or None")
    return keys


@skip_unused_batch_hooks
class EnergyTracker(Callback):
    """Meters each epoch's train and validation stages, sanity checks and inference runs; logs and records them.

    Args:
        meter: a :class:`~carbon_callbacks.meters.base.Meter` or ``"auto"`` (best available, chosen at setup).
        country, region, intensity: the carbon-intensity source (at most one; world average when none).
        pue: facility power usage effectiveness (>= 1.0).
        price_per_kwh: optional price of facility energy for the ledger's ``cost`` column.
        log_dir: ledger directory; default ``trainer.log_dir`` (on resume: the directory of the restored run).
        monitor: metric names copied into each ledger row; default all ``val*`` metrics (``test*`` in tests).
        progress_bar: show ``energy/total_wh`` on the progress bar.
        report: at the end of ``fit``, write the analyzer's report and figures beside the ledger.
        heartbeat_s: seconds between saves of the open window, so a crash loses at most this much accounting.
            The clock is checked at every training step only in epochs that can last that long: the first of
            a run, and any that follows an epoch longer than half of it (shorter epochs write their rows first).
        audio_seconds_fn: ``batch -> seconds of audio`` for the energy per hour of audio of inference runs
            (a module-level function, so that the callback pickles).
        run_id: identifies the run in the ledger across attempts (a random one by default; restored on resume).
    """

    def __init__(
        self,
        meter: Meter | str = "auto",
        country: str | None = None,
        region: str | None = None,
        intensity: float | Intensity | str | Path | None = None,
        pue: float = DEFAULT_PUE,
        price_per_kwh: float | None = None,
        log_dir: str | Path | None = None,
        monitor: str | Sequence[str] | None = None,
        progress_bar: bool = False,
        report: bool = True,
        heartbeat_s: float = 60.0,
        audio_seconds_fn: Callable[[Any], float] | None = None,
        run_id: str | None = None,
    ) -> None:
        super().__init__()
        self.accountant = EnergyAccountant(
            meter,
            intensity=intensity,
            country=country,
            region=region,
            pue=pue,
            price_per_kwh=price_per_kwh,
            run_id=run_id,
            heartbeat_s=heartbeat_s,
        )
        if audio_seconds_fn is not None and not callable(audio_seconds_fn):
            raise ConfigError(f"audio_seconds_fn={audio_seconds_fn!r} is not allowed: give a function or None")
        self.log_dir = None if log_dir is None else Path(log_dir)
        self.monitor = _check_monitor(monitor)
        self.progress_bar = bool(progress_bar)
        self.report = bool(report)
        self.audio_seconds_fn = audio_seconds_fn
        self.inference: dict[str, InferenceCost] = {}
        self._directory: Path | None = None
        self._restored_dir: str | None = None
        self._attempt_started = False  # one attempt per process, until a restore or a crash
        self._state_key = self._generate_state_key(ledger="energy.csv")
        self._reset_run()

    def _reset_run(self) -> None:
        self._ready = False
        self._crashed = False
        self._epoch = 0
        self._val_flushed = False
        self._epoch_settled = True
        self._epoch_t0: float | None = None  # monotonic start of the last training epoch of this run
        self._train_piece: Measurement | None = None
        self._pending: list[_Pending] = []
        self._counts = [0.0, 0.0, 0.0]  # batches, utterances, audio seconds of the inference run
        self._inference_pending: tuple[Measurement, InferenceCost] | None = None
        self._heartbeat_failed = False

    @property
    def state_key(self) -> str:
        return self._state_key  # Lightning reads it at every hook call: built once in __init__

    @property
    def ledger_dir(self) -> Path | None:
        """Where the ledger is written (known after ``setup``)."""
        return self._directory

    # -- totals for other callbacks ----------------------------------------------------------------------
    def cumulative(self, unit: str = "kwh") -> float:
        """Facility energy (``kwh``) or emissions (``kg_co2``) so far, identical on all ranks.

        Includes every closed window, also those measured but not yet written (their row is written at
        ``on_validation_end``, with the metrics).
        """
        attr = {"kwh": "energy_kwh", "kg_co2": "co2_kg"}.get(unit)
        if attr is None:
            raise ConfigError(f"unit={unit!r} is not allowed: use 'kwh' or 'kg_co2'")
        return float(getattr(self.accountant.totals, attr) + sum(getattr(r, attr) for _, r in self._pending))

    def settle(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        """Close this training epoch's accounting now, if no validation closed it already. Collective.

        Called by the tracker's own ``on_train_epoch_end`` and by callbacks that read :meth:`cumulative` there,
        whatever their order in ``Trainer(callbacks=...)``. Runs once per epoch.
        """
        if self._epoch_settled or not self._ready:
            return
        self._epoch_settled = True
        if self._val_flushed or not self.accountant.is_open("train"):
            return
        parts = self._reduce(trainer, pl_module, {"train": self.accountant.end("train")})
        self.accountant.begin("train")
        for m, row in parts.values():
            self.accountant.record(m, epoch=row.epoch, global_step=row.global_step)
        self._log(pl_module, parts)  # after recording: the totals include this epoch

    # -- setup, state, attempts ----------------------------------------------------------------------------
    def setup(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", stage: str) -> None:
        self._reset_run()
        arm_hook(self, EnergyTracker, "on_validation_batch_end", stage == "validate")  # batches of validate runs
        warn_if_foreign_trainer(trainer, type(self).__name__)
        found = trainer.log_dir  # a collective under DDP: read it on every rank
        directory = self.log_dir or Path(found or trainer.default_root_dir)
        self._configure(trainer, pl_module, directory)

    def _configure(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", directory: Path) -> None:
        """Create the meter on every rank and the ledger writer on global rank 0; ConfigError on all ranks."""
        options = dict(
            directory=directory,
            host=trainer.local_rank == 0,
            device=str(pl_module.device),
            world_size=trainer.world_size,
            num_nodes=trainer.num_nodes,
            sync=device_sync(pl_module.device),
        )
        error = None
        try:
            self.accountant.setup(is_writer=trainer.is_global_zero, **options)
        except ConfigError as exc:
            error = str(exc)
        if all_sum(trainer, pl_module, [1.0 if error else 0.0])[0] > 0:  # every rank raises, none hangs
            raise ConfigError(broadcast_from_zero(trainer, error) or error or "EnergyTracker failed on another rank")
        self._directory = directory
        self._ready = True

    def state_dict(self) -> dict[str, Any]:
        return {
            "accountant": self.accountant.state_dict(),
            "ledger_dir": str(self._directory) if self._directory is not None else "",
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.accountant.load_state_dict(state_dict.get("accountant", {}))
        self._restored_dir = state_dict.get("ledger_dir") or None
        self._attempt_started = False

    def on_fit_start(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        self._follow_restored_ledger(trainer, pl_module)
        self._start_attempt(trainer)

    def _follow_restored_ledger(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        """On resume without an explicit ``log_dir``, keep writing the restored run's ledger (one per run)."""
        restored, self._restored_dir = self._restored_dir, None
        if self.log_dir is not None or restored is None:
            return
        target = Path(restored)
        follow = broadcast_from_zero(trainer, target != self._directory and target.is_dir())
        if follow:
            self._configure(trainer, pl_module, target)

    def _start_attempt(self, trainer: "pl.Trainer") -> None:
        """Number the attempt and book what a crashed one left; rank 0 reads the ledger, all ranks agree.

        A new attempt starts with the first run of this callback object, after a checkpoint restore and after
        a crash; ``trainer.test`` after ``trainer.fit`` in the same process belongs to the same attempt.
        """
        if self._attempt_started or not self._ready:
            return
        self._attempt_started = True
        error, aborted = None, None
        try:
            aborted = self.accountant.start_attempt()
        except ConfigError as exc:
            error = str(exc)
        error, state = broadcast_from_zero(trainer, (error, self.accountant.state_dict()))
        if error:
            raise ConfigError(error)
        self.accountant.load_state_dict(state)
        if aborted is not None:
            rank_zero_info(
                f"carbon_callbacks: booked {aborted.energy_kwh:.6g} kWh of attempt {aborted.attempt}'s last window"
                f" (epoch {aborted.epoch}, cut short by a crash) in {self._directory}"
            )

    # -- fit: sanity check, train, validation -------------------------------------------------------------
    def on_sanity_check_start(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        if self._ready:
            self.accountant.begin("sanity")

    def on_sanity_check_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        if not self.accountant.is_open("sanity"):
            return
        # written at on_train_start: the restored epoch is not known yet during the sanity check
        self._pending.extend(self._reduce(trainer, pl_module, {"sanity": self.accountant.end("sanity")}).values())

    def on_train_start(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        self._epoch = trainer.current_epoch
        pending, self._pending = self._pending, []
        for m, row in pending:
            self.accountant.record(m, epoch=self._epoch, global_step=trainer.global_step)
        if self._ready and not self.accountant.is_open("train"):
            self.accountant.begin("train")

    def on_train_epoch_start(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        self._epoch = trainer.current_epoch
        self._val_flushed = False
        self._epoch_settled = False
        if self._ready and not self.accountant.is_open("train"):
            self.accountant.begin("train")
        self._arm_heartbeat()

    def _arm_heartbeat(self) -> None:
        """Dispatch the per-step heartbeat check only in epochs where a save can fall due (writer rank)."""
        now = time.monotonic()
        last_epoch_s = None if self._epoch_t0 is None else now - self._epoch_t0
        self._epoch_t0 = now
        due = self._ready and self.accountant.heartbeat_can_fall_due(last_epoch_s)
        arm_hook(self, EnergyTracker, "on_train_batch_end", due)

    def on_train_batch_end(
        self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self.accountant.heartbeat_due():  # at every step: a clock comparison, before any trainer property
            self._heartbeat(trainer)

    def _heartbeat(self, trainer: "pl.Trainer", force: bool = False) -> None:
        try:
            self.accountant.heartbeat("train", trainer.current_epoch, trainer.global_step, force=force)
        except OSError as exc:
            if not self._heartbeat_failed:
                self._heartbeat_failed = True
                warnings.warn(f"carbon_callbacks: cannot save the open window ({exc}); training continues")

    def on_validation_start(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        if trainer.sanity_checking or not self._ready:
            return
        if is_evaluating_outside_fit(trainer):
            self._inference_start(trainer, "validate")
            return
        if self.accountant.is_open("train"):
            self._train_piece = self.accountant.end("train")
        self.accountant.begin("validate")

    def on_validation_epoch_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        if trainer.sanity_checking or not self._ready:
            return
        if is_evaluating_outside_fit(trainer):
            self._inference_end(trainer, pl_module, "validate")
            return
        validate = self.accountant.end("validate") if self.accountant.is_open("validate") else None
        parts = {"train": self._train_piece, "validate": validate}
        self._train_piece = None
        reduced = self._reduce(trainer, pl_module, {k: m for k, m in parts.items() if m is not None})
        self._pending.extend(reduced.values())
        self._val_flushed = True
        self.accountant.begin("train")
        self._log(pl_module, reduced)

    def on_validation_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        """Write the validation's rows with the epoch's fresh metrics, before any checkpoint of this epoch."""
        if trainer.sanity_checking or not self._ready:
            return
        if is_evaluating_outside_fit(trainer):
            self._inference_record(trainer, "validate")
            return
        metrics = self._metrics(trainer, _METRIC_PREFIXES["validate"])
        pending, self._pending = self._pending, []
        for k, (m, row) in enumerate(pending, 1):
            last = k == len(pending)  # one fsync for the epoch's rows
            self.accountant.record(m, epoch=row.epoch, metrics=metrics, global_step=row.global_step, sync=last)

    def on_train_epoch_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        self.settle(trainer, pl_module)

    def on_train_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        """Book the tail of training (after the last validation: last checkpoint, teardown of the loop)."""
        if not self.accountant.is_open("train"):
            return
        parts = self._reduce(trainer, pl_module, {"train": self.accountant.end("train")})
        for m, row in parts.values():
            self.accountant.record(m, epoch=self._epoch, global_step=row.global_step)

    def on_fit_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        if self.report and trainer.is_global_zero and self._directory is not None:
            from ..report import try_write_run_report  # the analyzer's edge, loaded only when a report is due

            metric, mode = _stopping_metric(trainer)
            try_write_run_report(self._directory, metric=metric, mode=mode)

    # -- inference: validate / test / predict runs -------------------------------------------------------
    def on_test_start(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        self._inference_start(trainer, "test")

    def on_test_batch_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", outputs: Any, batch: Any,
                          batch_idx: int, dataloader_idx: int = 0) -> None:
        self._count(batch)

    def on_test_epoch_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        self._inference_end(trainer, pl_module, "test")

    def on_test_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        self._inference_record(trainer, "test")

    def on_validation_batch_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", outputs: Any,
                                batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        if not trainer.sanity_checking and is_evaluating_outside_fit(trainer):  # a subclass may call it in fit
            self._count(batch)

    def on_predict_start(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        self._inference_start(trainer, "predict")

    def on_predict_batch_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", outputs: Any,
                             batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._count(batch)

    def on_predict_epoch_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        self._inference_end(trainer, pl_module, "predict", log_values=False)

    def on_predict_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        self._inference_record(trainer, "predict")

    def _inference_start(self, trainer: "pl.Trainer", stage: str) -> None:
        if not self._ready:
            return
        self._start_attempt(trainer)
        self._counts = [0.0, 0.0, 0.0]
        self.accountant.begin(stage)

    def _count(self, batch: Any) -> None:
        self._counts[0] += 1
        self._counts[1] += batch_size_of(batch)
        if self.audio_seconds_fn is not None:
            self._counts[2] += float(self.audio_seconds_fn(batch))

    def _inference_end(
        self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", stage: str, log_values: bool = True
    ) -> None:
        if not self.accountant.is_open(stage):
            return
        m = self.accountant.end(stage)
        vector = m.to_vector()
        summed = all_sum(trainer, pl_module, vector + self._counts)
        reduced = m.with_reduced(summed[: len(vector)])
        batches, utterances, audio_s = summed[len(vector) :]
        row = self.accountant.make_row(reduced, epoch=trainer.current_epoch, global_step=trainer.global_step)
        cost = InferenceCost(
            stage, row.energy_kwh, row.co2_kg, int(batches), int(utterances),
            audio_s if self.audio_seconds_fn is not None else None,
        )
        self.inference[stage] = cost
        self._inference_pending = (reduced, cost)
        if log_values:
            short = _SHORT[stage]
            values = {f"energy/{short}_wh": cost.energy_kwh * 1000.0, f"co2/{short}_g": cost.co2_kg * 1000.0}
            values.update({f"energy/{short}_{k}": v for k, v in cost.as_metrics().items() if k.startswith("wh_")})
            self._log_values(pl_module, values)

    def _inference_record(self, trainer: "pl.Trainer", stage: str) -> None:
        if self._inference_pending is None:
            return
        (m, cost), self._inference_pending = self._inference_pending, None
        metrics = {**self._metrics(trainer, _METRIC_PREFIXES[stage]), **cost.as_metrics()}
        self.accountant.record(m, epoch=trainer.current_epoch, metrics=metrics, global_step=trainer.global_step)

    # -- failure and teardown ----------------------------------------------------------------------------
    def on_exception(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", exception: BaseException) -> None:
        """Save the open window for the next attempt (no collective: other ranks may be gone)."""
        self._crashed = True
        self._attempt_started = False
        if self._ready:
            self._heartbeat(trainer, force=True)

    def teardown(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", stage: str) -> None:
        if not self._ready:
            return
        self._ready = False
        if self._crashed:
            self.accountant.recorder.close()  # keep the open-window file for the next attempt
        else:
            self.accountant.close()

    # -- helpers -------------------------------------------------------------------------------------------
    def _reduce(
        self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", parts: Mapping[str, Measurement]
    ) -> dict[str, _Pending]:
        """SUM-reduce this rank's measurements across ranks (one collective) and price them. Collective."""
        if not parts:
            return {}
        vectors = [m.to_vector() for m in parts.values()]
        size = len(vectors[0])
        summed = all_sum(trainer, pl_module, [x for v in vectors for x in v])
        out = {}
        for i, (stage, m) in enumerate(parts.items()):
            reduced = m.with_reduced(summed[i * size : (i + 1) * size])
            row = self.accountant.make_row(reduced, epoch=self._epoch, global_step=trainer.global_step)
            out[stage] = (reduced, row)
        return out

    def _log(self, pl_module: "pl.LightningModule", parts: Mapping[str, _Pending]) -> None:
        """Log this flush's stages and the running totals (in Wh and g) through ``pl_module.log``.

        ``parts`` must already count in :meth:`cumulative` (recorded, or pending).
        """
        rows = {stage: row for stage, (_, row) in parts.items()}
        values: dict[str, float] = {}
        if "train" in rows:
            values["energy/train_wh"] = rows["train"].energy_kwh * 1000.0
        if "validate" in rows:
            values["energy/val_wh"] = rows["validate"].energy_kwh * 1000.0
        values["energy/epoch_wh"] = sum(r.energy_kwh for r in rows.values()) * 1000.0
        values["co2/epoch_g"] = sum(r.co2_kg for r in rows.values()) * 1000.0
        values["energy/total_wh"] = self.cumulative("kwh") * 1000.0
        values["co2/total_g"] = self.cumulative("kg_co2") * 1000.0
        self._log_values(pl_module, values)

    def _log_values(self, pl_module: "pl.LightningModule", values: Mapping[str, float]) -> None:
        dtype = torch.float32 if pl_module.device.type == "mps" else torch.float64  # MPS has no float64
        for key, value in values.items():
            pl_module.log(
                key,
                torch.tensor(float(value), dtype=dtype, device=pl_module.device),
                on_step=False,
                on_epoch=True,
                prog_bar=self.progress_bar and key == "energy/total_wh",
                sync_dist=True,
                reduce_fx="max",  # identical on all ranks already: max keeps the value and avoids a warning
            )

    def _metrics(self, trainer: "pl.Trainer", prefixes: tuple[str, ...]) -> dict[str, float]:
        """The monitored metrics found in ``trainer.callback_metrics`` (scalars only)."""
        logs = trainer.callback_metrics
        if self.monitor is not None:
            keys = [k for k in self.monitor if k in logs]
        else:
            keys = [k for k in logs if prefixes and k.startswith(prefixes) and not k.startswith(_OWN_PREFIXES)]
        out = {}
        for key in keys:
            value = logs[key]
            if isinstance(value, torch.Tensor) and value.numel() == 1:
                out[key] = float(value)
            elif isinstance(value, (int, float)):
                out[key] = float(value)
        return out


def _stopping_metric(trainer: "pl.Trainer") -> tuple[str | None, str | None]:
    """The metric and mode of the first early-stopping callback, for the report (None, None without one)."""
    callback = trainer.early_stopping_callback
    if callback is None:
        return None, None
    return callback.monitor, callback.mode


def find_tracker(trainer: "pl.Trainer", given: EnergyTracker | None, who: str) -> EnergyTracker:
    """The :class:`EnergyTracker` that ``who`` reads: ``given`` (which must be in the trainer) or the first one.

    Raises:
        ConfigError: no tracker in ``Trainer(callbacks=[...])``, or ``given`` is not one of them.
    """
    trackers = [c for c in trainer.callbacks if isinstance(c, EnergyTracker)]
    if given is not None:
        if not any(c is given for c in trackers):
            raise ConfigError(f"{who}(tracker=...) is not in Trainer(callbacks=[...]): add that EnergyTracker there")
        return given
    if not trackers:
        raise ConfigError(
            f"{who} needs an EnergyTracker: use Trainer(callbacks=[EnergyTracker(...), {who}(...)])"
        )
    return trackers[0]
