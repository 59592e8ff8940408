"""The Lightning CTC recipe under LightningCLI with its config.yaml: metrics, ledger, energy callbacks."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from carbon_callbacks.ledger import read_ledger

from .conftest import RECIPES, load_recipe

pytest.importorskip("lightning")


def test_two_epochs_log_val_wer_and_write_the_ledger(tiny_asr: Path, tmp_path: Path) -> None:
    train = load_recipe("lightning/asr_ctc/train.py")
    cli = train.main([
        "fit", "--config", str(RECIPES / "lightning/asr_ctc/config.yaml"),
        "--data.data_dir", str(tiny_asr), "--data.batch_size", "8",
        "--trainer.max_epochs", "2", "--trainer.enable_progress_bar", "false",
        "--trainer.logger.init_args.save_dir", str(tmp_path),
        "--trainer.default_root_dir", str(tmp_path),
    ])
    trainer = cli.trainer
    assert trainer.current_epoch == 2
    log_dir = Path(trainer.log_dir)
    metrics = pd.read_csv(log_dir / "metrics.csv")
    wer = metrics["val_wer"].dropna()
    assert len(wer) == 2 and ((wer >= 0) & (wer <= 500)).all()
    rows = read_ledger(log_dir / "energy.csv")
    epochs = {row.epoch for row in rows if row.status == "complete"}
    assert {0, 1} <= epochs
    assert sum(row.energy_kwh for row in rows) > 0
    assert any("val_wer" in row.metrics for row in rows)
    names = [type(cb).__name__ for cb in trainer.callbacks]
    assert "EnergyTracker" in names and "EnergyAwareEarlyStopping" in names


def test_model_is_about_150k_parameters_and_decodes_ctc() -> None:
    train = load_recipe("lightning/asr_ctc/train.py")
    model = train.CtcAsr()
    assert 120_000 < sum(p.numel() for p in model.parameters()) < 200_000
    tok = train.CharTokenizer()
    ids = [0, *tok.encode("O"), *tok.encode("O"), 0, *tok.encode("N"), *tok.encode("E"), 0, *tok.encode(" "), 0]
    assert tok.decode_ctc(ids) == "ONE "
    assert train.word_errors("ONE TWO", "ONE THREE TWO") == (1, 3)
