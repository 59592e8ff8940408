"""Keep Lightning from dispatching per-batch hooks that a callback does not use, or does not need for a while.

Lightning calls every hook on every callback, at every batch, unless the attribute is not callable
(``trainer/call.py::_call_callback_hooks`` tests ``callable(fn)``). Each such call costs about 1.3 us (a
profiler section named after ``state_key`` included): 6 calls per training step, or 1.5% of a 0.5 ms step for a
callback that uses none of them (``docs/benchmarks.md``).
"""

from __future__ import annotations

from typing import TypeVar

from lightning.pytorch.callbacks import Callback

__all__ = ["PER_BATCH_HOOKS", "arm_hook", "skip_unused_batch_hooks"]

#: Callback hooks Lightning 2.x calls once per batch (training, validation, test, predict).
PER_BATCH_HOOKS = (
    "on_train_batch_start",
    "on_before_backward",
    "on_after_backward",
    "on_before_optimizer_step",
    "on_before_zero_grad",
    "on_train_batch_end",
    "on_validation_batch_start",
    "on_validation_batch_end",
    "on_test_batch_start",
    "on_test_batch_end",
    "on_predict_batch_start",
    "on_predict_batch_end",
)

_C = TypeVar("_C", bound=type)


def skip_unused_batch_hooks(cls: _C) -> _C:
    """Class decorator: set the per-batch hooks that ``cls`` inherits unchanged from ``Callback`` to None.

    Lightning then skips them; a subclass that defines one of them gets it called as usual.
    """
    for name in PER_BATCH_HOOKS:
        if getattr(cls, name) is getattr(Callback, name):
            setattr(cls, name, None)
    return cls


def arm_hook(callback: Callback, owner: type, name: str, on: bool) -> None:
    """Have Lightning dispatch hook ``name`` to ``callback`` (its class's method) or skip it (None on the object).

    For a per-batch hook of ``owner`` that is needed only in some epochs or some runs. A subclass of ``owner``
    that overrides the hook always gets it called.
    """
    if on or getattr(type(callback), name) is not getattr(owner, name):
        vars(callback).pop(name, None)
    else:
        setattr(callback, name, None)
