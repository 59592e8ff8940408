#!/usr/bin/env python3
"""Speaker embeddings with SpeechBrain: speaker-ID training, EER on unseen speakers at every validation.

``EER`` (percent) goes into ``valid_stats``, so the energy logger writes it next to the epoch's energy. Variants
for a Pareto plot: ``--width=8 --depth=1``, ``--width=32 --depth=2`` ...

Run::

    python recipes/speechbrain/speaker_verification/train.py recipes/speechbrain/speaker_verification/hparams/train.yaml
"""

from __future__ import annotations

import sys
from typing import Any

import speechbrain as sb
import torch
from hyperpyyaml import load_hyperpyyaml
from speechbrain.utils.distributed import run_on_main

from carbon_callbacks.speechbrain import score_trials
from carbon_callbacks.synth import read_trials


class SpeakerBrain(sb.Brain):
    """Fbank -> ResNet embedding -> AAM-softmax over training speakers; EER from cosine scores at evaluation."""

    def compute_forward(self, batch: Any, stage: sb.Stage) -> torch.Tensor:
        batch = batch.to(self.device)
        wavs, lens = batch.sig
        feats = self.modules.mean_var_norm(self.modules.compute_features(wavs), lens)
        embeddings = self.modules.embedding_model(feats, lens)
        if stage == sb.Stage.TRAIN:
            return self.modules.classifier(embeddings)
        for utt_id, emb in zip(batch.id, embeddings.detach().cpu()):
            self.embeddings[utt_id] = emb
        return embeddings

    def compute_objectives(self, predictions: torch.Tensor, batch: Any, stage: sb.Stage) -> torch.Tensor:
        if stage != sb.Stage.TRAIN:
            return torch.zeros((), device=self.device)  # unseen speakers: no classification loss
        spk_ids, _ = batch.spk_id_encoded
        return self.hparams.compute_cost(predictions, spk_ids)

    def on_stage_start(self, stage: sb.Stage, epoch: int | None = None) -> None:
        self.embeddings: dict[str, torch.Tensor] = {}

    def on_stage_end(self, stage: sb.Stage, stage_loss: float, epoch: int | None = None) -> None:
        if stage == sb.Stage.TRAIN:
            self.train_stats = {"loss": stage_loss}
            return
        trials = self.trials["valid" if stage == sb.Stage.VALID else "test"]
        stage_stats = {"EER": 100.0 * score_trials(self.embeddings, trials)}
        if stage == sb.Stage.VALID:
            self.hparams.train_logger.log_stats(
                stats_meta={"epoch": epoch, "lr": self.optimizer.param_groups[0]["lr"]},
                train_stats=self.train_stats, valid_stats=stage_stats,
            )
            self.checkpointer.save_and_keep_only(meta={"EER": stage_stats["EER"]}, min_keys=["EER"])
        else:
            self.hparams.train_logger.log_stats(
                stats_meta={"Epoch loaded": self.hparams.epoch_counter.current}, test_stats=stage_stats,
            )


def prepare_data(hparams: dict[str, Any]) -> None:
    """Generate the synthetic speakers into ``data_folder`` unless the manifests exist (main process only)."""
    from pathlib import Path

    needed = [hparams["train_csv"], hparams["valid_trials"], hparams["test_trials"], *hparams["valid_csvs"], *hparams["test_csvs"]]
    if all(Path(p).exists() for p in needed) or hparams["synth_n_train_speakers"] <= 0:
        return
    from carbon_callbacks.synth import generate_sv

    generate_sv(
        hparams["data_folder"], n_train_speakers=hparams["synth_n_train_speakers"],
        utts_per_speaker=hparams["synth_utts_per_speaker"], n_valid_speakers=hparams["synth_n_valid_speakers"],
        n_test_speakers=hparams["synth_n_test_speakers"], seed=hparams["seed"],
    )


