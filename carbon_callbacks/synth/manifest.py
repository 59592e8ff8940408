"""SpeechBrain-layout manifests (CSV ``ID,duration,wav,spk_id,wrd``) and VoxCeleb-style trial lists."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

from ..errors import ReadError

__all__ = ["MANIFEST_FIELDS", "Utterance", "Trial", "write_manifest", "read_manifest", "write_trials", "read_trials"]

MANIFEST_FIELDS: tuple[str, ...] = ("ID", "duration", "wav", "spk_id", "wrd")


@dataclass(frozen=True)
class Utterance:
    """One manifest row: ``wav`` is a path (absolute, or with ``$data_root``), ``duration_s`` in seconds."""

    id: str
    duration_s: float
    wav: str
    spk_id: str
    wrd: str


@dataclass(frozen=True)
class Trial:
    """One verification trial: ``label`` 1 (same speaker) or 0, between two utterance IDs."""

    label: int
    enrol_id: str
    test_id: str


def write_manifest(path: Path, utterances: Iterable[Utterance]) -> None:
    """Write a SpeechBrain CSV manifest (durations with millisecond precision)."""
    with open(path, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(MANIFEST_FIELDS)
        for utt in utterances:
            writer.writerow([utt.id, f"{utt.duration_s:.3f}", utt.wav, utt.spk_id, utt.wrd])


def read_manifest(path: str | os.PathLike, replacements: Mapping[str, str] | None = None) -> list[Utterance]:
    """Read a SpeechBrain CSV manifest (LibriSpeech/CommonVoice/VoxCeleb layouts included).

    Needs ``ID``, ``duration`` and ``wav``; ``spk_id`` and ``wrd`` default to empty. ``$key`` in ``wav`` is
    replaced from ``replacements`` (e.g. ``{"data_root": "/data/LibriSpeech"}``), as SpeechBrain does.
    """
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as src:
            rows = list(csv.DictReader(src))
    except OSError as err:
        raise ReadError(f"cannot read manifest {path}: {err}") from err
    if rows and not {"ID", "duration", "wav"} <= set(rows[0]):
        raise ReadError(f"manifest {path} has columns {sorted(rows[0])}; it needs ID, duration and wav")
    out = []
    for row in rows:
        wav = row["wav"]
        for key, value in (replacements or {}).items():
            wav = wav.replace(f"${key}", value)
        try:
            duration_s = float(row["duration"])
        except ValueError as err:
            raise ReadError(f"manifest {path}: row {row['ID']!r} has duration {row['duration']!r}") from err
        out.append(Utterance(row["ID"], duration_s, wav, row.get("spk_id") or "", row.get("wrd") or ""))
    return out


def write_trials(path: Path, trials: Iterable[Trial]) -> None:
    """Write trials as VoxCeleb's ``veri_test.txt`` lines: ``label enrol_id test_id``."""
    with open(path, "w", encoding="utf-8") as out:
        out.writelines(f"{t.label} {t.enrol_id} {t.test_id}\n" for t in trials)


def read_trials(path: str | os.PathLike) -> list[Trial]:
    """Read ``label enrol test`` lines; VoxCeleb paths (``id10270/x6uY/00001.wav``) become IDs with ``--``."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise ReadError(f"cannot read trial list {path}: {err}") from err
    trials = []
    for number, line in enumerate(lines, start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 3 or parts[0] not in ("0", "1"):
            raise ReadError(f"{path}:{number}: {line!r} is not 'label enrol test' with label 0 or 1")
        trials.append(Trial(int(parts[0]), _trial_id(parts[1]), _trial_id(parts[2])))
    return trials


def _trial_id(token: str) -> str:
    stem = token.rsplit(".", 1)[0] if token.endswith((".wav", ".flac", ".m4a")) else token
    return stem.replace("/", "--")
