"""Read any supported run into a :class:`~carbon_callbacks.analysis.run.Run`.

Formats (detected by :func:`detect_format`):

* ``ledger``: our ``energy.csv`` (or a directory holding it) with ``energy.meta.json``: measured energy.
* ``lightning_csv``: a Lightning ``CSVLogger`` directory (``version_*/metrics.csv``) or one ``metrics.csv``.
* ``speechbrain``: a SpeechBrain ``train_log.txt`` (or a directory holding it), a ``log.txt`` or a console capture
  with ``train_logger`` lines.
* ``generic_csv``: any CSV with an ``epoch`` column.
* ``ecapa_score``: the ``score.txt`` of ECAPA-TDNN trainers (``N epoch, LR ..., EER x%``).

Logs without energy get it from duration x power, or one unit per epoch (see :mod:`.readers_common`).
"""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path
from typing import Any

from ..carbon import Intensity
from ..errors import ReadError
from ..ledger import LEDGER_COLUMNS, LEDGER_FILENAME
from .readers_common import GPU_POWER_W, EpochTable, build_run, gpu_power_w, read_text
from .readers_csv import lightning_csv_files, read_ecapa_score_table, read_generic_table, read_lightning_table
from .readers_ledger import read_ledger_run as _read_ledger
from .readers_speechbrain import read_speechbrain_table
from .run import Run
from .stats import price_in

__all__ = [
    "load_run",
    "detect_format",
    "read_ledger_run",
    "read_lightning_run",
    "read_speechbrain_run",
    "read_generic_run",
    "read_ecapa_score_run",
    "GPU_POWER_W",
    "gpu_power_w",
]

IntensityArg = float | Intensity | str | Path | None
_FIRST_LINE_CHARS = 1 << 16  # enough for any header; a file without newlines is not read whole


def _first_line(path: Path) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.readline(_FIRST_LINE_CHARS).strip()
    except OSError as exc:
        raise ReadError(f"{path}: cannot read ({exc.strerror or exc})") from None


def detect_format(path: str | os.PathLike) -> str:
    """The format of a run file or directory (see the module docstring).

    Raises:
        ReadError: missing path, or nothing recognisable in it.
    """
    path = Path(path)
    if path.is_dir():
        if (path / LEDGER_FILENAME).is_file():
            return "ledger"
        if lightning_csv_files(path):
            return "lightning_csv"
        if (path / "train_log.txt").is_file():
            return "speechbrain"
        raise ReadError(
            f"{path}: no energy.csv, version_*/metrics.csv or train_log.txt in this directory: nothing to read"
        )
    if not path.exists():
        raise ReadError(f"{path}: no such file or directory")
    if not path.is_file():
        raise ReadError(f"{path}: not a regular file: give a log, a CSV or a run directory")
    first = _first_line(path)
    if path.suffix.lower() == ".csv":
        try:
            header = next(csv.reader([first.replace("\x00", "")]), [])
        except csv.Error:
            header = []
        if tuple(header) == LEDGER_COLUMNS:
            return "ledger"
        if path.name == "metrics.csv" and "step" in header:
            return "lightning_csv"
        return "generic_csv"
    text = read_text(path)
    if re.search(r"(?m)^\s*\d+\s+epoch,", text):
        return "ecapa_score"
    if re.search(r"[Ee]poch:\s*\d+", text):
        return "speechbrain"
    raise ReadError(f"{path}: not a ledger, Lightning CSV, SpeechBrain train log, ECAPA score file or CSV")


