"""Read an energy-aware stopping threshold from an earlier run (the analyzer's suggestion)."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from ..errors import ConfigError

__all__ = ["check_threshold"]

_RULE_OWN = ("threshold", "unit", "mode")


def check_threshold(
    threshold: float | str | Path | None, *, unit: str, mode: str, monitor: str
) -> tuple[float | None, dict[str, Any]]:
    """The threshold as a rate (metric units per ``unit``) and the rule arguments it was chosen with.

    A number is taken as given (no rule arguments). A path is an earlier run: the analyzer's suggestion for it
    (``suggest(load_run(path))``), for the metric named ``monitor`` if the run has it, else the run's main metric;
    the rule arguments (window, patience, ...) it was validated with come along.

    Raises:
        ConfigError: a negative number, a path that does not exist, or a run the analyzer cannot use.
    """
    if threshold is None:
        return None, {}
    if isinstance(threshold, bool):
        raise ConfigError(f"threshold={threshold!r} is not allowed: give a rate >= 0, a run directory, or None")
    if isinstance(threshold, (int, float)):
        return _non_negative(float(threshold)), {}
    if isinstance(threshold, str):
        try:
            return _non_negative(float(threshold)), {}
        except ValueError:
            pass
    if isinstance(threshold, (str, Path)):
        return _suggested(Path(threshold), unit=unit, mode=mode, monitor=monitor)
    raise ConfigError(f"threshold={threshold!r} is not allowed: give a rate >= 0, a run directory, or None")


def _non_negative(value: float) -> float:
    if not value >= 0.0 or value == float("inf"):
        raise ConfigError(f"threshold={value!r} is not allowed: give a finite rate >= 0, a run directory, or None")
    return value


def _suggested(path: Path, *, unit: str, mode: str, monitor: str) -> tuple[float, dict[str, Any]]:
    if not path.exists():
        raise ConfigError(f"threshold={str(path)!r} is neither a number nor an existing run directory or file")
    try:
        from ..analysis.readers import load_run
        from ..analysis.replay import suggest
    except ImportError as exc:
        raise ConfigError(f"threshold={str(path)!r} needs the analyzer (carbon_callbacks.analysis): {exc}") from None
    run = load_run(path)
    accepted = inspect.signature(suggest).parameters
    options = {k: v for k, v in {"unit": unit, "mode": mode}.items() if k in accepted}
    try:
        suggestion = suggest(run, **options, **({"metric": monitor} if "metric" in accepted else {}))
    except ConfigError:
        suggestion = suggest(run, **options)  # the earlier run names its metric differently: use its main one
    value = _as_rate(suggestion)
    if value is None:
        raise ConfigError(f"threshold={str(path)!r}: the analyzer suggested no threshold for this run ({suggestion!r})")
    rule = getattr(suggestion, "rule", None)
    kwargs = {k: v for k, v in rule.items() if k not in _RULE_OWN} if isinstance(rule, dict) else {}
    return _non_negative(value), kwargs


def _as_rate(suggestion: Any) -> float | None:
    """A number, or the threshold attribute of a suggestion object."""
    if isinstance(suggestion, (int, float)) and not isinstance(suggestion, bool):
        return float(suggestion)
    for name in ("value", "threshold_per_unit", "threshold"):
        value = getattr(suggestion, name, None)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return None
