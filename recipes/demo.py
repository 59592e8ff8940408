#!/usr/bin/env python3
"""The carbon-callbacks demo: what did the last epochs of a speech model cost, and what would stopping save?

1. generates spoken-digit data with espeak-ng (no download);
2. trains the Lightning CTC recipe for ~45 epochs with ``EnergyTracker`` (energy per epoch next to ``val_wer``);
3. runs the analyzer (``carbon-callbacks analyze`` and ``plot``) on that run;
4. trains again (same seed) with ``EnergyAwareEarlyStopping`` using the threshold the analyzer suggests for the
   first run (``--max-wer-loss``, 5% relative by default), and says in one sentence how much energy that saved
   and how much WER it gave up.

Run: ``python recipes/demo.py --out demo_output`` (about 5-10 minutes on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Sequence

HERE = Path(__file__).resolve().parent
RECIPE = HERE / "lightning" / "asr_ctc" / "train.py"


@dataclass(frozen=True)
class RunSummary:
    """What one training run cost and achieved."""

    log_dir: Path
    epochs: int
    energy_kwh: float
    co2_kg: float
    estimated: bool
    best_wer: float
    best_epoch: int


def _recipe() -> ModuleType:
    spec = importlib.util.spec_from_file_location("asr_ctc_recipe", RECIPE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _say(text: str) -> None:
    print(f"\n=== {text}", flush=True)


def _train(args: argparse.Namespace, name: str, callbacks: list[Any]) -> RunSummary:
    import lightning.pytorch as pl
    from lightning.pytorch.loggers import CSVLogger

    recipe = _recipe()
    pl.seed_everything(args.seed, verbose=False)
    data = recipe.AsrDataModule(data_dir=str(Path(args.out) / "data"), batch_size=args.batch_size, synth_n_train=0)
    trainer = pl.Trainer(
        max_epochs=args.epochs, accelerator=args.accelerator, devices=1, num_sanity_val_steps=0,
        logger=CSVLogger(str(Path(args.out) / "runs"), name=name), callbacks=[*callbacks, _epoch_lines(args.epochs)],
        enable_checkpointing=False, log_every_n_steps=10, gradient_clip_val=5.0, enable_model_summary=False,
    )
    trainer.fit(recipe.CtcAsr(lr_decay=args.lr_decay), data)
    return _summarise(Path(trainer.log_dir), trainer.current_epoch)


def _epoch_lines(total: int) -> Any:
    """A callback printing one line per epoch (val_wer, energy so far), so progress shows in a log file too."""
    from lightning.pytorch.callbacks import Callback

    class EpochLines(Callback):
        def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
            if trainer.sanity_checking:
                return
            logged = trainer.callback_metrics
            wer = float(logged.get("val_wer", math.nan))
            wh = float(logged.get("energy/total_wh", math.nan))
            print(f"  epoch {trainer.current_epoch + 1:>2}/{total}: val_wer {wer:5.1f}%, energy so far {wh:.3f} Wh",
                  flush=True)

    return EpochLines()


def _summarise(log_dir: Path, epochs: int) -> RunSummary:
    """Totals and best WER of a finished run, read back by the analyzer from its ledger."""
    import numpy as np

    from carbon_callbacks.analysis.readers import load_run
    from carbon_callbacks.analysis.stats import totals

    run = load_run(log_dir)
    total = totals(run)
    wer = run.metric("val_wer")
    best = int(np.nanargmin(wer))
    return RunSummary(
        log_dir=log_dir, epochs=epochs, energy_kwh=total.energy_kwh, co2_kg=total.co2_kg,
        estimated=run.energy_is_estimated, best_wer=float(wer[best]), best_epoch=int(run.epochs[best]),
    )


def _analyze(run: RunSummary, out: Path) -> None:
    cli = [sys.executable, "-m", "carbon_callbacks.cli"]
    subprocess.run([*cli, "analyze", str(run.log_dir)], check=False)
    subprocess.run([*cli, "plot", str(run.log_dir), "--out", str(out / "figures")], check=False)


def _stopper(first: RunSummary, max_loss_relative: float) -> Any:
    """EnergyAwareEarlyStopping with the threshold the analyzer suggests for the first run.

    The suggestion is the threshold that, replayed on the first run, saves the most energy while losing at most
    ``max_loss_relative`` of its best WER; when none would have stopped early, the rule's default is used.
    """
    from carbon_callbacks.analysis.readers import load_run
    from carbon_callbacks.analysis.replay import suggest
    from carbon_callbacks.lightning import EnergyAwareEarlyStopping

    suggestion = suggest(load_run(first.log_dir), max_loss_relative=max_loss_relative, metric="val_wer", mode="min")
    print(suggestion.note)
    if not suggestion.value > 0:
        print("no threshold would have stopped the first run early within that loss: using the rule's default")
        return EnergyAwareEarlyStopping(monitor="val_wer", mode="min")
    rule = {k: v for k, v in dict(suggestion.rule).items() if k not in ("threshold", "unit", "mode")}
    print(f"threshold: {suggestion.value:.4g} {suggestion.unit_label} (rule settings {rule})")
    return EnergyAwareEarlyStopping(monitor="val_wer", mode="min", threshold=suggestion.value, rule_kwargs=rule)


def _wh(kwh: float) -> str:
    return f"{kwh * 1000:.2f} Wh"


def _verdict(full: RunSummary, stopped: RunSummary) -> str:
    saved = 1.0 - stopped.energy_kwh / full.energy_kwh if full.energy_kwh > 0 else math.nan
    given_up = stopped.best_wer - full.best_wer
    label = " (estimated: no hardware energy counter is readable here)" if full.estimated else ""
    return (
        f"Energy-aware early stopping ended after {stopped.epochs} of {full.epochs} epochs and used "
        f"{_wh(stopped.energy_kwh)} instead of {_wh(full.energy_kwh)}{label}, saving {saved:.0%} of the energy "
        f"for a best WER of {stopped.best_wer:.1f}% instead of {full.best_wer:.1f}% "
        f"({given_up:+.1f} WER points given up)."
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="demo_output", help="output folder (data, runs, figures)")
    parser.add_argument("--epochs", type=int, default=45, help="epochs of the full run")
    parser.add_argument("--n-train", type=int, default=1000, help="synthetic training utterances")
    parser.add_argument("--n-eval", type=int, default=200, help="validation (and test) utterances")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (1 on a busy machine)")
    parser.add_argument("--accelerator", default="auto", help="auto, cpu or gpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr-decay", type=float, default=0.9, help="learning rate x this after every epoch")
    parser.add_argument(
        "--max-wer-loss", type=float, default=0.05,
        help="relative WER loss the suggested threshold may cost on the first run (0.05 = 5%%)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the four steps; returns 0."""
    args = _parser().parse_args(argv)
    import torch

    from carbon_callbacks.lightning import EnergyTracker
    from carbon_callbacks.synth import generate_asr

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    data_dir = out / "data"
    _say(f"1/4 synthetic speech: {args.n_train} training utterances of spoken digits -> {data_dir}")
    if (data_dir / "train.csv").exists():
        print("(already there)")
    else:
        data = generate_asr(data_dir, n_train=args.n_train, n_valid=args.n_eval, n_test=args.n_eval, seed=args.seed)
        print(f"{sum(data.utterances.values())} utterances in {data.elapsed_s:.1f} s")

    _say(f"2/4 training the CTC model for {args.epochs} epochs with EnergyTracker")
    full = _train(args, "full_run", [EnergyTracker(meter="auto", progress_bar=True)])
    print(f"best val_wer {full.best_wer:.1f}% at epoch {full.best_epoch}; energy {_wh(full.energy_kwh)}")

    _say("3/4 analysing the run (carbon-callbacks analyze / plot)")
    _analyze(full, out)
    print(f"report: {full.log_dir / 'report.md'}\nledger: {full.log_dir / 'energy.csv'}\nfigures: {out / 'figures'}")

    _say("4/4 training again with EnergyAwareEarlyStopping (threshold suggested by the first run)")
    stopper = _stopper(full, args.max_wer_loss)
    stopped = _train(args, "energy_aware_stop", [EnergyTracker(meter="auto", progress_bar=True), stopper])

    _say("result")
    print(_verdict(full, stopped))
    return 0


if __name__ == "__main__":
    sys.exit(main())
