"""A tiny SpeechBrain recipe shaped like LibriSpeech/ASR/CTC/train.py: a linear "ASR" on random tensors (CPU).

Its ``on_stage_end`` logs ``valid WER`` through ``hparams.train_logger`` and saves a checkpoint with
``min_keys=["WER"]``, without calling ``super()`` (as real recipes). Run it as a script (subprocess, torchrun):

    python tiny_recipe.py hparams.yaml [--distributed_backend=gloo --device=cpu] [--number_of_epochs=4]

``hparams_yaml`` writes the hparams files the tests use (YAML path, plain SpeechBrain, missing recoverable).
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import speechbrain as sb
import torch
from hyperpyyaml import load_hyperpyyaml

from carbon_callbacks.speechbrain import with_energy

BASE_YAML = """\
seed: 3
__set_seed: !apply:torch.manual_seed [!ref <seed>]
output_folder: {out}
save_folder: !ref <output_folder>/save
train_log: !ref <output_folder>/train_log.txt
number_of_epochs: 3
max_kwh: null
kill_at_epoch: 0
code_path: False
code_path_too: False
wer_schedule: null
n_train: 32
n_valid: 16
n_test: 12
batch_size: 8

model: !new:torch.nn.Linear
    in_features: 8
    out_features: 4
modules:
    model: !ref <model>
opt_class: !name:torch.optim.SGD
    lr: 0.1
"""

ENERGY_YAML = """\
energy_tracker: !new:carbon_callbacks.speechbrain.EnergyTracker
    meter: !new:carbon_callbacks.meters.ConstantPower
        device_w: 100.0
        host_w: 50.0
    intensity: 400.0
    report: False
    heartbeat_s: {heartbeat_s}
train_logger: !new:carbon_callbacks.speechbrain.EnergyTrainLogger
    save_file: !ref <train_log>
    tracker: !ref <energy_tracker>
epoch_counter: !new:carbon_callbacks.speechbrain.EnergyAwareEpochCounter
    limit: !ref <number_of_epochs>
    tracker: !ref <energy_tracker>
    max_kwh: !ref <max_kwh>
    rule: {rule}
"""

PLAIN_YAML = """\
train_logger: !new:speechbrain.utils.train_logger.FileTrainLogger
    save_file: !ref <train_log>
epoch_counter: !new:speechbrain.utils.epoch_loop.EpochCounter
    limit: !ref <number_of_epochs>
"""

CHECKPOINTER_YAML = """\
checkpointer: !new:speechbrain.utils.checkpoints.Checkpointer
    checkpoints_dir: !ref <save_folder>
    allow_partial_load: {partial}
    recoverables:
        model: !ref <model>
        counter: !ref <epoch_counter>
