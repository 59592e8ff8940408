"""EnergyAwareEarlyStopping: Lightning's EarlyStopping behaviours (ported from Lightning's own test suite, with the
energy rule off and on) and the energy rule's wiring."""

from __future__ import annotations

import copy
import math
import pickle
from unittest import mock

import cloudpickle
import pytest
import torch
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from lightning.pytorch.callbacks.early_stopping import EarlyStoppingReason
from lightning.pytorch.demos.boring_classes import BoringModel
from lightning.pytorch.utilities.exceptions import MisconfigurationException

from carbon_callbacks import ConfigError, ConstantPower, read_ledger
from carbon_callbacks.analysis.stopping import Decision
from carbon_callbacks.lightning import EnergyAwareEarlyStopping, EnergyTracker
from tests.lightning._lt_models import SpeechLikeModel, make_trainer

ES = EnergyAwareEarlyStopping


def _tracker() -> EnergyTracker:
    return EnergyTracker(meter=ConstantPower(device_w=30.0, host_w=10.0), intensity=400.0, report=False)


class RecordingRule:
    """A rule that records what it is given and stops at its ``stop_at``-th call (never by default)."""

    def __init__(self, stop_at: int | None = None) -> None:
        self.stop_at = stop_at
        self.calls: list[tuple[list[float], list[float]]] = []

    def decide(self, energy, metric) -> Decision:
        self.calls.append((list(energy), list(metric)))
        stop = len(self.calls) == self.stop_at
        return Decision(stop, "recorded stop" if stop else "continue")


class ValuesModel(BoringModel):
    """Logs ``values[current_epoch]`` as ``key`` in the module's validation (or train) epoch end."""

    def __init__(self, values, key: str = "val_loss", on_train: bool = False) -> None:
        super().__init__()
        self.values, self.key, self.on_train = list(values), key, on_train

    def _log_value(self) -> None:
        value = self.values[min(self.current_epoch, len(self.values) - 1)]
        self.log(self.key, torch.tensor(float(value)))

    def on_validation_epoch_end(self) -> None:
        if not self.on_train:
            self._log_value()

    def on_train_epoch_end(self) -> None:
        if self.on_train:
            self._log_value()


def _callbacks(stopper: ES, energy: bool) -> list:
    return [_tracker(), stopper] if energy else [stopper]


def _stopper(energy: bool, **kwargs) -> tuple[ES, RecordingRule | None]:
    rule = RecordingRule() if energy else None
    return ES(energy_rule=energy, rule=rule, **kwargs), rule


# --------------------------------------------------------------------------------------------------------------
# Lightning's EarlyStopping behaviours


def test_is_an_early_stopping_and_state_key_names_the_energy_settings():
    stopper = ES(monitor="val_loss")
    assert isinstance(stopper, EarlyStopping)
    expected = "EnergyAwareEarlyStopping{'monitor': 'val_loss', 'mode': 'min', 'unit': 'kwh', 'threshold': None}"
    assert stopper.state_key == expected
    assert ES(monitor="val_loss", threshold=2.0, unit="kg_co2").state_key != stopper.state_key


def test_early_stopping_mode_options():
    with pytest.raises(MisconfigurationException, match="`mode` can be .* got unknown_option"):
        ES(monitor="foo", mode="unknown_option")


