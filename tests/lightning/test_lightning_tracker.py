"""EnergyTracker on real single-process Trainers: windows, ledger rows, logged keys, checkpoints, inference."""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import cloudpickle
import pandas as pd
import pytest
import torch
from tests.lightning._lt_models import SpeechLikeModel, audio_seconds, make_trainer
from lightning.pytorch.callbacks import ModelCheckpoint

import carbon_callbacks
from carbon_callbacks import ConfigError, ConstantPower, FakeMeter, read_ledger
from carbon_callbacks.lightning import LOGGED_KEYS, EnergyAwareEarlyStopping, EnergyTracker
from carbon_callbacks import report as report_module
from carbon_callbacks.report import try_write_run_report

DEVICE_W, HOST_W, PUE, G_PER_KWH = 30.0, 10.0, 1.5, 500.0


def _tracker(**kwargs) -> EnergyTracker:
    options = dict(meter=ConstantPower(device_w=DEVICE_W, host_w=HOST_W), intensity=G_PER_KWH, pue=PUE, report=False)
    options.update(kwargs)
    return EnergyTracker(**options)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """One 3-epoch fit with checkpoints every epoch, then a test run with audio durations."""
    root = tmp_path_factory.mktemp("fit")
    tracker = _tracker(progress_bar=True, audio_seconds_fn=audio_seconds)
    ckpt = ModelCheckpoint(dirpath=root / "ckpt", save_top_k=-1, filename="{epoch}")
    trainer = make_trainer(root, [tracker, ckpt], enable_checkpointing=True)
    trainer.fit(SpeechLikeModel())
    rows_after_fit = read_ledger(tracker.ledger_dir / "energy.csv")
    tracker.progress_bar_after_fit = dict(trainer.progress_bar_metrics)
    trainer.test(SpeechLikeModel())
    return trainer, tracker, rows_after_fit, root


def test_ledger_has_one_row_per_stage_and_epoch_with_fresh_metrics(fitted):
    trainer, tracker, rows, _ = fitted
    assert [(r.epoch, r.stage) for r in rows] == [
        (0, "sanity"), (0, "train"), (0, "validate"), (1, "train"), (1, "validate"),
        (2, "train"), (2, "validate"), (2, "train"),
    ]
    assert {r.attempt for r in rows} == {1} and {r.status for r in rows} == {"complete"}
    # the WER logged in the module's on_validation_epoch_end is this epoch's, not the previous one
    assert [r.metrics.get("val_wer") for r in rows if r.stage == "validate"] == [50.0, 40.0, 35.0]
    assert all("val_loss" in r.metrics for r in rows if r.stage == "validate")
    assert tracker.ledger_dir == Path(trainer.log_dir)


def test_rows_price_constant_power_exactly(fitted):
    _, _, rows, _ = fitted
    for row in rows:
        assert row.gpu_kwh / row.cpu_kwh == pytest.approx(DEVICE_W / HOST_W, rel=1e-9)
        assert row.energy_kwh == pytest.approx(row.it_energy_kwh * PUE, rel=1e-12)
        assert row.co2_kg == pytest.approx(row.energy_kwh * G_PER_KWH / 1000.0, rel=1e-12)
        assert row.ranks == 1 and row.world_size == 1 and row.gpu_method == "constant"
    joules = sum(r.it_energy_kwh for r in rows) * 3.6e6
    assert joules == pytest.approx((DEVICE_W + HOST_W) * sum(r.duration_s for r in rows), rel=0.05)


def test_totals_equal_the_sum_of_rows(fitted):
    _, tracker, _, root = fitted
    rows = read_ledger(tracker.ledger_dir / "energy.csv")  # after the test run too
    assert tracker.accountant.totals.energy_kwh == pytest.approx(sum(r.energy_kwh for r in rows), rel=1e-12)
    assert tracker.cumulative("kg_co2") == pytest.approx(sum(r.co2_kg for r in rows), rel=1e-12)