"""


def hparams_yaml(
    directory: Path,
    *,
    energy: bool = True,
    recoverable: bool = True,
    rule: str = "none",
    heartbeat_s: float = 60.0,
    allow_partial_load: bool = False,
    name: str = "hparams.yaml",
) -> Path:
    """Write an hparams file into ``directory`` and return its path (outputs go to ``directory/out``)."""
    text = BASE_YAML.format(out=directory / "out")
    text += ENERGY_YAML.format(rule=rule, heartbeat_s=heartbeat_s) if energy else PLAIN_YAML
    text += CHECKPOINTER_YAML.format(partial=allow_partial_load)
    if energy and recoverable:
        text += "        energy: !ref <energy_tracker>\n"
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


class TinyASR(sb.Brain):
    """Linear classifier; the "WER" is its error rate in percent (or ``hparams.wer_schedule[epoch - 1]``)."""

    def compute_forward(self, batch: Any, stage: sb.Stage) -> torch.Tensor:
        inputs, _ = batch
        return self.modules.model(inputs.to(self.device))

    def compute_objectives(self, predictions: torch.Tensor, batch: Any, stage: sb.Stage) -> torch.Tensor:
        _, targets = batch
        targets = targets.to(self.device)
        if stage != sb.Stage.TRAIN:
            self.errors.extend((predictions.argmax(-1) != targets).tolist())
        return torch.nn.functional.cross_entropy(predictions, targets)

    def on_stage_start(self, stage: sb.Stage, epoch: int | None = None) -> None:
        self.errors: list[bool] = []
        self.current_epoch = epoch
        self.batches = 0

    def on_fit_batch_end(self, batch: Any, outputs: Any, loss: Any, should_step: bool) -> None:
        self.batches += 1
        if self.hparams.kill_at_epoch == self.current_epoch and self.batches == 3:
            os.kill(os.getpid(), signal.SIGKILL)

    def on_stage_end(self, stage: sb.Stage, stage_loss: float, epoch: int | None = None) -> None:
        stats = {"loss": stage_loss}
        if stage == sb.Stage.TRAIN:
            self.train_stats = stats
            return
        wer = 100.0 * sum(self.errors) / max(1, len(self.errors))
        schedule = self.hparams.wer_schedule
        if schedule and stage == sb.Stage.VALID:
            wer = float(schedule[min(epoch, len(schedule)) - 1])
        stats["WER"] = wer
        if stage == sb.Stage.VALID:
            self.hparams.train_logger.log_stats(
                stats_meta={"epoch": epoch, "lr": 0.1},
                train_stats=self.train_stats,
                valid_stats=stats,
            )
            self.checkpointer.save_and_keep_only(meta={"WER": wer, "epoch": epoch}, min_keys=["WER"], num_to_keep=5)
        else:
            self.hparams.train_logger.log_stats(
                stats_meta={"Epoch loaded": self.hparams.epoch_counter.current},
                test_stats=stats,
            )


def datasets(hparams: dict[str, Any]) -> tuple[torch.utils.data.Dataset, ...]:
    """Fixed random tensors (the same on every rank)."""
    gen = torch.Generator().manual_seed(0)
    out = []
    for key in ("n_train", "n_valid", "n_test"):
        n = int(hparams[key])
        out.append(torch.utils.data.TensorDataset(torch.randn(n, 8, generator=gen), torch.randint(0, 4, (n,), generator=gen)))
    return tuple(out)


def run(hparams: dict[str, Any], run_opts: Any = None, brain_class: type = TinyASR, evaluate: bool = True,
        **evaluate_kwargs: Any) -> sb.Brain:
    """Train (and test) the tiny recipe; returns the Brain."""
    train, valid, test = datasets(hparams)
    loader = {"batch_size": int(hparams["batch_size"])}
    brain = brain_class(
        modules=hparams["modules"], opt_class=hparams["opt_class"], hparams=hparams,
        run_opts=run_opts if run_opts is not None else {"device": "cpu", "noprogressbar": True},
        checkpointer=hparams["checkpointer"],
    )
    brain.fit(hparams["epoch_counter"], train, valid, train_loader_kwargs=loader, valid_loader_kwargs=loader)
    brain.stopped_after = hparams["epoch_counter"].current  # evaluate() reloads the best epoch's counter
    if evaluate:
        brain.evaluate(test, min_key="WER", test_loader_kwargs=dict(loader), **evaluate_kwargs)
    return brain


def load(path: Path, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    with open(path, encoding="utf-8") as fh:
        return load_hyperpyyaml(fh, overrides or {})


def _run_and_report(hparams: dict[str, Any], run_opts: Any) -> None:
    brain_class = with_energy(TinyASR) if hparams["code_path"] else TinyASR
    brain = run(hparams, run_opts, brain_class)
    tracker = hparams.get("energy_tracker")
    rank = int(os.environ.get("RANK", 0))
    result = {
        "rank": rank,
        "stopped_after": brain.stopped_after,
        "stop_reason": getattr(hparams["epoch_counter"], "stop_reason", ""),
        "total_kwh": tracker.totals.energy_kwh if tracker is not None else None,
    }
    Path(hparams["output_folder"], f"rank{rank}.json").write_text(json.dumps(result), encoding="utf-8")


def main(argv: list[str]) -> None:
    """Script entry: parse SpeechBrain's arguments, join the process group, run, write ``rank<R>.json``.

    With ``--code_path_too=True`` a second run follows in ``<output_folder>/code`` through ``with_energy``.
    """
    hparams_file, run_opts, overrides = sb.parse_arguments(argv)
    sb.utils.distributed.ddp_init_group(run_opts)
    hparams = load(Path(hparams_file), overrides)
    _run_and_report(hparams, run_opts)
    if hparams["code_path_too"]:
        code_overrides = {"output_folder": str(Path(hparams["output_folder"]) / "code"), "code_path": True,
                          "max_kwh": None, "number_of_epochs": 2}
        _run_and_report(load(Path(hparams_file), code_overrides), run_opts)
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1:])
