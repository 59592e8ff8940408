"""The SpeechBrain speaker-verification recipe: EER per validation next to energy; width/depth variants."""

from __future__ import annotations

from pathlib import Path

import pytest

from carbon_callbacks.ledger import read_ledger

from .conftest import RECIPES, load_recipe

pytest.importorskip("speechbrain")

HPARAMS = RECIPES / "speechbrain/speaker_verification/hparams/train.yaml"


def test_eer_is_logged_each_epoch_with_energy(tiny_sv: Path, tmp_path: Path) -> None:
    recipe = load_recipe("speechbrain/speaker_verification/train.py")
    recipe.main([
        str(HPARAMS), f"--data_folder={tiny_sv}", f"--output_folder={tmp_path}", "--number_of_epochs=2",
        "--batch_size=8", "--width=8", "--depth=1", "--out_n_neurons=4", "--device=cpu",
    ])
    lines = (tmp_path / "train_log.txt").read_text().splitlines()
    valid = [line for line in lines if line.startswith("epoch:")]
    assert len(valid) == 2 and all("valid EER:" in line and "energy_kWh" in line for line in valid)
    eers = [float(line.split("valid EER: ")[1].split(",")[0]) for line in valid]
    assert all(0.0 <= eer <= 100.0 for eer in eers)
    assert any("test EER" in line for line in lines)
    rows = [r for r in read_ledger(tmp_path / "energy.csv") if r.stage == "epoch"]
    assert [r.epoch for r in rows] == [1, 2] and all("valid_EER" in r.metrics for r in rows)


def test_width_and_depth_change_the_model(tmp_path: Path) -> None:
    from hyperpyyaml import load_hyperpyyaml

    sizes = {}
    for width, depth in ((8, 1), (16, 2)):
        with open(HPARAMS) as fin:
            hparams = load_hyperpyyaml(fin, {"width": width, "depth": depth, "output_folder": str(tmp_path)})
        model = hparams["embedding_model"]
        sizes[(width, depth)] = sum(p.numel() for p in model.parameters())
        assert model.conv1.out_channels == width and len(model.layer1) == depth
    assert sizes[(8, 1)] < sizes[(16, 2)]
