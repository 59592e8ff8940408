"""score_trials (cosine + SpeechBrain's EER) and a verification recipe logging valid EER next to energy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import speechbrain as sb
import torch

from carbon_callbacks.errors import ConfigError
from carbon_callbacks.ledger import read_ledger
from carbon_callbacks.speechbrain import score_trials, trial_label
from tests.speechbrain import tiny_recipe as tr

EMB = {
    "a1": torch.tensor([1.0, 0.0]), "a2": torch.tensor([0.9, 0.1]),
    "b1": torch.tensor([0.0, 1.0]), "b2": torch.tensor([0.1, 0.9]),
}


def test_separable_trials_have_zero_eer_and_swapped_labels_full_eer() -> None:
    trials = [(1, "a1", "a2"), (1, "b1", "b2"), (0, "a1", "b1"), (0, "a2", "b2")]
    assert score_trials(EMB, trials) == 0.0
    swapped = [(1 - label, e, t) for label, e, t in trials]
    assert score_trials(EMB, swapped) == 1.0


def test_overlapping_scores_match_speechbrain_eer() -> None:
    emb = {"e": torch.tensor([1.0, 0.0]), **{f"t{i}": torch.tensor([1.0, float(i)]) for i in range(4)}}
    # cosine(e, t_i) decreases with i; targets t0, t2 and non-targets t1, t3 interleave
    trials = [("target", "e", "t0"), ("nontarget", "e", "t1"), ("target", "e", "t2"), ("nontarget", "e", "t3")]
    positive = torch.tensor([1.0, 1.0 / 5**0.5])
    negative = torch.tensor([1.0 / 2**0.5, 1.0 / 10**0.5])
    expected, _ = sb.utils.metric_stats.EER(positive, negative)
    assert score_trials(emb, trials) == pytest.approx(float(expected))
    assert 0.0 < score_trials(emb, trials) < 1.0


def test_bad_trials_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="target and non-target"):
        score_trials(EMB, [(1, "a1", "a2")])
    with pytest.raises(ConfigError, match="'zz' has no embedding"):
        score_trials(EMB, [(1, "a1", "zz"), (0, "a1", "b1")])
    with pytest.raises(ConfigError, match="trial label 'maybe'"):
        trial_label("maybe")
    assert trial_label("1") and not trial_label(0) and trial_label(True)


class TinyVerification(tr.TinyASR):
    """Speaker-verification shape: embeddings of the validation utterances -> EER on a trial list."""

    def compute_objectives(self, predictions: torch.Tensor, batch: Any, stage: sb.Stage) -> torch.Tensor:
        if stage == sb.Stage.VALID:
            for row in predictions.detach():
                self.embeddings[f"utt{len(self.embeddings)}"] = row
        return super().compute_objectives(predictions, batch, stage)

    def on_stage_start(self, stage: sb.Stage, epoch: int | None = None) -> None:
        super().on_stage_start(stage, epoch)
        self.embeddings: dict[str, torch.Tensor] = {}

    def on_stage_end(self, stage: sb.Stage, stage_loss: float, epoch: int | None = None) -> None:
        if stage != sb.Stage.VALID:
            return super().on_stage_end(stage, stage_loss, epoch)
        trials = [(i % 2, f"utt{i}", f"utt{i + 1}") for i in range(len(self.embeddings) - 1)]
        stats = {"loss": stage_loss, "EER": 100.0 * score_trials(self.embeddings, trials)}
        self.hparams.train_logger.log_stats({"epoch": epoch}, train_stats=self.train_stats, valid_stats=stats)
        self.checkpointer.save_and_keep_only(meta={"EER": stats["EER"]}, min_keys=["EER"])


def test_verification_recipe_logs_valid_eer_next_to_energy(tmp_path: Path) -> None:
    hparams = tr.load(tr.hparams_yaml(tmp_path), {"number_of_epochs": 2})
    tr.run(hparams, brain_class=TinyVerification, evaluate=False)
    lines = (tmp_path / "out" / "train_log.txt").read_text().splitlines()
    assert len(lines) == 2 and all("energy_kWh: " in line and "valid EER: " in line for line in lines)
    rows = [r for r in read_ledger(tmp_path / "out" / "energy.csv") if r.stage == "epoch"]
    assert all("valid_EER" in r.metrics for r in rows)
    # the counter infers the monitored metric (for the report and the rule) from valid_stats
    assert hparams["energy_tracker"].monitor == ("valid_EER", "min")
