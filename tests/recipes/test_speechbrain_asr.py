"""The SpeechBrain CTC recipe: the YAML energy path, WER next to energy, DDP with two gloo processes."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from carbon_callbacks.ledger import read_ledger
from tests._torchrun import run_torchrun

from .conftest import REPO, RECIPES, load_recipe

pytest.importorskip("speechbrain")

HPARAMS = RECIPES / "speechbrain/asr_ctc/hparams/train.yaml"


def _overrides(data: Path, out: Path, epochs: int) -> list[str]:
    return [
        f"--data_folder={data}", f"--output_folder={out}", f"--number_of_epochs={epochs}", "--batch_size=8",
        "--stop_rule=none", "--device=cpu",
    ]


def _valid_wers(train_log: Path) -> list[float]:
    lines = [line for line in train_log.read_text().splitlines() if line.startswith("epoch:")]
    return [float(line.split("valid WER: ")[1].split(",")[0]) for line in lines]


def test_two_epochs_write_wer_and_energy(tiny_asr: Path, tmp_path: Path) -> None:
    recipe = load_recipe("speechbrain/asr_ctc/train.py")
    recipe.main([str(HPARAMS), *_overrides(tiny_asr, tmp_path, 2)])
    log = (tmp_path / "train_log.txt").read_text()
    assert len(_valid_wers(tmp_path / "train_log.txt")) == 2
    assert "energy_kWh" in log and "test WER" in log
    rows = [r for r in read_ledger(tmp_path / "energy.csv") if r.stage == "epoch"]
    assert [r.epoch for r in rows] == [1, 2]
    assert all(r.energy_kwh > 0 and "valid_WER" in r.metrics for r in rows)
    assert (tmp_path / "wer_test.txt").exists()


def test_ddp_two_processes_over_gloo(tiny_asr: Path, tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    out = tmp_path / "out"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        str(RECIPES / "speechbrain/asr_ctc/train.py"), str(HPARAMS), *_overrides(tiny_asr, out, 1),
        "--distributed_backend=gloo",
    ]
    done = run_torchrun(command, cwd=tmp_path, env=env, timeout_s=240, output=out)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [r for r in read_ledger(out / "energy.csv") if r.stage == "epoch"]
    assert [r.epoch for r in rows] == [1]
    assert rows[0].world_size == 2 and rows[0].energy_kwh > 0
    assert len(_valid_wers(out / "train_log.txt")) == 1