def test_energy_is_logged_in_the_same_csv_row_as_val_wer(fitted):
    trainer, tracker, rows, _ = fitted
    frame = pd.read_csv(Path(trainer.log_dir) / "metrics.csv")
    val_rows = frame[frame["val_wer"].notna()].reset_index(drop=True)
    assert len(val_rows) == 3
    for key in LOGGED_KEYS:
        assert val_rows[key].notna().all(), key
    for epoch, logged in val_rows.iterrows():
        index = next(i for i, r in enumerate(rows) if r.epoch == epoch and r.stage == "validate")
        stages = {"train": rows[index - 1], "validate": rows[index]}
        running_wh = sum(r.energy_kwh for r in rows[: index + 1]) * 1000.0
        assert logged["energy/train_wh"] == pytest.approx(stages["train"].energy_kwh * 1000.0, rel=1e-6)
        assert logged["energy/val_wh"] == pytest.approx(stages["validate"].energy_kwh * 1000.0, rel=1e-6)
        assert logged["energy/epoch_wh"] == pytest.approx(logged["energy/train_wh"] + logged["energy/val_wh"], rel=1e-6)
        assert logged["co2/epoch_g"] == pytest.approx(logged["energy/epoch_wh"] * G_PER_KWH / 1000.0, rel=1e-6)
        assert logged["energy/total_wh"] == pytest.approx(running_wh, rel=1e-6)
    assert "energy/total_wh" in tracker.progress_bar_after_fit


def test_each_checkpoint_holds_the_energy_of_its_epoch(fitted):
    _, tracker, rows, root = fitted
    for epoch in range(3):
        ckpt = torch.load(root / "ckpt" / f"epoch={epoch}.ckpt", weights_only=True)
        state = ckpt["callbacks"][tracker.state_key]
        last = max(i for i, r in enumerate(rows) if r.epoch == epoch and r.stage == "validate")
        assert state["accountant"]["rows_written"] == last + 1
        expected = sum(r.energy_kwh for r in rows[: last + 1])
        assert state["accountant"]["totals"]["energy_kwh"] == pytest.approx(expected, rel=1e-12)
        assert state["ledger_dir"] == str(tracker.ledger_dir)


def test_test_run_costs_per_batch_utterance_and_audio_hour(fitted):
    trainer, tracker, _, _ = fitted
    cost = tracker.inference["test"]
    assert cost.batches == 3 and cost.utterances == 12  # batches of 4 examples
    assert cost.audio_s == pytest.approx(2.5 * cost.utterances)
    assert cost.wh_per_batch == pytest.approx(cost.energy_kwh * 1000 / 3)
    assert cost.wh_per_audio_hour == pytest.approx(cost.energy_kwh * 1000 / (cost.audio_s / 3600))
    row = read_ledger(tracker.ledger_dir / "energy.csv")[-1]
    assert (row.stage, row.attempt) == ("test", 1)  # same process: same attempt
    assert row.metrics["utterances"] == 12 and "test_loss" in row.metrics
    assert row.energy_kwh == pytest.approx(cost.energy_kwh, rel=1e-12)
    assert trainer.callback_metrics["energy/test_wh_per_audio_hour"].item() == pytest.approx(cost.wh_per_audio_hour)


def test_predict_run_is_recorded(tmp_path):
    tracker = _tracker()
    trainer = make_trainer(tmp_path, [tracker], limit_predict_batches=2)
    trainer.predict(SpeechLikeModel())
    cost = tracker.inference["predict"]
    assert cost.batches == 2 and cost.audio_s is None and cost.wh_per_audio_hour is None
    (row,) = read_ledger(tracker.ledger_dir / "energy.csv")
    assert row.stage == "predict" and row.metrics["batches"] == 2 and row.metrics["utterances"] == 8


def test_epochs_without_validation_are_closed_at_train_epoch_end(tmp_path):
    tracker = _tracker()
    trainer = make_trainer(tmp_path, [tracker], check_val_every_n_epoch=2, max_epochs=3)
    trainer.fit(SpeechLikeModel())
    rows = read_ledger(tracker.ledger_dir / "energy.csv")
    assert [(r.epoch, r.stage) for r in rows] == [
        (0, "sanity"), (0, "train"), (1, "train"), (1, "validate"), (2, "train"), (2, "train"),
    ]
    assert rows[1].metrics == {} and rows[3].metrics["val_wer"] == 40.0
    frame = pd.read_csv(Path(trainer.log_dir) / "metrics.csv")
    epoch0 = frame[(frame["epoch"] == 0) & frame["energy/train_wh"].notna()]
    assert epoch0["energy/train_wh"].iloc[0] == pytest.approx(rows[1].energy_kwh * 1000, rel=1e-6)


