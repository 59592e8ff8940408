"""``EnergyTracker``: energy windows of a SpeechBrain run, priced into the ledger, saved by SpeechBrain's checkpointer.

Who closes windows (every closing is a point all ranks reach, where the window is SUM-reduced across ranks):

* YAML path (no Python change): :class:`EnergyAwareEpochCounter` ``__next__`` closes the previous epoch's window and
  opens the next; :class:`EnergyTrainLogger` ``log_stats`` closes the epoch window up to now and records it with
  the valid metrics (stage ``epoch``: train and validation together); what runs after ``log_stats`` (checkpoint
  saving) is the stage ``overhead`` row of the same epoch.
* Code path (:func:`with_energy`): the Brain's stage hooks close ``train``, ``validate`` and ``test`` windows.

The checkpoint state is loaded only before training starts in this process, so ``evaluate()`` reloading the best
(older) checkpoint never rewinds the totals.
"""

from __future__ import annotations

import gc
import json
import logging
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any, Mapping

from speechbrain.utils.checkpoints import (
    Checkpointer,
    mark_as_loader,
    mark_as_saver,
    register_checkpoint_hooks,
)

from ..accounting import EnergyAccountant, Totals
from ..carbon import DEFAULT_PUE, Intensity
from ..errors import ConfigError
from ..ledger import LedgerRow
from ..measurement import Measurement
from ..meters.base import Meter
from ._dist import RankInfo, broadcast_from_main, device_sync, rank_info, reduce_measurement
from .records import EpochEnergy, InferenceEnergy, scalar_stats

__all__ = ["EnergyTracker", "MISSING_RECOVERABLE"]

logger = logging.getLogger(__name__)

MISSING_RECOVERABLE = (
    "carbon_callbacks: the EnergyTracker is not among the checkpointer's recoverables, so a resumed run would "
    "restart its energy totals at 0. Add this line under `checkpointer: ... recoverables:` in the hparams YAML:\n"
    "        energy: !ref <energy_tracker>"
)
_STATE_FORMAT = 1


def _epoch_of(stats_meta: Mapping[str, Any], key: str) -> int | None:
    value = stats_meta.get(key)
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


