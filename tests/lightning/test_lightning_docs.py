"""The examples of docs/lightning.md run, the LightningCLI YAML builds the callbacks, and the documented
behaviour of a pytorch_lightning Trainer holds."""

from __future__ import annotations

import functools
import importlib
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from lightning.pytorch import Trainer

from carbon_callbacks import read_ledger
from carbon_callbacks.lightning import CarbonBudget, EnergyAwareEarlyStopping, EnergyTracker
from tests.lightning._lt_models import SpeechLikeModel, make_trainer

DOC = Path(__file__).resolve().parents[2] / "docs" / "lightning.md"
SMALL = dict(
    max_epochs=2, limit_train_batches=2, limit_val_batches=1, limit_test_batches=2, num_sanity_val_steps=0,
    enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False, accelerator="cpu", devices=1,
)


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


def test_python_examples_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    blocks = _blocks("python")
    assert len(blocks) == 4
    for index, block in enumerate(blocks):
        namespace: dict[str, Any] = {
            "model": SpeechLikeModel(),
            "Trainer": functools.partial(Trainer, default_root_dir=tmp_path / f"block{index}", **SMALL),
            "__name__": f"doc_block_{index}",
        }
        exec(compile(block, f"{DOC.name} block {index}", "exec"), namespace)
        callbacks = namespace["trainer"].callbacks if "trainer" in namespace else [namespace["tracker"]]
        for tracker in (c for c in callbacks if isinstance(c, EnergyTracker)):
            stages = [r.stage for r in read_ledger(tracker.ledger_dir / "energy.csv")]
            assert stages.count("validate") == 2 or stages == ["test"]
    usage_dir = next((tmp_path / "block0").rglob("energy.csv")).parent
    assert (usage_dir / "report.md").exists() == _report_available()


def _report_available() -> bool:
    try:
        return hasattr(importlib.import_module("carbon_callbacks.report"), "write_run_report")
    except ImportError:
        return False


def _instantiate(spec: Any) -> Any:
    """What jsonargparse does with ``class_path``/``init_args`` (enough for the callbacks of the doc)."""
    if isinstance(spec, dict) and "class_path" in spec:
        module, _, name = spec["class_path"].rpartition(".")
        kwargs = {k: _instantiate(v) for k, v in spec.get("init_args", {}).items()}
        return getattr(importlib.import_module(module), name)(**kwargs)
    return spec


def test_cli_yaml_builds_working_callbacks(tmp_path):
    (config,) = _blocks("yaml")
    trainer_config = yaml.safe_load(config)["trainer"]
    callbacks = [_instantiate(spec) for spec in trainer_config["callbacks"]]
    assert [type(c) for c in callbacks] == [EnergyTracker, EnergyAwareEarlyStopping, CarbonBudget]
    assert callbacks[1].threshold_per_unit == 0.5 and callbacks[1].rule_kwargs == {"patience": 3}
    trainer = make_trainer(tmp_path, callbacks, max_epochs=trainer_config["max_epochs"])
    trainer.fit(SpeechLikeModel())
    assert len(callbacks[1].energy_history) == 2 and len(callbacks[2].epoch_kwh) == 2


def test_lightning_cli_reads_the_yaml(tmp_path):
    pytest.importorskip("jsonargparse", reason="LightningCLI needs jsonargparse (lightning[pytorch-extra])")
    from lightning.pytorch.cli import LightningCLI

    (config,) = _blocks("yaml")
    path = tmp_path / "config.yaml"
    path.write_text(config)
    cli = LightningCLI(
        SpeechLikeModel, run=False, args=["--config", str(path), f"--trainer.default_root_dir={tmp_path}"],
        trainer_defaults={k: v for k, v in SMALL.items() if k != "max_epochs"}, save_config_callback=None,
    )
    found = {type(c) for c in cli.trainer.callbacks}
    assert {EnergyTracker, EnergyAwareEarlyStopping, CarbonBudget} <= found
    cli.trainer.fit(cli.model)
    assert cli.trainer.early_stopping_callback is not None


def test_pytorch_lightning_trainer_runs_the_hooks_but_does_not_recognise_the_types(tmp_path):
    legacy = pytest.importorskip("pytorch_lightning")
    from pytorch_lightning.demos.boring_classes import BoringModel

    from carbon_callbacks import ConstantPower

    tracker = EnergyTracker(meter=ConstantPower(device_w=1.0), intensity=1.0, report=False)
    stopper = EnergyAwareEarlyStopping("val_loss", strict=False, energy_rule=False)
    trainer = legacy.Trainer(default_root_dir=tmp_path, callbacks=[tracker, stopper], logger=False, **SMALL)
    with pytest.warns(UserWarning, match="only lightning.pytorch is supported"):
        trainer.fit(BoringModel())
    assert trainer.early_stopping_callback is None
    stages = [r.stage for r in read_ledger(tracker.ledger_dir / "energy.csv")]
    assert stages == ["train", "validate", "train", "validate", "train"]