def load_run(
    path: str | os.PathLike,
    *,
    power_w: float | None = None,
    gpu: str | None = None,
    n_gpus: int = 1,
    intensity: IntensityArg = None,
    pue: float | None = None,
    name: str | None = None,
) -> Run:
    """Read one run, whatever its format.

    Args:
        path: a file or a run directory.
        power_w / gpu / n_gpus: average draw of ONE device in W, or its model name (see ``GPU_POWER_W``), and the
            number of devices; used only when the log has durations but no energy.
        intensity: g CO2/kWh, an :class:`Intensity` or an intensity CSV path; None: the ledger's own intensities,
            the world average for logs without CO2.
        pue: facility PUE; None: the ledger's own, 1.0 for logs without energy.
        name: display name (default: the file stem or directory name).

    Raises:
        ReadError: unreadable file, empty run, no metric.
        ConfigError: a bad power, GPU, intensity or PUE argument.
    """
    path = Path(path)
    fmt = detect_format(path)
    if fmt == "ledger":
        return read_ledger_run(path, name=name, intensity=intensity, pue=pue)
    readers = {
        "lightning_csv": read_lightning_run,
        "speechbrain": read_speechbrain_run,
        "generic_csv": read_generic_run,
        "ecapa_score": read_ecapa_score_run,
    }
    return readers[fmt](path, power_w=power_w, gpu=gpu, n_gpus=n_gpus, intensity=intensity, pue=pue, name=name)


def _default_name(path: Path) -> str:
    """The run's name: its directory (``full_run/version_0`` for a Lightning version directory) or file stem."""
    if path.is_dir():
        return _dir_name(path)
    if path.name in ("train_log.txt", "log.txt", "metrics.csv", LEDGER_FILENAME, "score.txt"):
        return _dir_name(path.parent) or path.stem
    return path.name[: -len(".log.txt")] if path.name.endswith(".log.txt") else path.stem


def _dir_name(directory: Path) -> str:
    if re.fullmatch(r"version_\d+", directory.name) and directory.parent.name:
        return f"{directory.parent.name}/{directory.name}"
    return directory.name


def read_ledger_run(
    path: str | os.PathLike, *, name: str | None = None, intensity: IntensityArg = None, pue: float | None = None
) -> Run:
    """Our ledger; with ``intensity`` or ``pue`` given, repriced with :func:`.stats.price_in`."""
    path = Path(path)
    run = _read_ledger(path, name=name or _default_name(path))
    if intensity is not None or pue is not None:
        run = price_in(run, intensity, pue=pue)
    return run


def read_lightning_run(path: str | os.PathLike, **kwargs: Any) -> Run:
    """A Lightning CSVLogger directory or ``metrics.csv``; keyword args as :func:`load_run`."""
    path = Path(path)
    files = lightning_csv_files(path) if path.is_dir() else [path]
    if not files:
        raise ReadError(f"{path}: no metrics.csv or version_*/metrics.csv found")
    return _build(read_lightning_table(files), path, "lightning_csv", **kwargs)


def read_speechbrain_run(path: str | os.PathLike, **kwargs: Any) -> Run:
    """A SpeechBrain ``train_log.txt`` (file or experiment directory); keyword args as :func:`load_run`."""
    path = Path(path)
    file = path / "train_log.txt" if path.is_dir() else path
    return _build(read_speechbrain_table(file), path, "speechbrain", source=file, **kwargs)


def read_generic_run(path: str | os.PathLike, **kwargs: Any) -> Run:
    """A CSV with an ``epoch`` column; keyword args as :func:`load_run`."""
    path = Path(path)
    return _build(read_generic_table(path), path, "generic_csv", **kwargs)


def read_ecapa_score_run(path: str | os.PathLike, **kwargs: Any) -> Run:
    """An ECAPA-TDNN ``score.txt``; keyword args as :func:`load_run`."""
    path = Path(path)
    return _build(read_ecapa_score_table(path), path, "ecapa_score", **kwargs)


def _build(table: EpochTable, path: Path, fmt: str, *, source: Path | None = None, **kwargs: Any) -> Run:
    options: dict[str, Any] = {"power_w": None, "gpu": None, "n_gpus": 1, "intensity": None, "pue": None, "name": None}
    options.update(kwargs)
    name = options.pop("name") or _default_name(path)
    return build_run(table, name=str(name), source=source or path, fmt=fmt, **options)
