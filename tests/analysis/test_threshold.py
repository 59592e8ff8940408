"""resolve_threshold: numbers, threshold files, `analyze --json` output and earlier runs mean the same everywhere."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from carbon_callbacks.analysis.threshold import resolve_threshold
from carbon_callbacks.errors import ConfigError


def test_numbers_pass_through() -> None:
    assert resolve_threshold(None) == (None, {})
    assert resolve_threshold(0.5) == (0.5, {})
    assert resolve_threshold("0.25") == (0.25, {})


@pytest.mark.parametrize("bad", [-1.0, float("inf"), float("nan"), True])
def test_bad_numbers_are_refused(bad: object) -> None:
    with pytest.raises(ConfigError, match="threshold="):
        resolve_threshold(bad)  # type: ignore[arg-type]


def test_threshold_files(tmp_path: Path) -> None:
    plain = tmp_path / "t.txt"
    plain.write_text("1.5\n")
    small = tmp_path / "t.json"
    small.write_text(json.dumps({"threshold": 0.25}))
    analyzed = tmp_path / "analyze.json"
    analyzed.write_text(json.dumps({"epochs": 10, "suggested_threshold": {"value": 3.0, "unit": "WER per kWh"}}))
    assert resolve_threshold(plain)[0] == 1.5
    assert resolve_threshold(small)[0] == 0.25
    assert resolve_threshold(analyzed)[0] == 3.0


def test_unusable_files_name_the_problem(tmp_path: Path) -> None:
    garbage = tmp_path / "g.json"
    garbage.write_text('{"rate": 1}')
    with pytest.raises(ConfigError, match="no threshold"):
        resolve_threshold(garbage)
    broken = tmp_path / "b.json"
    broken.write_text("{")
    with pytest.raises(ConfigError, match="not valid JSON"):
        resolve_threshold(broken)
    with pytest.raises(ConfigError, match="neither a number nor an existing"):
        resolve_threshold(tmp_path / "missing")


def test_an_earlier_run_gives_its_validated_suggestion(tmp_path: Path) -> None:
    wer = [80, 60, 45, 35, 28, 24, 22, 21, 20.6, 20.4, 20.3, 20.3, 20.25, 20.3, 20.2, 20.25, 20.2, 20.2]
    lines = ["epoch,valid_WER,energy_kwh"] + [f"{i + 1},{w},0.5" for i, w in enumerate(wer)]
    run = tmp_path / "metrics.csv"
    run.write_text("\n".join(lines) + "\n")
    value, rule = resolve_threshold(run, metric="valid_WER", mode="min")
    assert value is not None and value >= 0
    assert "threshold" not in rule and "unit" not in rule


def test_an_unreadable_run_is_a_config_error(tmp_path: Path) -> None:
    junk = tmp_path / "train_log.txt"
    junk.write_text("nothing to see here\n")
    with pytest.raises(ConfigError, match="cannot suggest a threshold"):
        resolve_threshold(junk)
