"""``EnergyTrainLogger``: a ``TrainLogger`` that writes the epoch's energy and CO2 next to the valid WER/EER."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from speechbrain.utils.train_logger import FileTrainLogger, TrainLogger

from ..errors import ConfigError
from .tracker import EnergyTracker

__all__ = ["EnergyTrainLogger", "ENERGY_KEYS"]

#: Keys added to ``stats_meta`` (the analyzer's SpeechBrain reader parses ``energy_kWh`` and ``CO2_kg``).
ENERGY_KEYS: tuple[str, ...] = ("energy_kWh", "CO2_kg", "total_energy_kWh", "total_CO2_kg")


class EnergyTrainLogger(TrainLogger):
    """Wraps a train logger (``FileTrainLogger(save_file, precision)`` by default) and adds energy to each line.

    Every rank must call :meth:`log_stats` (stock recipes do; ``FileTrainLogger.log_stats`` is itself a
    collective): on the YAML path it closes the epoch's energy window and SUM-reduces it across ranks.
    ``FileTrainLogger`` prints small floats with 3 significant digits; the ledger ``energy.csv`` keeps them all.

    Args:
        save_file: the train log file (as ``FileTrainLogger``); its directory is the ledger's default directory.
        tracker: the run's :class:`EnergyTracker`.
        precision: decimals of ``FileTrainLogger``.
        logger: any ``TrainLogger`` to forward to instead of a ``FileTrainLogger``.
    """

    def __init__(
        self,
        save_file: str | Path | None = None,
        tracker: EnergyTracker | None = None,
        precision: int = 2,
        logger: TrainLogger | None = None,
    ) -> None:
        if not isinstance(tracker, EnergyTracker):
            raise ConfigError(f"tracker={tracker!r} is not allowed: give the run's EnergyTracker (!ref <energy_tracker>)")
        if logger is None:
            if save_file is None:
                raise ConfigError("EnergyTrainLogger needs save_file= (the train log) or logger= (a TrainLogger)")
            logger = FileTrainLogger(str(save_file), precision=precision)
        elif not callable(getattr(logger, "log_stats", None)):
            raise ConfigError(f"logger={logger!r} is not allowed: give a SpeechBrain TrainLogger")
        self.logger = logger
        self.tracker = tracker
        self.save_file = save_file if save_file is not None else getattr(logger, "save_file", None)
        folder = getattr(logger, "save_dir", None)
        if self.save_file is not None:
            folder = Path(self.save_file).parent
        tracker.set_default_folder(folder)

    def log_stats(
        self,
        stats_meta: Mapping[str, Any],
        train_stats: Mapping[str, Any] | None = None,
        valid_stats: Mapping[str, Any] | None = None,
        test_stats: Mapping[str, Any] | None = None,
        verbose: bool | None = None,
    ) -> Any:
        """Record the energy of what just ended, add :data:`ENERGY_KEYS` to ``stats_meta``, forward the line."""
        energy = self.tracker.on_log_stats(stats_meta, train_stats, valid_stats, test_stats)
        meta = {**dict(stats_meta), **energy}
        kwargs = {} if verbose is None else {"verbose": verbose}
        return self.logger.log_stats(meta, train_stats=train_stats, valid_stats=valid_stats, test_stats=test_stats, **kwargs)

    def __getattr__(self, name: str) -> Any:
        """Other logger methods (``log_audio``, ``log_figure``...) go to the wrapped logger."""
        inner = self.__dict__.get("logger")
        if inner is None:
            raise AttributeError(name)
        return getattr(inner, name)