class RestoreProbe(EnergyAwareEarlyStopping):
    """Checks the restored state in on_train_start and keeps the state of every epoch."""

    def __init__(self, expected_state, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.expected_state = expected_state
        self.saved_states: list[dict] = []

    def on_train_start(self, trainer, pl_module) -> None:
        if self.expected_state:
            assert self.state_dict() == self.expected_state

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        self.saved_states.append(copy.deepcopy(self.state_dict()))


def test_resume_from_checkpoint_restores_state_including_energy_history(tmp_path):
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", monitor="val_wer", save_top_k=1)
    stopper = RestoreProbe(None, monitor="val_wer", rule=RecordingRule())
    trainer = make_trainer(tmp_path, [_tracker(), stopper, checkpoint], enable_checkpointing=True, max_epochs=4)
    trainer.fit(SpeechLikeModel(wers=(50, 40, 35, 30)))
    assert len(stopper.saved_states) == 4

    ckpt = torch.load(checkpoint.kth_best_model_path, weights_only=True)
    saved = stopper.saved_states[ckpt["epoch"]]
    assert ckpt["callbacks"][stopper.state_key] == saved
    assert len(saved["energy_history"]) == ckpt["epoch"] + 1 and saved["metric_history"][-1] == 30.0

    restored = RestoreProbe(saved, monitor="val_wer", rule=RecordingRule())
    again = make_trainer(tmp_path, [_tracker(), restored], max_epochs=1)
    with pytest.raises(MisconfigurationException, match=r"You restored a checkpoint with current_epoch"):
        again.fit(SpeechLikeModel(), ckpt_path=checkpoint.kth_best_model_path)


@pytest.mark.parametrize("energy", [False, True])
def test_one_check_per_epoch_and_found_by_the_trainer(tmp_path, energy):
    stopper, rule = _stopper(energy, monitor="val_wer")
    trainer = make_trainer(tmp_path, _callbacks(stopper, energy), max_epochs=4)
    with mock.patch.object(stopper, "_run_early_stopping_check", wraps=stopper._run_early_stopping_check) as check:
        trainer.fit(SpeechLikeModel())
    assert trainer.early_stopping_callback is stopper
    assert trainer.early_stopping_callbacks == [stopper]
    assert check.call_count == 4
    if energy:
        assert len(rule.calls) == 4


PATIENCE_CASES = [([6, 5, 5, 5, 5, 5], 3, 4), ([6, 5, 4, 4, 3, 3], 1, 3), ([6, 5, 6, 5, 5, 5], 3, 4)]


@pytest.mark.parametrize("energy", [False, True])
@pytest.mark.parametrize(("values", "patience", "expected_stop_epoch"), PATIENCE_CASES)
def test_patience(tmp_path, values, patience, expected_stop_epoch, energy):
    stopper, rule = _stopper(energy, monitor="test_val_loss", patience=patience, verbose=True)
    trainer = make_trainer(tmp_path, _callbacks(stopper, energy), max_epochs=10, num_sanity_val_steps=0)
    trainer.fit(ValuesModel(values, key="test_val_loss"))
    assert trainer.current_epoch - 1 == expected_stop_epoch
    assert stopper.stopping_reason == EarlyStoppingReason.PATIENCE_EXHAUSTED and not stopper.energy_stopped
    if energy:
        energy_seen, metric_seen = rule.calls[-1]
        assert metric_seen == [float(v) for v in values[: expected_stop_epoch + 1]]
        assert all(b > a for a, b in zip(energy_seen, energy_seen[1:]))


@pytest.mark.parametrize("energy", [False, True])
@pytest.mark.parametrize("validation_step_none", [True, False])
@pytest.mark.parametrize(("values", "patience", "expected_stop_epoch"), PATIENCE_CASES[:2])
def test_patience_on_a_train_metric(tmp_path, values, patience, expected_stop_epoch, validation_step_none, energy):
    model = ValuesModel(values, key="train_loss", on_train=True)
    if validation_step_none:
        model.validation_step = None
    stopper, rule = _stopper(energy, monitor="train_loss", patience=patience, check_on_train_epoch_end=True)
    trainer = make_trainer(tmp_path, _callbacks(stopper, energy), max_epochs=10, num_sanity_val_steps=0)
    trainer.fit(model)
    assert trainer.current_epoch - 1 == expected_stop_epoch
    if energy:  # the energy of every epoch is counted when it is checked, validation or not
        energy_seen, _ = rule.calls[-1]
        assert len(energy_seen) == expected_stop_epoch + 1
        assert all(b > a for a, b in zip(energy_seen, energy_seen[1:]))


@pytest.mark.parametrize(
    ("stopping_threshold", "divergence_threshold", "losses", "expected_epoch"),
    [
        (None, None, [8, 4, 2, 3, 4, 5, 8, 10], 5),
        (2.9, None, [9, 8, 7, 6, 5, 6, 4, 3, 2, 1], 8),
        (None, 15.9, [9, 4, 2, 16, 32, 64], 3),
    ],
)
def test_thresholds(tmp_path, stopping_threshold, divergence_threshold, losses, expected_epoch):
    stopper = ES(
        monitor="abc", patience=3, stopping_threshold=stopping_threshold, divergence_threshold=divergence_threshold,
        rule=RecordingRule(),
    )
    trainer = make_trainer(tmp_path, [_tracker(), stopper], max_epochs=20)
    trainer.fit(ValuesModel(losses, key="abc"))
    assert trainer.current_epoch - 1 == expected_epoch


@pytest.mark.parametrize("stop_value", [math.inf, math.nan])
def test_non_finite_monitor_stops_and_records_the_epoch(tmp_path, stop_value):
    rule = RecordingRule()
    stopper = ES(monitor="val_loss", check_finite=True, rule=rule)
    trainer = make_trainer(tmp_path, [_tracker(), stopper], max_epochs=10)
    trainer.fit(ValuesModel([4, 3, stop_value, 2, 1]))
    assert trainer.current_epoch - 1 == 2 and stopper.stopped_epoch == 2
    assert stopper.stopping_reason == EarlyStoppingReason.NON_FINITE_METRIC
    assert math.isnan(rule.calls[-1][1][-1])  # a non-finite value reaches the rule as "not evaluated"


@pytest.mark.parametrize(
    ("limit_train_batches", "min_epochs", "min_steps", "stop_step"),
    [(3, 0, 10, 10), (3, 2, 0, 6), (5, 3, 10, 15)],
)
def test_min_epochs_and_min_steps_are_honoured(tmp_path, limit_train_batches, min_epochs, min_steps, stop_step):
    class StepModel(BoringModel):
        def training_step(self, batch, batch_idx):
            self.log("foo", batch_idx)
            return super().training_step(batch, batch_idx)

    stopper = ES("foo", rule=RecordingRule())
    trainer = make_trainer(
        tmp_path, [_tracker(), stopper], limit_val_batches=0, limit_train_batches=limit_train_batches,
        min_epochs=min_epochs, min_steps=min_steps, max_epochs=None, logger=False,
    )
    expected_epochs = max(math.ceil(min_steps / limit_train_batches), min_epochs)
    with mock.patch.object(stopper, "_evaluate_stopping_criteria", side_effect=[(True, "")] * expected_epochs):
        trainer.fit(StepModel())
    assert trainer.should_stop
    assert trainer.current_epoch == expected_epochs
    assert trainer.global_step == stop_step


@pytest.mark.parametrize("energy_first", [False, True])
@pytest.mark.parametrize("order", [0, 1])
def test_several_instances_stop_when_any_fires(tmp_path, order, energy_first):
    patience_three = ES("cba", patience=3, rule=RecordingRule())
    default = ES("abc", patience=3, rule=RecordingRule())
    stoppers = [default, patience_three] if order == 0 else [patience_three, default]

    class TwoMetrics(ValuesModel):
        def on_validation_epoch_end(self) -> None:
            super().on_validation_epoch_end()
            self.log("cba", torch.tensor(0.0))

    callbacks = [_tracker(), *stoppers] if energy_first else [*stoppers, _tracker()]
    trainer = make_trainer(tmp_path, callbacks, max_epochs=20)
    trainer.fit(TwoMetrics([8, 4, 2, 3, 4, 5, 8, 10], key="abc"))
    assert trainer.current_epoch - 1 == 3  # "cba" never improves after epoch 0: patience 3 stops at epoch 3
    assert len(patience_three.energy_history) == len(default.energy_history) == 4
    assert patience_three.energy_history == default.energy_history  # same tracker totals, whatever the order


@pytest.mark.parametrize(
    "case",
    {
        "val_check_interval": {"val_check_interval": 0.3, "limit_train_batches": 10, "max_epochs": 10},
        "check_val_every_n_epoch": {"check_val_every_n_epoch": 2, "max_epochs": 5},
    }.items(),
)
def test_check_runs_after_validation_when_validation_is_not_once_per_epoch(tmp_path, case):
    class TestModel(BoringModel):
        def validation_step(self, batch, batch_idx):
            self.log("foo", 1)
            return super().validation_step(batch, batch_idx)

    name, kwargs = case
    stopper = ES(monitor="foo", rule=RecordingRule())
    trainer = make_trainer(tmp_path, [_tracker(), stopper], limit_val_batches=1, **kwargs)
    side_effect = [(False, "A"), (True, "B")]
    with mock.patch(
        "lightning.pytorch.callbacks.EarlyStopping._evaluate_stopping_criteria", side_effect=side_effect
    ) as es_mock:
        trainer.fit(TestModel())
    assert es_mock.call_count == len(side_effect)
    if name == "val_check_interval":
        assert trainer.global_step == len(side_effect) * int(trainer.limit_train_batches * trainer.val_check_interval)
    else:
        assert trainer.current_epoch == len(side_effect) * trainer.check_val_every_n_epoch
    # the energy of each validation is in the history when the check reads it (pending rows included)
    assert len(stopper.energy_history) == 2 and stopper.energy_history[1] > stopper.energy_history[0] > 0


def test_monitored_tensor_is_squeezed():
    stopper = ES(monitor="foo")
    trainer = Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.callback_metrics["foo"] = torch.tensor([[[0]]])
    with mock.patch(
        "lightning.pytorch.callbacks.EarlyStopping._evaluate_stopping_criteria", return_value=(False, "")
    ) as es_mock:
        stopper._run_early_stopping_check(trainer)
    es_mock.assert_called_once_with(torch.tensor(0))


@pytest.mark.parametrize("strict", [True, False])
def test_unknown_monitor_key_is_strict_or_not_like_early_stopping(tmp_path, strict):
    stopper = ES(monitor="val_typo", strict=strict, rule=RecordingRule())
    trainer = make_trainer(tmp_path, [_tracker(), stopper], max_epochs=2)
    if strict:
        with pytest.raises(RuntimeError, match="val_typo.*not available"):
            trainer.fit(SpeechLikeModel())
    else:
        trainer.fit(SpeechLikeModel())
        assert trainer.current_epoch == 2 and stopper.rule.calls == []


def test_pickling_keeps_vars():
    stopper = ES(monitor="foo", threshold=0.5, rule_kwargs={"patience": 3})
    for dumps, loads in ((pickle.dumps, pickle.loads), (cloudpickle.dumps, cloudpickle.loads)):
        assert vars(loads(dumps(stopper))) == vars(stopper)


def test_reason_persists_and_old_state_dicts_load():
    stopper = ES(monitor="val_loss", patience=3)
    stopper.stopping_reason = EarlyStoppingReason.PATIENCE_EXHAUSTED
    stopper.stopping_reason_message = "Test message"
    stopper.energy_history, stopper.metric_history, stopper.energy_stopped = [0.1, 0.2], [5.0, 4.0], True
    restored = ES(monitor="val_loss", patience=3)
    restored.load_state_dict(stopper.state_dict())
    assert restored.stopping_reason == EarlyStoppingReason.PATIENCE_EXHAUSTED
    assert restored.stopping_reason_message == "Test message"
    assert (restored.energy_history, restored.metric_history, restored.energy_stopped) == ([0.1, 0.2], [5.0, 4.0], True)

    old = {"wait_count": 2, "stopped_epoch": 5, "best_score": torch.tensor(0.5), "patience": 3}  # lightning < 2.6
    fresh = ES(monitor="val_loss", patience=3)
    fresh.load_state_dict(copy.deepcopy(old))
    assert fresh.stopping_reason == EarlyStoppingReason.NOT_STOPPED and fresh.stopping_reason_message is None
    assert (fresh.wait_count, fresh.stopped_epoch, fresh.energy_history, fresh.energy_stopped) == (2, 5, [], False)


# --------------------------------------------------------------------------------------------------------------
# the energy rule


def test_energy_rule_stop_sets_should_stop_and_a_persisted_reason(tmp_path):
    tracker, rule = _tracker(), RecordingRule(stop_at=2)
    stopper = ES(monitor="val_wer", rule=rule)
    trainer = make_trainer(tmp_path, [tracker, stopper], max_epochs=10)
    trainer.fit(SpeechLikeModel(wers=(50, 40, 35, 34)))
    assert trainer.current_epoch == 2 and stopper.stopped_epoch == 1
    assert stopper.energy_stopped and stopper.stopping_reason == EarlyStoppingReason.NOT_STOPPED
    assert "Energy-aware stop on val_wer" in stopper.stopping_reason_message
    assert "recorded stop" in stopper.stopping_reason_message
    assert ES(monitor="val_wer").state_dict()["energy_stopped"] is False
    state = stopper.state_dict()
    assert state["energy_stopped"] and state["stopping_reason_message"] == stopper.stopping_reason_message
    # the rule saw the tracker's totals at each check: the ledger's running sum up to each validation row
    rows = read_ledger(tracker.ledger_dir / "energy.csv")
    ends = [i for i, r in enumerate(rows) if r.stage == "validate"]
    assert rule.calls[-1][0] == pytest.approx([sum(r.energy_kwh for r in rows[: i + 1]) for i in ends], rel=1e-12)
    assert rule.calls[-1][1] == [50.0, 40.0]


def test_energy_rule_in_kg_co2(tmp_path):
    tracker, rule = _tracker(), RecordingRule()
    stopper = ES(monitor="val_wer", unit="kg_co2", rule=rule)
    make_trainer(tmp_path, [tracker, stopper], max_epochs=2).fit(SpeechLikeModel())
    energy_kwh = read_ledger(tracker.ledger_dir / "energy.csv")
    assert rule.calls[0][0][0] == pytest.approx(sum(r.co2_kg for r in energy_kwh[:3]), rel=1e-12)


def test_usual_criteria_take_precedence_over_the_energy_rule(tmp_path):
    stopper = ES(monitor="val_loss", stopping_threshold=10.0, rule=RecordingRule(stop_at=1))
    trainer = make_trainer(tmp_path, [_tracker(), stopper], max_epochs=5)
    trainer.fit(ValuesModel([5.0, 4.0]))
    assert stopper.stopping_reason == EarlyStoppingReason.STOPPING_THRESHOLD and not stopper.energy_stopped
    assert trainer.current_epoch == 1


def test_default_energy_aware_rule_stops_a_run_that_stopped_paying(tmp_path):
    stopper = ES(monitor="val_wer", threshold=1e12, rule_kwargs={"window": 2, "patience": 1})
    trainer = make_trainer(tmp_path, [_tracker(), stopper], max_epochs=10)
    trainer.fit(SpeechLikeModel(wers=(50, 40, 35, 34)))
    assert stopper.energy_stopped and stopper.stopped_epoch == 1 and trainer.current_epoch == 2


def test_energy_rule_without_a_tracker_names_the_fix(tmp_path):
    trainer = make_trainer(tmp_path, [ES(monitor="val_wer")])
    with pytest.raises(ConfigError, match=r"needs an EnergyTracker: use Trainer\(callbacks=\[EnergyTracker"):
        trainer.fit(SpeechLikeModel())
    stray = _tracker()
    trainer = make_trainer(tmp_path, [_tracker(), ES(monitor="val_wer", tracker=stray)])
    with pytest.raises(ConfigError, match="not in Trainer"):
        trainer.fit(SpeechLikeModel())
    make_trainer(tmp_path, [ES(monitor="val_wer", energy_rule=False)], max_epochs=1).fit(SpeechLikeModel())


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(threshold=-0.1), "threshold"),
        (dict(threshold="-1"), "threshold"),
        (dict(threshold=math.inf), "threshold"),
        (dict(threshold="/no/such/run"), "neither a number nor an existing"),
        (dict(unit="joules"), "unit"),
        (dict(rule_kwargs={"speed": 2}), "rule_kwargs"),
        (dict(rule_kwargs={"window": 1}), "window"),
        (dict(rule=object()), "rule"),
        (dict(tracker="tracker"), "tracker"),
    ],
)
def test_bad_arguments_raise_config_error(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        ES(monitor="val_wer", **kwargs)


def test_threshold_read_from_an_earlier_run(tmp_path):
    replay = pytest.importorskip("carbon_callbacks.analysis.replay")
    readers = pytest.importorskip("carbon_callbacks.analysis.readers")
    tracker = _tracker()
    wers = (60, 45, 38, 34, 32, 31, 30.6, 30.4, 30.3, 30.2)
    make_trainer(tmp_path / "earlier", [tracker], max_epochs=len(wers)).fit(SpeechLikeModel(wers=wers))
    stopper = ES(monitor="val_wer", threshold=tracker.ledger_dir)
    expected = replay.suggest(readers.load_run(tracker.ledger_dir), unit="kwh", mode="min", metric="val_wer")
    assert stopper.threshold_per_unit == pytest.approx(expected.value)
    assert stopper.threshold == str(tracker.ledger_dir)
    assert stopper.rule_kwargs["patience"] == expected.rule["patience"]


class WerCerModel(BoringModel):
    """Logs ``val_wer`` and ``val_cer`` from two lists, one value per epoch."""

    def __init__(self, wers, cers) -> None:
        super().__init__()
        self.wers, self.cers = list(wers), list(cers)

    def on_validation_epoch_end(self) -> None:
        epoch = min(self.current_epoch, len(self.wers) - 1)
        self.log("val_wer", torch.tensor(float(self.wers[epoch])))
        self.log("val_cer", torch.tensor(float(self.cers[epoch])))


WER_PLATEAU = [50, 35, 27, 22, 19, 17, 16, 15.5, 15.2, 15.2, 15.2, 15.2, 15.2, 15.2, 15.2, 15.2]
CER_FALLING = [v / 2.5 for v in WER_PLATEAU[:8]] + [6.0 * 0.99**i for i in range(8)]


@pytest.mark.parametrize(("companion", "stops"), [("auto", False), ("val_cer", False), (None, True)])
def test_a_still_improving_cer_vetoes_the_energy_stop_on_a_wer_plateau(tmp_path, companion, stops):
    # constant power: every epoch costs the same energy, so the history is the synthetic curve's
    stopper = ES(monitor="val_wer", companion=companion)
    trainer = make_trainer(tmp_path, [_tracker(), stopper], max_epochs=len(WER_PLATEAU))
    trainer.fit(WerCerModel(WER_PLATEAU, CER_FALLING))
    assert stopper.energy_stopped is stops
    assert (trainer.current_epoch < len(WER_PLATEAU)) is stops
    if companion is not None:
        assert stopper.companion_history == pytest.approx(CER_FALLING)
        assert stopper.state_dict()["companion_history"] == stopper.companion_history
    else:
        assert stopper.companion_history == []


def test_companion_validation():
    with pytest.raises(ConfigError, match="companion="):
        ES(monitor="val_wer", companion="")
