"""Manifest and trial-list reading/writing, audio helpers and the command line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from carbon_callbacks.errors import ReadError
from carbon_callbacks.synth import Trial, Utterance, read_manifest, read_trials, write_manifest, write_trials
from carbon_callbacks.synth.__main__ import main
from carbon_callbacks.synth.audio import resample


def test_manifest_round_trip_and_data_root_replacement(tmp_path: Path) -> None:
    rows = [Utterance("a", 1.25, "$data_root/wav/a.wav", "s1", "ONE TWO"), Utterance("b", 0.5, "/x/b.wav", "s2", "")]
    write_manifest(tmp_path / "m.csv", rows)
    back = read_manifest(tmp_path / "m.csv", replacements={"data_root": "/data"})
    assert back[0] == Utterance("a", 1.25, "/data/wav/a.wav", "s1", "ONE TWO")
    assert back[1] == rows[1]


def test_librispeech_style_manifest_without_speaker_column_reads(tmp_path: Path) -> None:
    (tmp_path / "ls.csv").write_text("ID,duration,wav,wrd\n1089-1,3.2,/ls/1089-1.flac,HELLO WORLD\n")
    assert read_manifest(tmp_path / "ls.csv") == [Utterance("1089-1", 3.2, "/ls/1089-1.flac", "", "HELLO WORLD")]


def test_manifest_errors_name_the_file(tmp_path: Path) -> None:
    (tmp_path / "bad.csv").write_text("ID,wav\nx,/a.wav\n")
    with pytest.raises(ReadError, match="bad.csv"):
        read_manifest(tmp_path / "bad.csv")
    with pytest.raises(ReadError, match="missing.csv"):
        read_manifest(tmp_path / "missing.csv")


def test_trials_accept_voxceleb_paths(tmp_path: Path) -> None:
    (tmp_path / "veri.txt").write_text("1 id10270/x6uY/00001.wav id10270/8jEA/00008.wav\n0 a b\n")
    assert read_trials(tmp_path / "veri.txt") == [
        Trial(1, "id10270--x6uY--00001", "id10270--8jEA--00008"), Trial(0, "a", "b")
    ]
    write_trials(tmp_path / "t.txt", [Trial(0, "u1", "u2")])
    assert read_trials(tmp_path / "t.txt") == [Trial(0, "u1", "u2")]
    (tmp_path / "bad.txt").write_text("2 a b\n")
    with pytest.raises(ReadError, match="bad.txt:1"):
        read_trials(tmp_path / "bad.txt")


def test_resampling_keeps_the_frequency_of_a_tone() -> None:
    t = np.arange(22050) / 22050
    tone = (np.sin(2 * np.pi * 1000 * t) * 10000).astype(np.int16)
    out = resample(tone, 22050)
    assert len(out) == 16000
    assert np.argmax(np.abs(np.fft.rfft(out))) == 1000  # 1 Hz bins over one second
    assert np.max(np.abs(out)) == pytest.approx(10000 / 32768, rel=0.02)


def test_cli_writes_a_data_set_and_reports_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    pytest.importorskip("espeakng_loader")
    assert main(["asr", "--out", str(tmp_path), "--n-train", "2", "--n-valid", "1", "--n-test", "1"]) == 0
    assert len(read_manifest(tmp_path / "train.csv")) == 2 and (tmp_path / "synth.json").exists()
    assert "4 utterances" in capsys.readouterr().out
    assert main(["sv", "--out", str(tmp_path / "sv"), "--n-train-speakers", "1"]) == 2
    assert "n_train_speakers=1" in capsys.readouterr().err
