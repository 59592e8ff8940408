#!/usr/bin/env python3
"""CTC speech recognition with PyTorch Lightning: log-mel features -> small conv -> BiGRU -> CTC over characters.

Reads SpeechBrain-layout manifests (``ID,duration,wav,spk_id,wrd``): the synthetic digits of
``python -m carbon_callbacks.synth asr`` by default (generated on first use), or mini-LibriSpeech, LibriSpeech or
CommonVoice manifests. Logs ``val_wer`` in percent (greedy CTC decoding). Run with LightningCLI::

    python recipes/lightning/asr_ctc/train.py fit --config recipes/lightning/asr_ctc/config.yaml
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import lightning.pytorch as pl
import numpy as np
import torch
import torchaudio
from lightning.pytorch.cli import LightningCLI
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset

from carbon_callbacks.synth import generate_asr, read_manifest

__all__ = ["CHARS", "CharTokenizer", "ManifestDataset", "AsrDataModule", "CtcModel", "CtcAsr", "word_errors", "main"]

CHARS = "_ 'ABCDEFGHIJKLMNOPQRSTUVWXYZ"  # index 0 is the CTC blank; LibriSpeech's character set
SAMPLE_RATE_HZ = 16_000


class CharTokenizer:
    """Upper-case characters <-> ids; characters outside :data:`CHARS` are dropped (CommonVoice punctuation)."""

    def __init__(self, chars: str = CHARS) -> None:
        self.chars = chars
        self.index = {c: i for i, c in enumerate(chars) if i > 0}

    def encode(self, text: str) -> list[int]:
        """Ids of the characters of ``text`` (upper-cased)."""
        return [self.index[c] for c in text.upper() if c in self.index]

    def decode_ctc(self, ids: Sequence[int]) -> str:
        """Greedy CTC collapse: merge repeats, drop blanks."""
        out, previous = [], 0
        for i in ids:
            if i != previous and i != 0:
                out.append(self.chars[i])
            previous = i
        return "".join(out)


def word_errors(hypothesis: str, reference: str) -> tuple[int, int]:
    """(word edit distance, reference word count)."""
    ref = reference.split()
    return int(torchaudio.functional.edit_distance(hypothesis.split(), ref)), len(ref)


def _load_audio(path: str) -> torch.Tensor:
    import soundfile

    samples, rate_hz = soundfile.read(path, dtype="float32", always_2d=True)
    if rate_hz != SAMPLE_RATE_HZ:
        raise ValueError(f"{path}: sample rate {rate_hz} Hz, the recipe expects {SAMPLE_RATE_HZ} Hz")
    return torch.from_numpy(np.ascontiguousarray(samples[:, 0]))


class ManifestDataset(Dataset):
    """Utterances of a manifest: (waveform, token ids, transcript)."""

    def __init__(self, csv_path: str | Path, tokenizer: CharTokenizer, max_duration_s: float | None = None) -> None:
        rows = read_manifest(csv_path)
        self.rows = [r for r in rows if max_duration_s is None or r.duration_s <= max_duration_s]
        self.tokenizer = tokenizer

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, str]:
        row = self.rows[index]
        return _load_audio(row.wav), torch.tensor(self.tokenizer.encode(row.wrd), dtype=torch.long), row.wrd


def collate(batch: list[tuple[torch.Tensor, torch.Tensor, str]]) -> dict[str, Any]:
    """Pad waveforms and targets; lengths in samples and tokens."""
    wavs, tokens, texts = zip(*batch)
    return {
        "wav": nn.utils.rnn.pad_sequence(list(wavs), batch_first=True),
        "wav_lens": torch.tensor([len(w) for w in wavs]),
        "tokens": nn.utils.rnn.pad_sequence(list(tokens), batch_first=True),
        "token_lens": torch.tensor([len(t) for t in tokens]),
        "texts": list(texts),
    }


class AsrDataModule(pl.LightningDataModule):
    """Train/valid/test manifests; if ``data_dir`` has none and ``synth_n_train`` > 0, synthetic digits are made.

    Args:
        data_dir: folder with ``train.csv``, ``valid.csv``, ``test.csv`` (the synthetic generator's layout).
        train_csv, valid_csv, test_csv: explicit manifests (e.g. mini-LibriSpeech), overriding ``data_dir``.
        synth_n_train, synth_n_valid, synth_n_test, synth_seed: size and seed of generated synthetic data.
        max_duration_s: drop longer training utterances (memory).
    """

    def __init__(
        self,
        data_dir: str = "data/asr_digits",
        train_csv: str | None = None,
        valid_csv: str | None = None,
        test_csv: str | None = None,
        batch_size: int = 32,
        num_workers: int = 0,
        synth_n_train: int = 2000,
        synth_n_valid: int = 200,
        synth_n_test: int = 200,
        synth_seed: int = 0,
        max_duration_s: float | None = 20.0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        root = Path(data_dir)
        self.csv = {
            "train": Path(train_csv) if train_csv else root / "train.csv",
            "valid": Path(valid_csv) if valid_csv else root / "valid.csv",
            "test": Path(test_csv) if test_csv else root / "test.csv",
        }
        self.tokenizer = CharTokenizer()
        self.sets: dict[str, ManifestDataset] = {}

    def prepare_data(self) -> None:
        """Generate the synthetic data once (rank 0 only), unless the manifests exist."""
        hp = self.hparams
        if not all(p.exists() for p in self.csv.values()) and hp.synth_n_train > 0:
            generate_asr(
                hp.data_dir, n_train=hp.synth_n_train, n_valid=hp.synth_n_valid, n_test=hp.synth_n_test,
                seed=hp.synth_seed,
            )

    def setup(self, stage: str | None = None) -> None:
        limit = self.hparams.max_duration_s
        for split, path in self.csv.items():
            if split not in self.sets:
                self.sets[split] = ManifestDataset(path, self.tokenizer, limit if split == "train" else None)

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        return DataLoader(
            self.sets[split], batch_size=self.hparams.batch_size, shuffle=shuffle,
            num_workers=self.hparams.num_workers, collate_fn=collate, persistent_workers=self.hparams.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("valid", False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", False)


class CtcModel(nn.Module):
    """Log-mel (10 ms hop) -> Conv1d -> strided Conv1d (``stride`` x 10 ms) -> BiGRU -> linear over characters.

    In training, SpecAugment-style masks (one frequency band, two time spans) regularise the small data set.
    """

    def __init__(
        self, n_mels: int = 40, channels: int = 64, hidden: int = 64, layers: int = 2, stride: int = 3,
        spec_augment: bool = False, vocab: int = len(CHARS),
    ) -> None:
        super().__init__()
        self.stride = stride
        self.augment = nn.Sequential(
            torchaudio.transforms.FrequencyMasking(n_mels // 5, iid_masks=True),
            torchaudio.transforms.TimeMasking(10, iid_masks=True),
            torchaudio.transforms.TimeMasking(10, iid_masks=True),
        ) if spec_augment else nn.Identity()
        self.mel = torchaudio.transforms.MelSpectrogram(SAMPLE_RATE_HZ, n_fft=400, hop_length=160, n_mels=n_mels)
        self.conv = nn.Sequential(
            nn.Conv1d(n_mels, channels, 5, padding=2), nn.BatchNorm1d(channels), nn.GELU(),
            nn.Conv1d(channels, channels, 5, stride=stride, padding=2), nn.BatchNorm1d(channels), nn.GELU(),
        )
        self.rnn = nn.GRU(channels, hidden, num_layers=layers, bidirectional=True, batch_first=True)
        self.out = nn.Linear(2 * hidden, vocab)

    def forward(self, wav: torch.Tensor, wav_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-probabilities (batch, frames, vocab) and the valid frame counts."""
        with torch.autocast(wav.device.type, enabled=False):
            feats = torch.log(self.mel(wav.float()) + 1e-6)
        feats = feats - feats.mean(dim=2, keepdim=True)
        if self.training:
            feats = self.augment(feats.unsqueeze(1)).squeeze(1)
        frame_lens = wav_lens // 160 + 1
        x = self.conv(feats)
        out_lens = torch.div(frame_lens - 1, self.stride, rounding_mode="floor") + 1
        packed = nn.utils.rnn.pack_padded_sequence(x.transpose(1, 2), out_lens.cpu(), batch_first=True, enforce_sorted=False)
        y, _ = self.rnn(packed)
        y, _ = nn.utils.rnn.pad_packed_sequence(y, batch_first=True, total_length=x.shape[2])
        return F.log_softmax(self.out(y), dim=-1), out_lens


class CtcAsr(pl.LightningModule):
    """Trains :class:`CtcModel` with CTC; logs ``train_loss``, ``val_loss`` and ``val_wer`` / ``test_wer`` (%).

    Adam with an exponential learning-rate decay per epoch (``lr_decay``): a flat start, a steep drop, then the
    long tail of diminishing returns that energy-aware stopping is about.
    """

    def __init__(
        self, n_mels: int = 40, channels: int = 64, hidden: int = 64, layers: int = 2, stride: int = 3,
        spec_augment: bool = False, lr: float = 3e-3, lr_decay: float = 0.95,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.model = CtcModel(n_mels, channels, hidden, layers, stride, spec_augment)
        self.tokenizer = CharTokenizer()
        self._errors = torch.zeros(2, dtype=torch.float64)

    def _loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        log_probs, out_lens = self.model(batch["wav"], batch["wav_lens"])
        loss = F.ctc_loss(
            log_probs.transpose(0, 1), batch["tokens"], out_lens, batch["token_lens"], blank=0, zero_infinity=True,
        )
        return loss, log_probs, out_lens

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        loss, _, _ = self._loss(batch)
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(batch["texts"]))
        return loss

    def _evaluate(self, batch: dict[str, Any], stage: str) -> None:
        loss, log_probs, out_lens = self._loss(batch)
        self.log(f"{stage}_loss", loss, on_epoch=True, sync_dist=True, batch_size=len(batch["texts"]))
        best = log_probs.argmax(dim=-1).cpu()
        for ids, length, reference in zip(best, out_lens.cpu(), batch["texts"]):
            errors, words = word_errors(self.tokenizer.decode_ctc(ids[:length].tolist()), reference)
            self._errors += torch.tensor([errors, words], dtype=torch.float64)

    def _log_wer(self, stage: str) -> None:
        counts = self.trainer.strategy.reduce(self._errors.to(self.device), reduce_op="sum")
        wer = 100.0 * float(counts[0]) / max(float(counts[1]), 1.0)
        self.log(f"{stage}_wer", wer, prog_bar=True)
        self._errors = torch.zeros(2, dtype=torch.float64)

    def on_validation_epoch_start(self) -> None:
        self._errors = torch.zeros(2, dtype=torch.float64)

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def on_validation_epoch_end(self) -> None:
        self._log_wer("val")

    def on_test_epoch_start(self) -> None:
        self._errors = torch.zeros(2, dtype=torch.float64)

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def on_test_epoch_end(self) -> None:
        self._log_wer("test")

    def configure_optimizers(self) -> dict[str, Any]:
        """Adam, with the learning rate multiplied by ``lr_decay`` after every epoch."""
        optimizer = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=self.hparams.lr_decay)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}


def main(args: list[str] | None = None) -> LightningCLI:
    """The LightningCLI entry point (``fit``, ``validate``, ``test``; ``--config config.yaml``)."""
    return LightningCLI(CtcAsr, AsrDataModule, save_config_kwargs={"overwrite": True}, args=args)


if __name__ == "__main__":
    main()
