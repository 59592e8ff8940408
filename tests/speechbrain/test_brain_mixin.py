"""Code path: with_energy(Brain) splits train/validate/test, wraps the train logger, registers the recoverable."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import speechbrain as sb

from carbon_callbacks.errors import ConfigError
from carbon_callbacks.ledger import read_ledger
from carbon_callbacks.meters import ConstantPower
from carbon_callbacks.speechbrain import EnergyBrainMixin, EnergyTracker, EnergyTrainLogger, with_energy
from tests.speechbrain import tiny_recipe as tr


def _energy_brain(**kwargs: Any) -> type:
    return with_energy(tr.TinyASR, meter=ConstantPower(100.0, 50.0), intensity=300.0, report=False, **kwargs)


def test_code_path_splits_stages_and_reports_inference_energy(tmp_path: Path) -> None:
    hparams = tr.load(tr.hparams_yaml(tmp_path, energy=False), {"number_of_epochs": 2})
    brain_class = _energy_brain()
    assert brain_class.__mro__[1] is EnergyBrainMixin and brain_class.__mro__[2] is tr.TinyASR
    brain = tr.run(hparams, brain_class=brain_class, audio_seconds=36.0)
    tracker: EnergyTracker = brain.energy_tracker

    assert isinstance(hparams["train_logger"], sb.utils.train_logger.FileTrainLogger)
    assert isinstance(brain.hparams.train_logger, EnergyTrainLogger)
    assert brain.checkpointer.recoverables["energy"] is tracker
    assert brain.checkpointer.optional_recoverables["energy"] is True

    rows = read_ledger(tmp_path / "out" / "energy.csv")
    assert [(r.epoch, r.stage) for r in rows] == [
        (1, "train"), (1, "validate"), (1, "overhead"), (2, "train"), (2, "validate"), (2, "overhead"), (1, "test"),
    ]
    assert [r.global_step for r in rows[:6]] == [4, 4, 4, 8, 8, 8]
    assert "valid_WER" in rows[1].metrics and "valid_WER" not in rows[0].metrics
    for row in rows:
        assert row.gpu_kwh == pytest.approx(2 * row.cpu_kwh, rel=1e-9)
        assert row.co2_kg == pytest.approx(row.energy_kwh * 0.3, rel=1e-12)

    lines = (tmp_path / "out" / "train_log.txt").read_text().splitlines()
    for epoch, line in enumerate(lines[:2], start=1):
        logged = float(re.search(r"energy_kWh: ([-+0-9.e]+)", line).group(1))
        train, validate = rows[3 * (epoch - 1)], rows[3 * (epoch - 1) + 1]
        assert logged == pytest.approx(train.energy_kwh + validate.energy_kwh, rel=0.01)
        assert "valid WER" in line

    test_row = rows[-1]
    inference = tracker.inference
    assert inference is not None and inference.utterances == 12 and inference.audio_s == 36.0
    assert inference.energy_kwh == test_row.energy_kwh
    assert inference.kwh_per_utterance == pytest.approx(test_row.energy_kwh / 12)
    assert inference.kwh_per_audio_hour == pytest.approx(test_row.energy_kwh / 0.01)
    assert test_row.metrics["utterances"] == 12.0 and "test_WER" in test_row.metrics
    assert tracker.totals.by_stage_kwh["validate"] == pytest.approx(rows[1].energy_kwh + rows[4].energy_kwh)


@pytest.mark.filterwarnings("ignore:Trying to load checkpoint:UserWarning")
def test_code_path_resumes_a_checkpoint_saved_before_the_tracker(tmp_path: Path) -> None:
    path = tr.hparams_yaml(tmp_path, energy=False)
    tr.run(tr.load(path, {"number_of_epochs": 1}), evaluate=False)
    hparams = tr.load(path, {"number_of_epochs": 2})
    with pytest.warns(UserWarning, match="resumed at epoch 1 from a checkpoint without energy state"):
        tr.run(hparams, brain_class=_energy_brain(), evaluate=False)
    rows = read_ledger(tmp_path / "out" / "energy.csv")
    assert [(r.epoch, r.stage) for r in rows] == [(2, "train"), (2, "validate"), (2, "overhead")]


def test_exception_in_fit_saves_the_open_window_without_collectives(tmp_path: Path) -> None:
    class Exploding(tr.TinyASR):
        def on_fit_batch_end(self, batch: Any, outputs: Any, loss: Any, should_step: bool) -> None:
            if self.current_epoch == 2:
                raise RuntimeError("boom")

    hparams = tr.load(tr.hparams_yaml(tmp_path, energy=False), {"number_of_epochs": 3})
    tracker = EnergyTracker(ConstantPower(10.0, 5.0), intensity=100.0, report=False)
    with pytest.raises(RuntimeError, match="boom"):
        tr.run(hparams, brain_class=with_energy(Exploding, tracker=tracker), evaluate=False)
    assert tracker.phase == "failed"
    assert (tmp_path / "out" / "energy.open.json").exists()
    resumed = tr.load(tr.hparams_yaml(tmp_path, energy=False), {"number_of_epochs": 2})
    again = EnergyTracker(ConstantPower(10.0, 5.0), intensity=100.0, report=False)
    tr.run(resumed, brain_class=with_energy(tr.TinyASR, tracker=again), evaluate=False)
    rows = read_ledger(tmp_path / "out" / "energy.csv")
    assert [(r.attempt, r.epoch, r.stage, r.status) for r in rows if r.epoch == 2][:2] == [
        (1, 2, "train", "aborted"), (2, 2, "train", "complete"),
    ]


def test_with_energy_rejects_bad_input() -> None:
    with pytest.raises(ConfigError, match="speechbrain.Brain subclass"):
        with_energy(dict)
    tracker = EnergyTracker(ConstantPower(1.0), intensity=1.0, report=False)
    with pytest.raises(ConfigError, match="not both"):
        with_energy(tr.TinyASR, tracker=tracker, pue=1.2)
    with pytest.raises(ConfigError, match="already has energy accounting"):
        with_energy(with_energy(tr.TinyASR, tracker=tracker))
    with pytest.raises(ConfigError, match="pue"):
        with_energy(tr.TinyASR, pue=0.5)
    with pytest.raises(ConfigError, match="report="):
        EnergyTracker(ConstantPower(1.0), intensity=1.0, report="yes")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="save_file= .* or logger="):
        EnergyTrainLogger(tracker=tracker)
    with pytest.raises(ConfigError, match="EnergyTracker"):
        EnergyTrainLogger(save_file="log.txt", tracker=None)
