"""Real processes: a SIGKILLed run resumed from SpeechBrain's checkpointer, and 2 ranks under torchrun (gloo, CPU)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from carbon_callbacks.ledger import read_ledger
from tests._torchrun import run_torchrun
from tests.speechbrain import tiny_recipe as tr

SCRIPT = Path(tr.__file__)


def _run(args: list[str], cwd: Path, timeout_s: float = 120.0) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(SCRIPT.parents[2])}
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout_s)


def _total_in_line(line: str) -> float:
    return float(re.search(r"total_energy_kWh: ([-+0-9.e]+)", line).group(1))


def test_sigkilled_run_resumes_and_the_ledger_keeps_every_window(tmp_path: Path) -> None:
    tr.hparams_yaml(tmp_path, heartbeat_s=0.001)
    base = [sys.executable, str(SCRIPT), "hparams.yaml", "--device=cpu", "--noprogressbar", "--code_path=True",
            "--number_of_epochs=3", "--wer_schedule=[30, 20, 25]"]
    killed = _run(base + ["--kill_at_epoch=2"], tmp_path)
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert (tmp_path / "out" / "energy.open.json").exists()
    resumed = _run(base, tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]

    rows = read_ledger(tmp_path / "out" / "energy.csv")
    assert [(r.attempt, r.epoch, r.stage, r.status) for r in rows] == [
        (1, 1, "train", "complete"),
        (1, 1, "validate", "complete"),
        (1, 1, "overhead", "complete"),
        (1, 2, "train", "aborted"),  # the heartbeat's last state of the killed window
        (2, 2, "train", "complete"),
        (2, 2, "validate", "complete"),
        (2, 2, "overhead", "complete"),
        (2, 3, "train", "complete"),
        (2, 3, "validate", "complete"),
        (2, 3, "overhead", "complete"),
        (2, 2, "test", "complete"),  # evaluate() loads the best epoch (2: WER 20)
    ]
    assert len({r.run_id for r in rows}) == 1
    assert rows[3].energy_kwh > 0 and "crashed" in rows[3].note
    assert not (tmp_path / "out" / "energy.open.json").exists()
    lines = (tmp_path / "out" / "train_log.txt").read_text().splitlines()
    assert [line.split(",")[0] for line in lines] == ["epoch: 1", "epoch: 2", "epoch: 3", "Epoch loaded: 2"]
    # totals after epoch 2 (resumed) include the aborted window: every row up to epoch 2's validation
    assert _total_in_line(lines[1]) == pytest.approx(sum(r.energy_kwh for r in rows[:6]), rel=0.01)
    assert json.loads((tmp_path / "out" / "rank0.json").read_text())["total_kwh"] == pytest.approx(
        sum(r.energy_kwh for r in rows), rel=1e-9
    )


def test_two_ranks_under_torchrun_sum_devices_count_the_host_once_and_stop_together(tmp_path: Path) -> None:
    tr.hparams_yaml(tmp_path)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(SCRIPT.parents[2])}
    result = run_torchrun(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(SCRIPT),
         "hparams.yaml", "--distributed_backend=gloo", "--device=cpu", "--noprogressbar",
         "--number_of_epochs=3", "--max_kwh=1e-12", "--code_path_too=True"],
        cwd=tmp_path, env=env, timeout_s=240.0, output=tmp_path / "out",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = tmp_path / "out"
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    # YAML path: the budget is crossed after epoch 1; rank 0 decides, both ranks leave fit() together
    assert [r["stopped_after"] for r in ranks] == [1, 1]
    assert ranks[0]["stop_reason"] == ranks[1]["stop_reason"] != ""
    assert ranks[0]["stop_reason"].startswith("energy budget reached")
    assert ranks[0]["total_kwh"] == ranks[1]["total_kwh"]
    rows = read_ledger(out / "energy.csv")
    assert [(r.epoch, r.stage) for r in rows] == [(1, "epoch"), (1, "overhead"), (1, "test")]
    lines = (out / "train_log.txt").read_text().splitlines()
    assert len(lines) == 2 and "energy_kWh" in lines[0] and "valid WER" in lines[0]

    code_rows = read_ledger(out / "code" / "energy.csv")
    assert [(r.epoch, r.stage) for r in code_rows] == [
        (1, "train"), (1, "validate"), (1, "overhead"), (2, "train"), (2, "validate"), (2, "overhead"), (2, "test"),
    ]
    for run_rows in (rows, code_rows):
        assert all((row.world_size, row.ranks) == (2, 2) for row in run_rows)
        # ConstantPower(100 W device, 50 W host): 2 devices and 1 host -> gpu/cpu = 4 (not 2, not 8); per run,
        # since a window of a few ms may start a little apart on the two ranks
        ratio = sum(r.gpu_kwh for r in run_rows) / sum(r.cpu_kwh for r in run_rows)
        assert 3.3 < ratio < 4.8, ratio
    assert len((out / "code" / "train_log.txt").read_text().splitlines()) == 3