def test_meter_failure_mid_run_warns_once_and_training_continues(tmp_path):
    meter = FakeMeter(joules_per_read={"gpu": 5.0, "cpu": 1.0}, fail_from_read=6)
    tracker = EnergyTracker(meter=meter, intensity=100.0, report=False)
    trainer = make_trainer(tmp_path, [tracker], max_epochs=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(SpeechLikeModel())
    failures = [w for w in caught if "meter failed" in str(w.message)]
    assert len(failures) == 1
    assert trainer.current_epoch == 2
    rows = read_ledger(tracker.ledger_dir / "energy.csv")
    assert "meter failed" in rows[-1].note and rows[-1].estimated
    assert rows[-1].gpu_method.endswith("+extrapolated")


def test_unwritable_ledger_dir_fails_at_setup(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    tracker = _tracker(log_dir=blocker / "ledger")
    trainer = make_trainer(tmp_path, [tracker])
    with pytest.raises(ConfigError, match="ledger directory"):
        trainer.fit(SpeechLikeModel())
    assert trainer.global_step == 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(pue=0.5), "pue"),
        (dict(heartbeat_s=0), "heartbeat_s"),
        (dict(monitor=""), "monitor"),
        (dict(monitor=["val_wer", 3]), "monitor"),
        (dict(audio_seconds_fn="seconds"), "audio_seconds_fn"),
        (dict(meter="nvml"), "meter"),
        (dict(intensity=100.0, country="FRA"), "at most one"),
        (dict(price_per_kwh=-1), "price_per_kwh"),
    ],
)
def test_bad_arguments_fail_in_init(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        _tracker(**kwargs)


def test_tracker_pickles_before_and_after_a_run(fitted):
    _, used, _, _ = fitted
    fresh = _tracker()
    for tracker in (fresh, used):
        for dumps, loads in ((pickle.dumps, pickle.loads), (cloudpickle.dumps, cloudpickle.loads)):
            clone = loads(dumps(tracker))
            assert clone.state_dict() == tracker.state_dict()
            assert clone.state_key == tracker.state_key


def test_report_is_written_through_one_isolated_function(tmp_path, monkeypatch):
    calls = []
    fake = lambda run_dir, metric=None, mode=None: calls.append((Path(run_dir), metric, mode))  # noqa: E731
    monkeypatch.setattr(report_module, "write_run_report", fake)
    tracker = _tracker(report=True)
    stopper = EnergyAwareEarlyStopping("val_wer", mode="min", energy_rule=False)
    trainer = make_trainer(tmp_path, [tracker, stopper], max_epochs=1)
    trainer.fit(SpeechLikeModel())
    assert calls == [(tracker.ledger_dir, "val_wer", "min")]


def test_report_failure_on_the_data_warns_and_does_not_fail_fit(tmp_path, monkeypatch):
    def broken(run_dir, metric=None, mode=None):
        raise carbon_callbacks.ReadError(f"{run_dir}: nothing to read")

    monkeypatch.setattr(report_module, "write_run_report", broken)
    with pytest.warns(RuntimeWarning, match="report"):
        assert try_write_run_report(tmp_path) is False



def test_validate_run_outside_fit_is_an_inference_run(tmp_path):
    tracker = _tracker()
    trainer = make_trainer(tmp_path, [tracker], limit_val_batches=3)
    trainer.validate(SpeechLikeModel())
    cost = tracker.inference["validate"]
    assert cost.batches == 3
    (row,) = read_ledger(tracker.ledger_dir / "energy.csv")
    assert row.stage == "validate" and row.metrics["batches"] == 3 and row.metrics["val_wer"] == 50.0
    assert trainer.callback_metrics["energy/val_wh_per_batch"].item() == pytest.approx(cost.wh_per_batch)
