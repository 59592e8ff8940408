#!/usr/bin/env python3
"""CTC ASR on characters with SpeechBrain, with energy and CO2 per epoch next to the WER.

The energy accounting is entirely in ``hparams/train.yaml`` (``energy_tracker``, ``train_logger``,
``epoch_counter`` and the ``energy`` recoverable); this file is a plain SpeechBrain recipe.

Run::

    python recipes/speechbrain/asr_ctc/train.py recipes/speechbrain/asr_ctc/hparams/train.yaml
    torchrun --nproc_per_node=2 recipes/speechbrain/asr_ctc/train.py \
        recipes/speechbrain/asr_ctc/hparams/train.yaml --distributed_backend=gloo --device=cpu
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import speechbrain as sb
import torch
from hyperpyyaml import load_hyperpyyaml
from speechbrain.utils.distributed import run_on_main


class ASR(sb.Brain):
    """Fbank -> encoder -> CTC; greedy decoding and WER at validation and test."""

    def compute_forward(self, batch: Any, stage: sb.Stage) -> tuple[torch.Tensor, torch.Tensor]:
        batch = batch.to(self.device)
        wavs, wav_lens = batch.sig
        feats = self.hparams.compute_features(wavs)
        feats = self.modules.normalize(feats, wav_lens)
        if stage == sb.Stage.TRAIN:
            feats = self.hparams.time_drop(self.hparams.freq_drop(feats))
        encoded = self.modules.enc(feats, lengths=wav_lens)
        return self.hparams.log_softmax(self.modules.ctc_lin(encoded)), wav_lens

    def compute_objectives(self, predictions: tuple[torch.Tensor, torch.Tensor], batch: Any, stage: sb.Stage) -> torch.Tensor:
        p_ctc, wav_lens = predictions
        tokens, token_lens = batch.tokens
        loss = self.hparams.ctc_cost(p_ctc, tokens, wav_lens, token_lens)
        if stage != sb.Stage.TRAIN:
            sequences = sb.decoders.ctc_greedy_decode(p_ctc, wav_lens, blank_id=self.hparams.blank_index)
            predicted = ["".join(self.tokenizer.decode_ndim(seq)).split() for seq in sequences]
            self.wer_metric.append(batch.id, predicted, [wrd.split() for wrd in batch.wrd])
        return loss

    def on_stage_start(self, stage: sb.Stage, epoch: int | None = None) -> None:
        if stage != sb.Stage.TRAIN:
            self.wer_metric = self.hparams.wer_computer()

    def on_stage_end(self, stage: sb.Stage, stage_loss: float, epoch: int | None = None) -> None:
        stage_stats = {"loss": stage_loss}
        if stage == sb.Stage.TRAIN:
            self.train_stats = stage_stats
            return
        stage_stats["WER"] = self.wer_metric.summarize("error_rate")
        if stage == sb.Stage.VALID:
            lr = self.optimizer.param_groups[0]["lr"]
            self.hparams.train_logger.log_stats(
                stats_meta={"epoch": epoch, "lr": lr}, train_stats=self.train_stats, valid_stats=stage_stats,
            )
            self.checkpointer.save_and_keep_only(meta={"WER": stage_stats["WER"]}, min_keys=["WER"])
        else:
            self.hparams.train_logger.log_stats(
                stats_meta={"Epoch loaded": self.hparams.epoch_counter.current}, test_stats=stage_stats,
            )
            if sb.utils.distributed.if_main_process():
                with open(self.hparams.test_wer_file, "w", encoding="utf-8") as out:
                    self.wer_metric.write_stats(out)


def prepare_data(hparams: dict[str, Any]) -> None:
    """Generate the synthetic digits into ``data_folder`` unless the manifests exist (main process only)."""
    csvs = [Path(hparams[k]) for k in ("train_csv", "valid_csv", "test_csv")]
    if all(p.exists() for p in csvs) or hparams["synth_n_train"] <= 0:
        return
    from carbon_callbacks.synth import generate_asr

    generate_asr(
        hparams["data_folder"], n_train=hparams["synth_n_train"], n_valid=hparams["synth_n_valid"],
        n_test=hparams["synth_n_test"], seed=hparams["seed"],
    )


def dataio_prepare(hparams: dict[str, Any]) -> tuple[Any, Any, Any, sb.dataio.encoder.CTCTextEncoder]:
    """Datasets with the audio and character pipelines, and the (fixed) character encoder."""
    replacements = {"data_root": hparams["data_folder"]}
    load = sb.dataio.dataset.DynamicItemDataset.from_csv
    train = load(csv_path=hparams["train_csv"], replacements=replacements)
    train = train.filtered_sorted(
        sort_key="duration", reverse=hparams["sorting"] == "descending",
        key_max_value={"duration": hparams["max_duration_s"]},
    ) if hparams["sorting"] != "random" else train
    if hparams["sorting"] != "random":
        hparams["train_dataloader_opts"]["shuffle"] = False
    valid = load(csv_path=hparams["valid_csv"], replacements=replacements).filtered_sorted(sort_key="duration")
    test = load(csv_path=hparams["test_csv"], replacements=replacements).filtered_sorted(sort_key="duration")
    datasets = [train, valid, test]

    encoder = sb.dataio.encoder.CTCTextEncoder()
    encoder.insert_blank(index=hparams["blank_index"])
    encoder.update_from_iterable(hparams["characters"], sequence_input=False)
    encoder.expect_len(hparams["output_neurons"])
    allowed = set(hparams["characters"])

    @sb.utils.data_pipeline.takes("wav")
    @sb.utils.data_pipeline.provides("sig")
    def audio_pipeline(wav: str) -> torch.Tensor:
        return sb.dataio.dataio.read_audio(wav)

    @sb.utils.data_pipeline.takes("wrd")
    @sb.utils.data_pipeline.provides("wrd", "tokens")
    def text_pipeline(wrd: str) -> Any:
        text = " ".join("".join(c for c in wrd.upper() if c in allowed).split())
        yield text
        yield encoder.encode_sequence_torch(list(text))

    sb.dataio.dataset.add_dynamic_item(datasets, audio_pipeline)
    sb.dataio.dataset.add_dynamic_item(datasets, text_pipeline)
    sb.dataio.dataset.set_output_keys(datasets, ["id", "sig", "wrd", "tokens"])
    return train, valid, test, encoder


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
    train, valid, test, encoder = dataio_prepare(hparams)
    brain = ASR(
        modules=hparams["modules"], opt_class=hparams["opt_class"], hparams=hparams, run_opts=run_opts,
        checkpointer=hparams["checkpointer"],
    )
    brain.tokenizer = encoder
    brain.fit(
        brain.hparams.epoch_counter, train, valid,
        train_loader_kwargs=hparams["train_dataloader_opts"], valid_loader_kwargs=hparams["valid_dataloader_opts"],
    )
    brain.evaluate(test, min_key="WER", test_loader_kwargs=hparams["test_dataloader_opts"])


if __name__ == "__main__":
    main(sys.argv[1:])
