"""Per-batch hooks our callbacks do not use are not dispatched by a real Trainer (a profiler names each call)."""

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

    assert set(PER_BATCH_HOOKS) & _dispatched(profiler, tracker) == {"on_train_batch_end", "on_validation_batch_end"}
    assert not set(PER_BATCH_HOOKS) & _dispatched(profiler, stopper)
    assert not set(PER_BATCH_HOOKS) & _dispatched(profiler, budget)
    assert "on_train_epoch_end" in _dispatched(profiler, stopper)  # epoch hooks still run
    assert [r.stage for r in read_ledger(tracker.ledger_dir / "energy.csv")].count("validate") == 3


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
