"""A run killed with SIGKILL mid-epoch and resumed from its last checkpoint in a new process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from carbon_callbacks import read_ledger
from carbon_callbacks.ledger import OPEN_FILENAME
from tests.lightning._lt_crash_run import DEVICE_W, HOST_W
from tests.lightning._lt_models import KILL_ENV

REPO = Path(__file__).resolve().parents[2]


def _run(root: Path, *args: str, kill_at: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != KILL_ENV}
    if kill_at:
        env[KILL_ENV] = kill_at
    command = [sys.executable, "-m", "tests.lightning._lt_crash_run", str(root), *args]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def crashed_and_resumed(tmp_path_factory):
    root = tmp_path_factory.mktemp("crash")
    first = _run(root, kill_at="2:2")
    assert first.returncode == -signal.SIGKILL, first.stderr[-2000:]
    assert (root / "ckpt" / "last.ckpt").exists() and not (root / "result.json").exists()
    ledger_dir = root / "logs" / "version_0"
    assert (ledger_dir / OPEN_FILENAME).exists()  # the heartbeat of the window the kill cut short
    second = _run(root, "--resume")
    assert second.returncode == 0, second.stderr[-3000:]
    return root, json.loads((root / "result.json").read_text())


def test_the_resumed_attempt_keeps_writing_the_runs_ledger(crashed_and_resumed):
    root, result = crashed_and_resumed
    assert Path(result["log_dir"]).name == "version_1"  # the CSVLogger starts a new version on resume
    assert Path(result["ledger_dir"]).name == "version_0"  # the ledger follows the run
    assert not (Path(result["log_dir"]) / "energy.csv").exists()
    assert not (Path(result["ledger_dir"]) / OPEN_FILENAME).exists()


def test_ledger_rows_of_both_attempts_and_the_aborted_window(crashed_and_resumed):
    root, result = crashed_and_resumed
    rows = read_ledger(Path(result["ledger_dir"]) / "energy.csv")
    assert [(r.attempt, r.epoch, r.stage, r.status) for r in rows] == [
        (1, 0, "sanity", "complete"),
        (1, 0, "train", "complete"),
        (1, 0, "validate", "complete"),
        (1, 1, "train", "complete"),
        (1, 1, "validate", "complete"),
        (1, 2, "train", "aborted"),
        (2, 2, "sanity", "complete"),
        (2, 2, "train", "complete"),
        (2, 2, "validate", "complete"),
        (2, 3, "train", "complete"),
        (2, 3, "validate", "complete"),
        (2, 3, "train", "complete"),
    ]
    assert len({r.run_id for r in rows}) == 1
    aborted = rows[5]
    assert aborted.energy_kwh > 0 and aborted.estimated and "crashed" in aborted.note
    assert aborted.it_energy_kwh * 3.6e6 == pytest.approx((DEVICE_W + HOST_W) * aborted.duration_s, rel=0.05)


def test_energy_after_the_last_checkpoint_is_counted_once(crashed_and_resumed):
    root, result = crashed_and_resumed
    rows = read_ledger(Path(result["ledger_dir"]) / "energy.csv")
    assert result["attempt"] == 2
    assert result["totals_kwh"] == pytest.approx(sum(r.energy_kwh for r in rows), rel=1e-12)
