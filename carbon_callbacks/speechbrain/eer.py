"""Speaker verification EER from embeddings and a trial list, so a recipe can log ``EER`` in ``valid_stats``.

Usage at the end of validation (embeddings gathered in ``compute_forward`` at ``Stage.VALID``)::

    stage_stats["EER"] = 100 * score_trials(self.valid_embeddings, self.hparams.valid_trials)
"""

from __future__ import annotations

from typing import Hashable, Mapping, Sequence

import torch
from speechbrain.utils.metric_stats import EER

from ..errors import ConfigError

__all__ = ["score_trials", "trial_label"]

_TRUE = {"1", "true", "target", "tgt", "same"}
_FALSE = {"0", "false", "nontarget", "non-target", "imp", "impostor", "different"}


def trial_label(label: object) -> bool:
    """A trial label as bool: 1/0, True/False, or the words ``target``/``nontarget`` (VoxCeleb lists use 1/0)."""
    if isinstance(label, bool):
        return label
    if isinstance(label, (int, float)) and label in (0, 1):
        return bool(label)
    text = str(label).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigError(f"trial label {label!r} is not allowed: use 1/0, true/false or target/nontarget")


def _vector(embeddings: Mapping[Hashable, torch.Tensor], utt_id: Hashable) -> torch.Tensor:
    try:
        emb = embeddings[utt_id]
    except KeyError:
        raise ConfigError(f"trial utterance {utt_id!r} has no embedding ({len(embeddings)} embeddings given)") from None
    return torch.as_tensor(emb, dtype=torch.float64).detach().cpu().reshape(-1)


def score_trials(
    embeddings: Mapping[Hashable, torch.Tensor],
    trials: Sequence[tuple[object, Hashable, Hashable]],
) -> float:
    """Equal error rate (a fraction in [0, 1]) of cosine scores over ``(label, enrol_id, test_id)`` trials.

    Uses ``speechbrain.utils.metric_stats.EER``, as SpeechBrain's ``speaker_verification_cosine.py`` does.

    Raises:
        ConfigError: no target or no non-target trial, an unknown label, or an utterance without embedding.
    """
    positive: list[float] = []
    negative: list[float] = []
    for label, enrol_id, test_id in trials:
        score = float(torch.nn.functional.cosine_similarity(
            _vector(embeddings, enrol_id), _vector(embeddings, test_id), dim=0, eps=1e-8,
        ))
        (positive if trial_label(label) else negative).append(score)
    if not positive or not negative:
        raise ConfigError(
            f"score_trials needs target and non-target trials (got {len(positive)} target, {len(negative)} non-target)"
        )
    eer, _threshold = EER(torch.tensor(positive), torch.tensor(negative))
    return float(eer)
