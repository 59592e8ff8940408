"""One place that turns what a user passes as a stopping threshold into a rate and the rule it was chosen with.

Both adapters (Lightning ``EnergyAwareEarlyStopping`` and SpeechBrain ``EnergyAwareEpochCounter``) call
:func:`resolve_threshold`, so a number, a threshold file or an earlier run mean the same thing everywhere.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from .._files import read_limited
from ..errors import CarbonCallbacksError, ConfigError

__all__ = ["resolve_threshold"]

_RULE_OWN = ("threshold", "unit", "mode")
_ALLOWED = "a rate >= 0, a threshold file (.json or a number), the path of an earlier run, or None"


def resolve_threshold(
    threshold: float | str | Path | None,
    *,
    unit: str = "kwh",
    metric: str | None = None,
    mode: str | None = None,
) -> tuple[float | None, dict[str, Any]]:
    """The threshold as a rate (metric units per ``unit``) and the rule arguments it was validated with.

    Accepted forms:
      - a number (or a numeric string): taken as given, no rule arguments;
      - a ``.json`` file: a number, ``{"threshold": x}``, or the output of ``carbon-callbacks analyze --json``
        (its ``suggested_threshold.value``); a text file holding a number;
      - the path of an earlier run (run directory, ``train_log.txt``, ``metrics.csv``, ledger): the analyzer's
        suggestion for it (:func:`~carbon_callbacks.analysis.replay.suggest`), validated by replay, with the rule
        arguments (window, patience, ...) it was chosen with.

    Raises:
        ConfigError: a negative or non-finite value, a missing path, a file with no usable threshold, or a run the
            analyzer cannot use (the message names the path and the problem).
    """
    if threshold is None:
        return None, {}
    if isinstance(threshold, bool):
        raise ConfigError(f"threshold={threshold!r} is not allowed: give {_ALLOWED}")
    if isinstance(threshold, (int, float)):
        return _checked(float(threshold)), {}
    if isinstance(threshold, str):
        try:
            return _checked(float(threshold)), {}
        except ValueError:
            pass
    if not isinstance(threshold, (str, Path)):
        raise ConfigError(f"threshold={threshold!r} is not allowed: give {_ALLOWED}")
    path = Path(threshold)
    if not path.exists():
        raise ConfigError(f"threshold={str(path)!r} is neither a number nor an existing file or run directory")
    if path.is_file():
        value = _from_file(path)
        if value is not None:
            return _checked(value), {}
    return _from_run(path, unit=unit, metric=metric, mode=mode)


def _checked(value: float) -> float:
    if not value >= 0.0 or math.isinf(value):
        raise ConfigError(f"threshold={value!r} is not allowed: give {_ALLOWED}")
    return value


def _from_file(path: Path) -> float | None:
    """A threshold written in a small file; None when the file is not a threshold file (e.g. a training log)."""
    text = read_limited(path, "the threshold file", error=ConfigError).decode("utf-8", errors="replace").strip()
    try:
        data: Any = json.loads(text)
    except ValueError:
        if path.suffix.lower() == ".json":
            raise ConfigError(f"{path}: not valid JSON; write a number or {{\"threshold\": 2.5}}") from None
        try:
            return float(text)
        except ValueError:
            return None
    if isinstance(data, dict):
        suggested = data.get("suggested_threshold")
        data = suggested.get("value") if isinstance(suggested, dict) else data.get("threshold")
    if isinstance(data, (int, float)) and not isinstance(data, bool):
        return float(data)
    raise ConfigError(f"{path}: no threshold in it; write a number, {{\"threshold\": 2.5}}, or `analyze --json` output")


def _from_run(path: Path, *, unit: str, metric: str | None, mode: str | None) -> tuple[float, dict[str, Any]]:
    from .readers import load_run
    from .replay import suggest

    try:
        run = load_run(path)
        try:
            suggestion = suggest(run, unit=unit, metric=metric, mode=mode)
        except ConfigError:
            suggestion = suggest(run, unit=unit)  # the earlier run names its metric differently: use its main one
    except CarbonCallbacksError as exc:
        raise ConfigError(f"threshold={str(path)!r}: the analyzer cannot suggest a threshold from it: {exc}") from None
    rule = suggestion.rule if isinstance(suggestion.rule, dict) else {}
    return _checked(float(suggestion.threshold)), {k: v for k, v in rule.items() if k not in _RULE_OWN}
