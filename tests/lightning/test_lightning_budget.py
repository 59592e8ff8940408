"""CarbonBudget: stops before the budget would be exceeded, resumes with the budget already spent."""

from __future__ import annotations

import math

import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from carbon_callbacks import ConfigError, ConstantPower, read_ledger
from carbon_callbacks.lightning import CarbonBudget, EnergyTracker
from tests.lightning._lt_models import SpeechLikeModel, TickClock, make_trainer


def _tracker() -> EnergyTracker:
    # energy grows by a fixed amount per meter read: every epoch costs the same, whatever the machine's speed
    meter = ConstantPower(device_w=3600.0, host_w=0.0, clock=TickClock())
    return EnergyTracker(meter=meter, intensity=250.0, heartbeat_s=3600.0, report=False)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """Epoch costs of an unconstrained run: (kWh spent before epoch 0, kWh per epoch)."""
    tracker, budget = _tracker(), CarbonBudget(max_kwh=1e9)
    make_trainer(tmp_path_factory.mktemp("ref"), [tracker, budget], max_epochs=4).fit(SpeechLikeModel())
    assert budget.epoch_kwh[1:] == pytest.approx([budget.epoch_kwh[1]] * 3, rel=1e-9)  # steady from epoch 1
    spent_before = sum(r.energy_kwh for r in read_ledger(tracker.ledger_dir / "energy.csv") if r.stage == "sanity")
    return spent_before, budget.epoch_kwh


def test_stops_before_the_next_epoch_would_exceed_the_budget(tmp_path, reference):
    spent_before, costs = reference
    limit = spent_before + sum(costs[:3]) + 0.5 * costs[1]  # room for 3 epochs and half of a 4th
    tracker, budget = _tracker(), CarbonBudget(max_kwh=limit)
    trainer = make_trainer(tmp_path, [budget, tracker], max_epochs=10)  # order does not matter
    trainer.fit(SpeechLikeModel())
    assert budget.stopped_epoch == 2 and trainer.current_epoch == 3
    assert "Carbon budget" in budget.stopping_reason_message and "kWh" in budget.stopping_reason_message
    assert sum(r.energy_kwh for r in read_ledger(tracker.ledger_dir / "energy.csv")) <= limit


def test_kg_co2_budget(tmp_path, reference):
    spent_before, costs = reference
    limit_kg = (spent_before + costs[0] + 0.5 * costs[1]) * 250.0 / 1000.0
    budget = CarbonBudget(max_kg_co2=limit_kg)
    trainer = make_trainer(tmp_path, [_tracker(), budget], max_epochs=10)
    trainer.fit(SpeechLikeModel())
    assert budget.stopped_epoch == 0 and trainer.current_epoch == 1 and "kg CO2" in budget.stopping_reason_message


def test_resume_with_the_budget_already_spent_stops_at_once(tmp_path):
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    first = make_trainer(tmp_path, [_tracker(), CarbonBudget(max_kwh=1e9), checkpoint], enable_checkpointing=True,
                         max_epochs=2)
    first.fit(SpeechLikeModel())
    state = torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=True)  # plain values only
    assert len(state["callbacks"][CarbonBudget(max_kwh=1e9).state_key]["epoch_kwh"]) == 2
    spent = state["callbacks"][_tracker().state_key]["accountant"]["totals"]["energy_kwh"]

    tracker, budget = _tracker(), CarbonBudget(max_kwh=spent * 0.9)
    second = make_trainer(tmp_path, [tracker, budget], max_epochs=5)
    second.fit(SpeechLikeModel(), ckpt_path=tmp_path / "ckpt" / "last.ckpt")
    assert second.global_step == first.global_step  # no training step was taken
    assert "already spent" in budget.stopping_reason_message and budget.stopped_epoch == 2


def test_state_round_trip_and_old_state():
    budget = CarbonBudget(max_kwh=2.0)
    budget.epoch_kwh, budget.epoch_kg_co2, budget.stopped_epoch = [0.5, 0.6], [0.1, 0.12], 3
    budget.stopping_reason_message = "why"
    restored = CarbonBudget(max_kwh=2.0)
    restored.load_state_dict(budget.state_dict())
    assert restored.state_dict() == budget.state_dict()
    restored.load_state_dict({})
    assert restored.epoch_kwh == [] and restored.stopping_reason_message is None


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(max_kwh=-1.0), "max_kwh"),
        (dict(max_kg_co2=0.0), "max_kg_co2"),
        (dict(max_kwh=math.nan), "max_kwh"),
        (dict(), "max_kwh=... or max_kg_co2"),
        (dict(max_kwh=1.0, window=0), "window"),
        (dict(max_kwh=1.0, tracker="t"), "tracker"),
    ],
)
def test_bad_budgets_raise_config_error(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        CarbonBudget(**kwargs)


def test_budget_without_a_tracker_names_the_fix(tmp_path):
    trainer = make_trainer(tmp_path, [CarbonBudget(max_kwh=1.0)])
    with pytest.raises(ConfigError, match="CarbonBudget needs an EnergyTracker"):
        trainer.fit(SpeechLikeModel())