@register_checkpoint_hooks
class EnergyTracker:
    """Energy and CO2 per epoch of a SpeechBrain run; a checkpointer recoverable (add it as ``energy``).

    Args:
        meter: a :class:`~carbon_callbacks.meters.base.Meter` or ``"auto"`` (best available, chosen per rank).
        country / region / intensity: carbon intensity (at most one; world average when none).
        pue: facility PUE (>= 1.0). price_per_kwh: optional price for the cost column.
        output_folder: directory of the ledger (``energy.csv``) and report; default: the directory of the
            :class:`EnergyTrainLogger`'s ``save_file``, else the Brain's ``hparams.output_folder``.
        report: write the analyzer's report and figures there at the end of training (main process).
        heartbeat_s: at most this often, save the open window so a crash loses little accounting.
        run_id: identifies the run across attempts; random by default (restored from checkpoints).
    """

    def __init__(
        self,
        meter: Meter | str = "auto",
        *,
        country: str | None = None,
        region: str | None = None,
        intensity: float | Intensity | str | Path | None = None,
        pue: float = DEFAULT_PUE,
        price_per_kwh: float | None = None,
        output_folder: str | Path | None = None,
        report: bool = True,
        heartbeat_s: float = 60.0,
        run_id: str | None = None,
    ) -> None:
        if not isinstance(report, bool):
            raise ConfigError(f"report={report!r} is not allowed: use true or false")
        self.accountant = EnergyAccountant(
            meter, intensity=intensity, country=country, region=region, pue=pue,
            price_per_kwh=price_per_kwh, run_id=run_id, heartbeat_s=heartbeat_s,
        )
        self.output_folder = None if output_folder is None else Path(output_folder)
        self.report = report
        self.history: dict[int, EpochEnergy] = {}
        self.inference: InferenceEnergy | None = None
        self.stop_reason = ""
        self.monitor: tuple[str | None, str | None] = (None, None)
        self.brain_managed = False
        self._default_folder: Path | None = None
        self._device: str | None = None
        self._info: RankInfo | None = None
        self._phase = "idle"  # idle -> training -> finished
        self._window: tuple[str, int] | None = None
        self._pending: tuple[Measurement, int, dict[str, float]] | None = None
        self._epoch_energy: dict[int, list[float]] = {}
        self._loaded = False
        self._attempt_started = False
        self._warned: set[str] = set()
        self.global_step = 0
        self.utterances = 0
        self.audio_s: float | None = None

    # -- wiring (called by the logger, the counter and the Brain mixin) -----------------------------------
    def set_default_folder(self, folder: str | Path | None) -> None:
        """The ledger directory to use when ``output_folder`` was not given (first caller wins)."""
        if folder is not None and self._default_folder is None:
            self._default_folder = Path(folder)

    def attach_brain(self, device: str | None, output_folder: str | Path | None) -> None:
        """The Brain's stage hooks close the windows from now on (code path)."""
        self.brain_managed = True
        self._device = device
        self.set_default_folder(output_folder)

    def set_monitor(self, metric: str | None, mode: str | None) -> None:
        """The monitored metric (as the ledger names it, e.g. ``valid_WER``) and its mode, for the report."""
        self.monitor = (metric, mode)

    @property
    def totals(self) -> Totals:
        """Running totals of the run (all attempts), identical on every rank."""
        return self.accountant.totals

    @property
    def ledger_dir(self) -> Path | None:
        return self.output_folder or self._default_folder

    @property
    def phase(self) -> str:
        """``idle`` (before training), ``training``, ``finished`` or ``failed``."""
        return self._phase

    # -- windows ----------------------------------------------------------------------------------------
    def _ensure_setup(self) -> RankInfo:
        if self._info is None:
            info = rank_info(self._device)
            directory = self.ledger_dir
            if directory is None and info.is_main:
                self._warn_once("no-dir", "carbon_callbacks: no ledger directory (give output_folder=): energy.csv is not written")
            self.accountant.setup(
                directory=directory, is_writer=info.is_main, host=info.is_local_zero, device=info.device,
                world_size=info.world_size, num_nodes=info.num_nodes, sync=device_sync(info.device),
            )
            self._info = info
        return self._info

    def _open(self, name: str, epoch: int) -> None:
        self._ensure_setup()
        if self._window is not None:  # a standby window nobody closed: it is not part of any stage
            self.accountant.end(self._window[0])
        self.accountant.begin(name)
        self._window = (name, int(epoch))

    def _close(self, stage: str | None = None, reduce: bool = True) -> tuple[Measurement, int] | None:
        """End the open window (every rank), SUM it across ranks; None when no window is open."""
        if self._window is None:
            return None
        name, epoch = self._window
        self._window = None
        m = self.accountant.end(name)
        if stage is not None and stage != m.stage:
            m = replace(m, stage=stage)
        return (reduce_measurement(m) if reduce else m), epoch

    def _record(self, m: Measurement, epoch: int, metrics: Mapping[str, float]) -> LedgerRow:
        metrics = dict(metrics)
        if m.stage == "test":
            probe = self.accountant.make_row(m, epoch=epoch)
            self.inference = InferenceEnergy(
                probe.energy_kwh, probe.co2_kg, probe.duration_s, m.ranks,
                self.utterances if self.brain_managed else None, self.audio_s,
            )
            metrics.update(self.inference.as_metrics())
        try:
            row = self.accountant.record(m, epoch=epoch, metrics=metrics, global_step=self.global_step)
        except OSError as exc:  # totals are already updated; only the ledger line is lost
            self._warn_once("ledger-write", f"carbon_callbacks: cannot append to the energy ledger ({exc}); training continues")
            row = self.accountant.make_row(m, epoch=epoch, metrics=metrics, global_step=self.global_step)
        if m.stage != "test":
            acc = self._epoch_energy.setdefault(epoch, [0.0, 0.0])
            acc[0] += row.energy_kwh
            acc[1] += row.co2_kg
        return row

    def _close_and_record(
        self,
        metrics: Mapping[str, float] | None = None,
        stage: str | None = None,
        epoch: int | None = None,
        then_open: tuple[str, int] | None = None,
    ) -> LedgerRow | None:
        """Close, reduce, open ``then_open`` (right after the collective, so all ranks' windows line up; the
        ledger write of rank 0 falls in the new window), then record."""
        closed = self._close(stage)
        if then_open is not None:
            self._open(*then_open)
        if closed is None:
            return None
        m, window_epoch = closed
        return self._record(m, window_epoch if epoch is None else epoch, metrics or {})

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            warnings.warn(message, UserWarning, stacklevel=3)

    # -- attempts ---------------------------------------------------------------------------------------
    def _begin_attempt(self) -> None:
        """Number the attempt and book what a crashed one left (rank 0 reads the ledger), then share rank 0's state."""
        if self._attempt_started:
            return
        info = self._ensure_setup()
        self._attempt_started = True
        aborted = self.accountant.start_attempt()
        if aborted is not None and info.is_main:
            logger.info("carbon_callbacks: booked %.3g kWh of a crashed attempt (epoch %d)", aborted.energy_kwh, aborted.epoch)
        state = broadcast_from_main(self.accountant.state_dict())
        self.accountant.load_state_dict(state)

    def _start_training(self, resumed_epoch: int) -> None:
        """First boundary of ``fit()`` (all ranks; checkpoints are restored by now)."""
        if self._phase != "idle":
            return
        if self._window is not None:  # the standby test window opened by the loader: not inference
            self.accountant.end(self._window[0])
            self._window = None
        self._begin_attempt()
        self._phase = "training"
        info = self._ensure_setup()
        if not info.is_main:
            return
        if resumed_epoch > 0 and not self._loaded:
            self._warn_once(
                "pre-tracker",
                f"carbon_callbacks: resumed at epoch {resumed_epoch} from a checkpoint without energy state (saved "
                f"before the EnergyTracker existed, or without it among the recoverables): energy is counted from "
                f"epoch {resumed_epoch + 1} on; the totals exclude epochs 1-{resumed_epoch}",
            )
        elif self._loaded:
            logger.info("carbon_callbacks: resumed run %s, attempt %d, %.6g kWh so far",
                        self.accountant.run_id, self.accountant.attempt, self.totals.energy_kwh)
        if not self.brain_managed:
            self._check_registered()

    def _check_registered(self) -> None:
        checkpointers = [o for o in gc.get_objects() if issubclass(type(o), Checkpointer)]
        if checkpointers and not any(any(v is self for v in c.recoverables.values()) for c in checkpointers):
            self._warn_once("missing-recoverable", MISSING_RECOVERABLE)

    # -- YAML path: epoch boundaries -------------------------------------------------------------------
    def close_epoch(self, finished_epoch: int) -> None:
        """At the epoch counter's ``__next__`` (all ranks): close and record the previous epoch's last window."""
        if self._phase == "idle":
            self._start_training(finished_epoch)
            return
        if self._phase != "training" or self.brain_managed:
            return
        self._close_and_record()

    def open_epoch(self, epoch: int) -> None:
        """Open the window of ``epoch`` (YAML path; the Brain's hooks do it on the code path)."""
        if self._phase == "training" and not self.brain_managed:
            self._open("epoch", epoch)

    def finish_training(self, reduce: bool = True) -> None:
        """End of ``fit()`` (all ranks): record the last window; main process writes the report.

        ``reduce=False`` (an exception ends ``fit``): no collective; the open window is saved for the next attempt.
        """
        if self._phase != "training":
            return
        if not reduce:
            self._phase = "failed"
            if self._window is not None:
                self.accountant.heartbeat(self._window[0], self._window[1], self.global_step, force=True)
            return
        self._close_and_record(stage="overhead" if self.brain_managed else None)
        self._phase = "finished"
        info = self._ensure_setup()
        if info.is_main and self.report and self.ledger_dir is not None:
            from ..report import try_write_run_report  # the analyzer's edge, loaded only when a report is due

            try_write_run_report(self.ledger_dir, metric=self.monitor[0], mode=self.monitor[1])
        self._open("test", -1)  # standby: a following evaluate() is inference energy

    # -- the train logger ---------------------------------------------------------------------------------
    def on_log_stats(
        self,
        stats_meta: Mapping[str, Any],
        train_stats: Mapping[str, Any] | None = None,
        valid_stats: Mapping[str, Any] | None = None,
        test_stats: Mapping[str, Any] | None = None,
    ) -> dict[str, float]:
        """Close/record what ``log_stats`` ends (every rank calls it); the energy keys for ``stats_meta``."""
        if test_stats is not None and train_stats is None and valid_stats is None:
            return self._log_test(stats_meta, scalar_stats("test", test_stats))
        metrics = {**scalar_stats("train", train_stats), **scalar_stats("valid", valid_stats)}
        epoch = _epoch_of(stats_meta, "epoch")
        if self.brain_managed:
            if self._pending is not None:
                m, pending_epoch, base = self._pending
                self._pending = None
                epoch = pending_epoch if epoch is None else epoch
                self._record(m, epoch, {**base, **metrics})
        elif self._phase == "idle":
            epoch = 1 if epoch is None else epoch
            self._start_training(epoch - 1)
            self._warn_once("no-counter", "carbon_callbacks: EnergyTrainLogger without EnergyAwareEpochCounter: "
                            f"epoch {epoch}'s energy was not measured (use the counter as epoch_counter)")
            self._open("overhead", epoch)
        else:
            epoch = epoch if epoch is not None else (self._window[1] if self._window else 0)
            self._close_and_record(metrics, stage="epoch", epoch=epoch, then_open=("overhead", epoch))
        if epoch is None:
            epoch = max(self.history, default=0)
        return self._epoch_summary(epoch, metrics)

    def _epoch_summary(self, epoch: int, metrics: Mapping[str, float]) -> dict[str, float]:
        kwh, co2 = self._epoch_energy.get(epoch, [0.0, 0.0])
        old = self.history.get(epoch)
        merged = {**(old.metrics if old else {}), **metrics}
        entry = EpochEnergy(epoch, kwh, co2, self.totals.energy_kwh, self.totals.co2_kg, merged)
        self.history[epoch] = entry
        return {
            "energy_kWh": float(kwh),
            "CO2_kg": float(co2),
            "total_energy_kWh": float(entry.total_kwh),
            "total_CO2_kg": float(entry.total_co2_kg),
        }

    def _log_test(self, stats_meta: Mapping[str, Any], metrics: dict[str, float]) -> dict[str, float]:
        epoch = _epoch_of(stats_meta, "Epoch loaded")
        epoch = -1 if epoch is None else epoch
        row: LedgerRow | None = None
        if self.brain_managed and self._pending is not None:
            m, _, base = self._pending
            self._pending = None
            row = self._record(m, epoch, {**base, **metrics})
        elif not self.brain_managed:
            self._begin_attempt()
            if self._phase == "training":  # fit() left without a last __next__: the open window ends here
                self._phase = "finished"
            row = self._close_and_record(metrics, stage="test", epoch=epoch, then_open=("test", -1))
            if row is None:
                self._warn_once("no-test-window", "carbon_callbacks: no test window was open; test energy not measured")
        out = {"total_energy_kWh": float(self.totals.energy_kwh), "total_CO2_kg": float(self.totals.co2_kg)}
        if row is not None:
            out = {"energy_kWh": float(row.energy_kwh), "CO2_kg": float(row.co2_kg), **out}
        return out

    # -- code path: Brain stage hooks ------------------------------------------------------------------
    def stage_start(self, stage: str, epoch: int | None) -> None:
        """``on_stage_start`` (all ranks)."""
        if stage == "train":
            epoch = int(epoch or 1)
            if self._phase == "idle":
                self._start_training(epoch - 1)
            elif self._phase == "training":
                # what ran since the previous epoch's last stage
                self._close_and_record(stage="overhead", then_open=("train", epoch))
            if self._window is None or self._window[0] != "train":
                self._open("train", epoch)
        elif stage == "validate":
            if self._window is None or self._window[0] != "validate":  # else: opened when training ended
                self._open("validate", int(epoch or 0))
        elif stage == "test":
            if self._phase == "training":
                self.finish_training()
            self._begin_attempt()
            self.utterances = 0
            self._open("test", -1)

    def stage_end(self, stage: str, epoch: int | None, loss: float | None) -> None:
        """``on_stage_end`` before the recipe's own (all ranks): close and reduce the stage's window."""
        if self._window is None or self._window[0] != stage:
            return
        closed = self._close()
        assert closed is not None
        m, window_epoch = closed
        prefix = {"train": "train", "validate": "valid"}.get(stage, stage)
        base = scalar_stats(prefix, {"loss": loss}) if loss is not None else {}
        if stage == "train":
            self._open("validate", window_epoch)  # windows stay contiguous: the recipe's hook counts too
            self._record(m, window_epoch, base)
            return
        if stage == "validate" and self._phase == "training":
            self._open("overhead", window_epoch)  # the recipe's hook (log, checkpoint) is the epoch's overhead
        self._pending = (m, window_epoch, base)

    def after_stage_end(self, stage: str, epoch: int | None) -> None:
        """After the recipe's ``on_stage_end`` (all ranks): record what its ``log_stats`` did not."""
        del stage, epoch
        if self._pending is not None:
            m, pending_epoch, base = self._pending
            self._pending = None
            self._record(m, pending_epoch, base)

    def heartbeat(self) -> None:
        """Cheap; call often (per batch): saves the open window at most every ``heartbeat_s`` (writer rank)."""
        if self._window is not None:
            self.accountant.heartbeat(self._window[0], self._window[1], self.global_step)

    # -- checkpoint hooks -------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Plain values: accountant state, per-epoch history, stop reason."""
        return {
            "format": _STATE_FORMAT,
            "accountant": self.accountant.state_dict(),
            "history": [self.history[e].to_dict() for e in sorted(self.history)],
            "stop_reason": self.stop_reason,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a checkpointed state (before training starts)."""
        self.accountant.load_state_dict(state.get("accountant", {}))
        self.history = {int(d["epoch"]): EpochEnergy.from_dict(d) for d in state.get("history", [])}
        self.stop_reason = str(state.get("stop_reason", ""))
        self._loaded = True

    @mark_as_saver
    def _save(self, path: Path) -> None:
        """Main process only (SpeechBrain wraps savers); no collectives. Also saves the open window for recovery."""
        Path(path).write_text(json.dumps(self.state_dict(), sort_keys=True), encoding="utf-8")
        if self._window is not None and self._info is not None:
            self.accountant.heartbeat(self._window[0], self._window[1], self.global_step, force=True)

    @mark_as_loader
    def _recover(self, path: Path, end_of_epoch: bool = True) -> None:
        """Load only before training starts in this process: ``evaluate()`` reloading an older best checkpoint
        never rewinds the totals. Opens the standby test window (``evaluate()`` starts right after)."""
        del end_of_epoch
        if self._phase == "idle":
            try:
                state = json.loads(Path(path).read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                self._warn_once("bad-ckpt", f"carbon_callbacks: energy state {path} unreadable ({exc}); counting from 0")
            else:
                self.load_state_dict(state)
        else:
            logger.debug("carbon_callbacks: kept the in-memory energy totals over %s", path)
        if self._phase in ("idle", "finished"):
            self._open("test", -1)
