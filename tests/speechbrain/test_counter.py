"""EnergyAwareEpochCounter: budgets (with prediction), the rule on the recorded history, checkpoints, bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from carbon_callbacks.accounting import Totals
from carbon_callbacks.analysis.stopping import Decision, PatienceRule
from carbon_callbacks.errors import ConfigError
from carbon_callbacks.meters import ConstantPower
from carbon_callbacks.analysis.threshold import resolve_threshold
from carbon_callbacks.speechbrain import (
    EnergyAwareEpochCounter,
    EnergyTracker,
    EpochEnergy,
    infer_metric,
)
from carbon_callbacks import report as report_module
from carbon_callbacks.report import try_write_run_report
from tests.speechbrain import tiny_recipe as tr


def _tracker() -> EnergyTracker:
    return EnergyTracker(ConstantPower(1.0), intensity=100.0, report=False)


def _with_history(counter: EnergyAwareEpochCounter, per_epoch_kwh: list[float], wer: list[float]) -> None:
    total = 0.0
    for epoch, (kwh, value) in enumerate(zip(per_epoch_kwh, wer), start=1):
        total += kwh
        counter.tracker.history[epoch] = EpochEnergy(epoch, kwh, kwh / 10, total, total / 10, {"valid_WER": value})
    counter.tracker.accountant.totals = Totals(energy_kwh=total, co2_kg=total / 10)
    counter.current = len(per_epoch_kwh)


def test_budget_predicts_the_next_epoch_from_measured_ones() -> None:
    counter = EnergyAwareEpochCounter(10, _tracker(), max_kwh=10.0, rule="none")
    _with_history(counter, [2.0, 3.0, 2.5], [50, 40, 30])  # 7.5 used, next ~2.5 -> exactly 10, not over
    assert counter.decide() == ""
    _with_history(counter, [2.0, 3.0, 2.5, 2.6], [50, 40, 30, 25])  # 10.1 >= 10: reached
    assert counter.decide().startswith("energy budget reached: 10.1 kWh used, max_kwh=10")
    _with_history(counter, [3.0, 3.0, 3.0], [50, 40, 30])  # 9 used, next ~3 would exceed
    reason = counter.decide()
    assert reason.startswith("energy budget: one more epoch (about 3 kWh, mean of the last 3)")
    co2 = EnergyAwareEpochCounter(10, _tracker(), max_kg_co2=0.5, rule="none")
    _with_history(co2, [2.0, 2.0], [50, 40])  # 0.4 kg used, next ~0.2 kg
    assert "max_kg_co2=0.5" in co2.decide()


def test_rule_sees_cumulative_energy_and_the_inferred_valid_metric() -> None:
    seen: dict[str, list[float]] = {}

    class Spy:
        def decide(self, energy: list[float], metric: list[float]) -> Decision:
            seen["energy"], seen["metric"] = list(energy), list(metric)
            return Decision(True, "spy says stop")

    counter = EnergyAwareEpochCounter(10, _tracker(), rule=Spy())
    _with_history(counter, [1.0, 2.0], [50.0, 40.0])
    counter.tracker.history[2] = EpochEnergy(2, 2.0, 0.2, 3.0, 0.3, {"valid_loss": 1.0})  # WER not evaluated
    assert counter.decide() == "valid_WER: spy says stop"
    assert seen["energy"] == [1.0, 3.0]
    assert seen["metric"][0] == 50.0 and math.isnan(seen["metric"][1])
    assert counter.tracker.monitor == ("valid_WER", "min")


def test_patience_rule_stops_a_real_run_and_the_report_hook_gets_the_metric(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple] = []
    fake = lambda run_dir, metric=None, mode=None: calls.append((Path(run_dir), metric, mode))  # noqa: E731
    monkeypatch.setattr(report_module, "write_run_report", fake)
    rule = "!new:carbon_callbacks.analysis.stopping.PatienceRule {patience: 1}"
    hparams = tr.load(tr.hparams_yaml(tmp_path, rule=rule), {"number_of_epochs": 6, "wer_schedule": [50, 40, 45, 30]})
    hparams["energy_tracker"].report = True
    tr.run(hparams, evaluate=False)
    counter = hparams["epoch_counter"]
    assert isinstance(counter.rule, PatienceRule)
    assert counter.current == 3
    assert counter.stop_reason.startswith("valid_WER: no improvement")
    assert calls == [(tmp_path / "out", "valid_WER", "min")]
    saved = sorted((tmp_path / "out" / "save").glob("CKPT*/counter.ckpt"))[-1]
    state = json.loads(saved.read_text())
    assert state["current"] == 3 and [h["epoch"] for h in state["history"]] == [1, 2, 3]
    assert [h["metrics"]["valid_WER"] for h in state["history"]] == [50, 40, 45]


def test_counter_reads_a_plain_epoch_counter_checkpoint(tmp_path: Path) -> None:
    ckpt = tmp_path / "counter.ckpt"
    ckpt.write_text("4")
    counter = EnergyAwareEpochCounter(10, _tracker())
    counter._recover(ckpt, True)
    assert counter.current == 4
    counter._recover(ckpt, False)  # an intra-epoch checkpoint: the epoch is redone
    assert counter.current == 3


def test_threshold_from_number_or_file(tmp_path: Path) -> None:
    assert resolve_threshold(None) == (None, {}) and resolve_threshold(2) == (2.0, {})
    plain = tmp_path / "t.txt"
    plain.write_text("1.5\n")
    as_json = tmp_path / "t.json"
    as_json.write_text(json.dumps({"threshold": 0.25, "unit": "kwh"}))
    assert resolve_threshold(str(plain))[0] == 1.5 and resolve_threshold(as_json)[0] == 0.25
    assert EnergyAwareEpochCounter(3, _tracker(), threshold=str(as_json)).threshold == 0.25
    garbage = tmp_path / "g.json"
    garbage.write_text('{"rate": 1}')
    with pytest.raises(ConfigError, match="no threshold"):
        resolve_threshold(garbage)
    with pytest.raises(ConfigError, match="neither a number nor an existing"):
        resolve_threshold(tmp_path / "missing.json")
    with pytest.raises(ConfigError, match="threshold=-1"):
        resolve_threshold(-1)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"unit": "wh"}, "unit='wh'"),
        ({"mode": "best"}, "mode='best'"),
        ({"max_kwh": -1.0}, "max_kwh=-1.0"),
        ({"max_kg_co2": "lots"}, "max_kg_co2='lots'"),
        ({"rule": "magic"}, "rule='magic'"),
        ({"patience_epochs": 3}, "EnergyAwareRule does not take"),
    ],
)
def test_bad_arguments_are_config_errors(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        EnergyAwareEpochCounter(3, _tracker(), **kwargs)


def test_counter_needs_a_tracker() -> None:
    with pytest.raises(ConfigError, match="EnergyTracker"):
        EnergyAwareEpochCounter(3, tracker=None)  # type: ignore[arg-type]


def test_infer_metric_prefers_error_rates() -> None:
    assert infer_metric(["train_loss", "valid_loss", "valid_WER"]) == "WER"
    assert infer_metric(["valid_loss", "valid_EER"]) == "EER"
    assert infer_metric(["valid_loss", "valid_ErrorRate"]) == "ErrorRate"
    assert infer_metric(["valid_accuracy"]) == "accuracy"
    assert infer_metric(["train_loss"]) is None


def test_report_hook_is_optional_and_never_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(run_dir: Path, metric: str | None = None, mode: str | None = None) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(report_module, "write_run_report", fail)
    with pytest.warns(RuntimeWarning, match="disk full"):
        assert try_write_run_report(tmp_path, "valid_WER", "min") is False


WER_PLATEAU = [50, 35, 27, 22, 19, 17, 16, 15.5, 15.2, 15.2, 15.2, 15.2, 15.2, 15.2, 15.2, 15.2]
CER_FALLING = [v / 2.5 for v in WER_PLATEAU[:8]] + [6.0 * 0.99**i for i in range(8)]


@pytest.mark.parametrize(("companion", "vetoed"), [("auto", True), ("CER", True), (None, False)])
def test_a_still_improving_cer_vetoes_the_energy_stop_on_a_wer_plateau(companion: str | None, vetoed: bool) -> None:
    counter = EnergyAwareEpochCounter(30, _tracker(), companion=companion)
    _with_history(counter, [1.0] * len(WER_PLATEAU), WER_PLATEAU)
    for epoch, cer in enumerate(CER_FALLING, start=1):
        counter.tracker.history[epoch].metrics["valid_CER"] = cer
    reason = counter.decide()
    assert (reason == "") is vetoed
    if not vetoed:
        assert reason.startswith("valid_WER: ")
    counter.companion = "PER"  # a stat that was never logged: no veto
    assert counter.decide().startswith("valid_WER: ")
