"""Per-batch hooks our callbacks do not use, or do not need in an epoch, are not dispatched by a real Trainer (a
profiler names each call)."""

from __future__ import annotations

import pytest
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.profilers import SimpleProfiler
from tests.lightning._lt_models import SpeechLikeModel, make_trainer

from carbon_callbacks import ConstantPower, read_ledger
from carbon_callbacks.lightning import CarbonBudget, EnergyAwareEarlyStopping, EnergyTracker
from carbon_callbacks.lightning._hooks import PER_BATCH_HOOKS, skip_unused_batch_hooks


def _dispatched(profiler: SimpleProfiler, callback: Callback) -> set[str]:
    prefix = f"[Callback]{callback.state_key}."
    return {name[len(prefix):] for name in profiler.recorded_durations if name.startswith(prefix)}


def test_a_real_fit_calls_no_per_batch_hook_but_the_tracker_heartbeat(tmp_path):
    tracker = EnergyTracker(meter=ConstantPower(device_w=10.0), intensity=100.0, report=False)
    stopper = EnergyAwareEarlyStopping("val_wer", strict=False)
    budget = CarbonBudget(max_kwh=1.0)
    profiler = SimpleProfiler()
    trainer = make_trainer(tmp_path, [tracker, stopper, budget], profiler=profiler)
    trainer.fit(SpeechLikeModel())

    assert set(PER_BATCH_HOOKS) & _dispatched(profiler, tracker) == {"on_train_batch_end"}
    assert not set(PER_BATCH_HOOKS) & _dispatched(profiler, stopper)
    assert not set(PER_BATCH_HOOKS) & _dispatched(profiler, budget)
    assert "on_train_epoch_end" in _dispatched(profiler, stopper)  # epoch hooks still run
    assert [r.stage for r in read_ledger(tracker.ledger_dir / "energy.csv")].count("validate") == 3


def _calls(profiler: SimpleProfiler, callback: Callback, hook: str) -> int:
    return len(profiler.recorded_durations.get(f"[Callback]{callback.state_key}.{hook}", []))


@pytest.mark.parametrize(
    ("heartbeat_s", "checked_epochs"),
    [
        (60.0, 1),  # 4-step epochs take milliseconds: only the first epoch of the run checks the clock
        (1e-6, 3),  # every epoch is longer than half of heartbeat_s: every step checks it
    ],
)
def test_the_heartbeat_is_checked_only_in_epochs_where_a_save_can_fall_due(tmp_path, heartbeat_s, checked_epochs):
    tracker = EnergyTracker(meter=ConstantPower(device_w=10.0), intensity=100.0, heartbeat_s=heartbeat_s, report=False)
    profiler = SimpleProfiler()
    trainer = make_trainer(tmp_path, [tracker], profiler=profiler)  # 3 epochs of 4 steps
    trainer.fit(SpeechLikeModel())
    assert _calls(profiler, tracker, "on_train_batch_end") == 4 * checked_epochs


def test_a_subclass_that_overrides_the_heartbeat_hook_gets_it_at_every_step(tmp_path):
    steps = []

    class Counting(EnergyTracker):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            steps.append(trainer.global_step)
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    tracker = Counting(meter=ConstantPower(device_w=10.0), intensity=100.0, report=False)
    trainer = make_trainer(tmp_path, [tracker])
    trainer.fit(SpeechLikeModel())
    assert len(steps) == trainer.global_step == 12


def test_a_second_fit_checks_its_first_epoch_again(tmp_path):
    tracker = EnergyTracker(meter=ConstantPower(device_w=10.0), intensity=100.0, report=False)
    for run in range(2):
        profiler = SimpleProfiler()
        make_trainer(tmp_path / str(run), [tracker], profiler=profiler).fit(SpeechLikeModel())
        assert _calls(profiler, tracker, "on_train_batch_end") == 4


def test_validation_batches_are_counted_in_validate_runs_only(tmp_path):
    tracker = EnergyTracker(meter=ConstantPower(device_w=10.0), intensity=100.0, report=False)
    profiler = SimpleProfiler()
    trainer = make_trainer(tmp_path, [tracker], profiler=profiler)
    model = SpeechLikeModel()
    trainer.fit(model)
    assert _calls(profiler, tracker, "on_validation_batch_end") == 0
    trainer.validate(model)
    assert _calls(profiler, tracker, "on_validation_batch_end") == 2
    assert tracker.inference["validate"].batches == 2


def test_a_subclass_that_defines_a_skipped_hook_gets_it_called(tmp_path):
    calls = []

    class Counting(EnergyTracker):
        def on_before_backward(self, trainer, pl_module, loss):
            calls.append(trainer.global_step)

    tracker = Counting(meter=ConstantPower(device_w=10.0), intensity=100.0, report=False)
    trainer = make_trainer(tmp_path, [tracker])
    trainer.fit(SpeechLikeModel())
    assert len(calls) == trainer.global_step > 0
    assert EnergyTracker.on_before_backward is None


@pytest.mark.parametrize("hook", PER_BATCH_HOOKS)
def test_decorator_keeps_the_overridden_hook_and_clears_the_inherited_ones(hook):
    def own(self, *args):
        return None

    cls = skip_unused_batch_hooks(type("Uses", (Callback,), {hook: own}))
    assert getattr(cls, hook) is own
    assert all(getattr(cls, other) is None for other in PER_BATCH_HOOKS if other != hook)
    assert callable(getattr(Callback, hook))  # the base class is untouched