def dataio_prepare(hparams: dict[str, Any]) -> tuple[Any, Any, Any, sb.dataio.encoder.CategoricalEncoder]:
    """Training set (random crops, speaker labels) and evaluation sets (whole utterances)."""
    replacements = {"data_root": hparams["data_folder"]}
    load = sb.dataio.dataset.DynamicItemDataset.from_csv
    train = load(csv_path=hparams["train_csv"], replacements=replacements)
    valid = _union([load(csv_path=p, replacements=replacements) for p in hparams["valid_csvs"]])
    test = _union([load(csv_path=p, replacements=replacements) for p in hparams["test_csvs"]])

    encoder = sb.dataio.encoder.CategoricalEncoder()
    encoder.update_from_iterable(sorted({row["spk_id"] for row in train.data.values()}))
    if len(encoder) > hparams["out_n_neurons"]:
        raise ValueError(f"{len(encoder)} training speakers but out_n_neurons={hparams['out_n_neurons']}: raise it")
    crop = int(hparams["crop_s"] * hparams["sample_rate"])

    @sb.utils.data_pipeline.takes("wav")
    @sb.utils.data_pipeline.provides("sig")
    def train_audio(wav: str) -> torch.Tensor:
        sig = sb.dataio.dataio.read_audio(wav)
        if len(sig) <= crop:
            return torch.nn.functional.pad(sig, (0, crop - len(sig)))
        start = int(torch.randint(0, len(sig) - crop + 1, ()))
        return sig[start:start + crop]

    @sb.utils.data_pipeline.takes("wav")
    @sb.utils.data_pipeline.provides("sig")
    def eval_audio(wav: str) -> torch.Tensor:
        return sb.dataio.dataio.read_audio(wav)

    @sb.utils.data_pipeline.takes("spk_id")
    @sb.utils.data_pipeline.provides("spk_id_encoded")
    def label_pipeline(spk_id: str) -> torch.Tensor:
        return encoder.encode_sequence_torch([spk_id])

    sb.dataio.dataset.add_dynamic_item([train], train_audio)
    sb.dataio.dataset.add_dynamic_item([train], label_pipeline)
    sb.dataio.dataset.add_dynamic_item([valid, test], eval_audio)
    sb.dataio.dataset.set_output_keys([train], ["id", "sig", "spk_id_encoded"])
    sb.dataio.dataset.set_output_keys([valid, test], ["id", "sig"])
    return train, valid, test, encoder


def _union(parts: list[Any]) -> Any:
    data = {}
    for part in parts:
        data.update(part.data)
    return sb.dataio.dataset.DynamicItemDataset(data)


def main(argv: list[str]) -> None:
    """Parse, prepare, train, test."""
    hparams_file, run_opts, overrides = sb.parse_arguments(argv)
    sb.utils.distributed.ddp_init_group(run_opts)
    with open(hparams_file, encoding="utf-8") as fin:
        hparams = load_hyperpyyaml(fin, overrides)
    sb.create_experiment_directory(
        experiment_directory=hparams["output_folder"], hyperparams_to_save=hparams_file, overrides=overrides,
    )
    run_on_main(prepare_data, kwargs={"hparams": hparams})
    train, valid, test, _encoder = dataio_prepare(hparams)
    brain = SpeakerBrain(
        modules=hparams["modules"], opt_class=hparams["opt_class"], hparams=hparams, run_opts=run_opts,
        checkpointer=hparams["checkpointer"],
    )
    brain.trials = {
        split: [(t.label, t.enrol_id, t.test_id) for t in read_trials(hparams[f"{split}_trials"])]
        for split in ("valid", "test")
    }
    brain.fit(
        brain.hparams.epoch_counter, train, valid,
        train_loader_kwargs=hparams["train_dataloader_opts"], valid_loader_kwargs=hparams["eval_dataloader_opts"],
    )
    brain.evaluate(test, min_key="EER", test_loader_kwargs=hparams["eval_dataloader_opts"])


if __name__ == "__main__":
    main(sys.argv[1:])
