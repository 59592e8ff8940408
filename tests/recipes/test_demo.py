"""recipes/demo.py end to end on tiny data: both runs, the analyzer's outputs and the one-sentence verdict."""

from __future__ import annotations

from pathlib import Path

import pytest

from carbon_callbacks.ledger import read_ledger

from .conftest import load_recipe

pytest.importorskip("lightning")


def test_demo_trains_twice_analyses_and_states_the_saving(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    demo = load_recipe("demo.py")
    assert demo.main([
        "--out", str(tmp_path), "--epochs", "2", "--n-train", "16", "--n-eval", "4", "--batch-size", "8",
        "--threads", "1", "--accelerator", "cpu",
    ]) == 0
    out = capsys.readouterr().out
    assert "4/4" in out and "Energy-aware early stopping ended after" in out and "WER points given up" in out
    full = tmp_path / "runs" / "full_run" / "version_0"
    assert len({r.epoch for r in read_ledger(full / "energy.csv")}) >= 2
    assert (full / "report.md").exists()
    assert list((tmp_path / "figures").glob("*.png"))
    assert (tmp_path / "runs" / "energy_aware_stop" / "version_0" / "energy.csv").exists()
