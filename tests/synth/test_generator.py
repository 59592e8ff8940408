"""The synthetic data generator: determinism, disjoint voices, manifest layout, balanced trials."""

from __future__ import annotations

import csv
import wave
from pathlib import Path

import numpy as np
import pytest

from carbon_callbacks.errors import ConfigError
from carbon_callbacks.synth import (
    DIGIT_WORDS,
    MANIFEST_FIELDS,
    TARGET_RATE_HZ,
    generate_asr,
    generate_sv,
    read_manifest,
    read_trials,
    read_wav,
)

pytest.importorskip("espeakng_loader")


def _variant(spk_id: str) -> str:
    return spk_id.split("+", 1)[1].split("@")[0]


@pytest.fixture(scope="module")
def asr_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("asr")
    generate_asr(out, n_train=12, n_valid=4, n_test=4, seed=3)
    return out


@pytest.fixture(scope="module")
def sv_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sv")
    generate_sv(out, n_train_speakers=4, utts_per_speaker=2, n_valid_speakers=3, n_test_speakers=3,
                eval_utts_per_speaker=4, seed=5)
    return out


def test_same_seed_gives_identical_audio_and_transcripts(asr_dir: Path, tmp_path: Path) -> None:
    generate_asr(tmp_path, n_train=12, n_valid=4, n_test=4, seed=3)
    for split in ("train", "valid", "test"):
        first, second = read_manifest(asr_dir / f"{split}.csv"), read_manifest(tmp_path / f"{split}.csv")
        assert [(u.id, u.wrd, u.spk_id, u.duration_s) for u in first] == [
            (u.id, u.wrd, u.spk_id, u.duration_s) for u in second
        ]
        for a, b in zip(first, second):
            assert Path(a.wav).read_bytes() == Path(b.wav).read_bytes()


def test_another_seed_gives_other_utterances(asr_dir: Path, tmp_path: Path) -> None:
    generate_asr(tmp_path, n_train=12, n_valid=4, n_test=4, seed=4)
    assert [u.wrd for u in read_manifest(asr_dir / "train.csv")] != [u.wrd for u in read_manifest(tmp_path / "train.csv")]


def test_asr_manifests_have_speechbrain_layout_and_16k_audio(asr_dir: Path) -> None:
    with open(asr_dir / "train.csv", newline="") as src:
        assert tuple(next(csv.reader(src))) == MANIFEST_FIELDS
    for utt in read_manifest(asr_dir / "train.csv"):
        with wave.open(utt.wav) as wav:
            assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (TARGET_RATE_HZ, 1, 2)
            assert wav.getnframes() / TARGET_RATE_HZ == pytest.approx(utt.duration_s, abs=1e-3)
        words = utt.wrd.split()
        assert 2 <= len(words) <= 5 and all(w.lower() in DIGIT_WORDS for w in words)
        samples, _ = read_wav(Path(utt.wav))
        assert np.sqrt(np.mean(samples**2)) > 0.01  # speech, not silence


def test_asr_validation_and_test_voices_never_train(tmp_path: Path) -> None:
    data = generate_asr(tmp_path, n_train=40, n_valid=10, n_test=10, seed=0)
    variants = {split: {_variant(name) for name in names} for split, names in data.speakers.items()}
    assert variants["train"].isdisjoint(variants["valid"] | variants["test"])
    assert variants["valid"].isdisjoint(variants["test"])
    used = {split: {_variant(u.spk_id) for u in read_manifest(path)} for split, path in data.manifests.items()}
    assert used["train"] <= variants["train"] and used["valid"] <= variants["valid"]


def test_sv_trials_are_balanced_and_labelled_by_speaker(sv_dir: Path) -> None:
    for split in ("valid", "test"):
        enrol = {u.id: u.spk_id for u in read_manifest(sv_dir / f"{split}_enrol.csv")}
        probe = {u.id: u.spk_id for u in read_manifest(sv_dir / f"{split}_probe.csv")}
        trials = read_trials(sv_dir / f"{split}_trials.txt")
        assert sum(t.label for t in trials) * 2 == len(trials) > 0
        for trial in trials:
            assert trial.label == int(enrol[trial.enrol_id] == probe[trial.test_id])
        assert set(enrol.values()) == set(probe.values())  # every evaluation speaker is enrolled and probed


def test_sv_evaluation_speakers_are_unseen(sv_dir: Path) -> None:
    train = {_variant(u.spk_id) for u in read_manifest(sv_dir / "train.csv")}
    for split in ("valid", "test"):
        assert train.isdisjoint(_variant(u.spk_id) for u in read_manifest(sv_dir / f"{split}_probe.csv"))
    speakers = {u.spk_id for u in read_manifest(sv_dir / "train.csv")}
    assert len(speakers) == 4


@pytest.mark.parametrize(
    "kwargs", [{"n_train": 0}, {"min_digits": 4, "max_digits": 2}, {"pitch": (80, 20)}, {"voice_fractions": (0.5, 0.2)}]
)
def test_bad_asr_arguments_raise_config_error(tmp_path: Path, kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        generate_asr(tmp_path, **kwargs)


def test_too_many_speakers_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="speakers"):
        generate_sv(tmp_path, n_train_speakers=100_000)


def test_output_does_not_depend_on_the_number_of_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import carbon_callbacks.synth.render as render

    monkeypatch.setattr(render, "CHUNK_SIZE", 3)
    one = generate_asr(tmp_path / "one", n_train=5, n_valid=1, n_test=1, seed=9, workers=1)
    two = generate_asr(tmp_path / "two", n_train=5, n_valid=1, n_test=1, seed=9, workers=2)
    for a, b in zip(read_manifest(one.manifests["train"]), read_manifest(two.manifests["train"])):
        assert (a.id, a.wrd) == (b.id, b.wrd)
        assert Path(a.wav).read_bytes() == Path(b.wav).read_bytes()
