"""A scriptable meter for tests of code that consumes meters (no hardware needed)."""

from __future__ import annotations

from typing import Mapping, Sequence

from ..errors import MeterError
from .base import ComponentEnergy, Meter, Scope

__all__ = ["FakeMeter"]

_SCOPES: dict[str, Scope] = {"gpu": "device", "cpu": "host", "ram": "host"}


class FakeMeter(Meter):
    """Returns scripted cumulative joules, one step per :meth:`read`, and can fail on demand.

    Args:
        steps: cumulative joules per component for successive reads, e.g.
            ``[{"gpu": 0, "cpu": 0}, {"gpu": 100, "cpu": 10}]``; after the last step the last one repeats.
        joules_per_read: alternatively, a constant increment per read for each component.
        fail_from_read: the index of the first read that raises :class:`MeterError` (None: never).
        method: the method label reported.
        estimated: whether readings are labelled estimated.
    """

    name = "fake"

    def __init__(
        self,
        steps: Sequence[Mapping[str, float]] | None = None,
        joules_per_read: Mapping[str, float] | None = None,
        fail_from_read: int | None = None,
        method: str = "fake",
        estimated: bool = False,
    ) -> None:
        if (steps is None) == (joules_per_read is None):
            raise ValueError("give exactly one of steps=[...] or joules_per_read={...}")
        self.steps = [dict(s) for s in steps] if steps is not None else None
        self.joules_per_read = dict(joules_per_read) if joules_per_read is not None else None
        self.fail_from_read = fail_from_read
        self.method = method
        self.estimated = estimated
        self.reads = 0
        self.started = False
        self.closed = False

    def start(self) -> None:
        self.started = True

    def read(self) -> Mapping[str, ComponentEnergy]:
        index = self.reads
        self.reads += 1
        if self.fail_from_read is not None and index >= self.fail_from_read:
            raise MeterError(f"FakeMeter: scripted failure at read {index}")
        if self.steps is not None:
            values = self.steps[min(index, len(self.steps) - 1)]
        else:
            assert self.joules_per_read is not None
            values = {k: v * index for k, v in self.joules_per_read.items()}
        return {
            k: ComponentEnergy(float(v), self.method, self.estimated, _SCOPES.get(k, "host"))
            for k, v in values.items()
        }

    def close(self) -> None:
        self.closed = True
