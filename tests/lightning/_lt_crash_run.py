"""A training run for the crash test: ``python -m tests.lightning._lt_crash_run ROOT [--resume]``.

With ``CARBON_CALLBACKS_TEST_KILL_AT=epoch:batch`` in the environment the process SIGKILLs itself in that
training step. At a normal end it writes ``ROOT/result.json`` with the tracker's totals.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from lightning.pytorch.callbacks import ModelCheckpoint

from carbon_callbacks import ConstantPower
from carbon_callbacks.lightning import EnergyTracker
from tests.lightning._lt_models import SpeechLikeModel, make_trainer

DEVICE_W, HOST_W = 20.0, 5.0


def main(root: Path, resume: bool) -> None:
    tracker = EnergyTracker(
        meter=ConstantPower(device_w=DEVICE_W, host_w=HOST_W), intensity=300.0, heartbeat_s=0.001, report=False
    )
    checkpoint = ModelCheckpoint(dirpath=root / "ckpt", save_last=True, save_top_k=-1, filename="{epoch}")
    trainer = make_trainer(root, [tracker, checkpoint], enable_checkpointing=True, max_epochs=4)
    trainer.fit(SpeechLikeModel(sleep_s=0.005), ckpt_path=root / "ckpt" / "last.ckpt" if resume else None)
    result = {
        "totals_kwh": tracker.accountant.totals.energy_kwh,
        "attempt": tracker.accountant.attempt,
        "ledger_dir": str(tracker.ledger_dir),
        "log_dir": str(trainer.log_dir),
    }
    (root / "result.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main(Path(sys.argv[1]), "--resume" in sys.argv[2:])
