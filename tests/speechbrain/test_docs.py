"""docs/speechbrain.md: its runnable hparams example runs, and every class it names exists."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

from carbon_callbacks.ledger import read_ledger
from tests.speechbrain import tiny_recipe as tr

DOC = Path(__file__).resolve().parents[2] / "docs" / "speechbrain.md"


def _example(marker: str) -> str:
    text = DOC.read_text(encoding="utf-8")
    after = text[text.index(f"<!-- example: {marker} -->"):]
    return re.search(r"```yaml\n(.*?)```", after, re.S).group(1)


def test_documented_hparams_example_runs_and_logs_energy_next_to_wer(tmp_path: Path) -> None:
    path = tmp_path / "hparams.yaml"
    path.write_text(_example("tiny-hparams"), encoding="utf-8")
    hparams = tr.load(path, {"output_folder": str(tmp_path / "out")})
    tr.run(hparams)
    lines = (tmp_path / "out" / "train_log.txt").read_text().splitlines()
    assert [line.split(",")[0] for line in lines] == ["epoch: 1", "epoch: 2", "Epoch loaded: 2"]
    assert all("energy_kWh: " in line and "CO2_kg: " in line for line in lines)
    assert all("valid WER: " in line for line in lines[:2])
    assert [r.stage for r in read_ledger(tmp_path / "out" / "energy.csv")] == [
        "epoch", "overhead", "epoch", "overhead", "test",
    ]


def test_every_documented_class_and_function_exists() -> None:
    text = DOC.read_text(encoding="utf-8")
    names = set(re.findall(r"!new:(carbon_callbacks\.[\w.]+)", text))
    names |= {f"carbon_callbacks.speechbrain.{n}" for n in re.findall(r"from carbon_callbacks\.speechbrain import (\w+)", text)}
    assert "carbon_callbacks.speechbrain.EnergyAwareEpochCounter" in names
    for name in sorted(names):
        module, _, attr = name.rpartition(".")
        assert hasattr(importlib.import_module(module), attr), name
