"""The one place the SpeechBrain adapter asks the analyzer for the end-of-training report and figures."""

from __future__ import annotations

import logging
from pathlib import Path

from ..errors import CarbonCallbacksError

__all__ = ["write_report"]

logger = logging.getLogger(__name__)


def write_report(run_dir: str | Path, metric: str | None = None, mode: str | None = None) -> bool:
    """Write the analyzer's report into ``run_dir``; False (and training goes on) when it cannot.

    The analyzer is imported lazily: without it (or without its plotting dependencies) nothing happens.
    """
    try:
        from ..report import write_run_report
    except ImportError:
        logger.debug("carbon_callbacks.report is not available: no end-of-training report")
        return False
    try:
        write_run_report(run_dir, metric=metric, mode=mode)
    except (CarbonCallbacksError, OSError, ValueError) as exc:
        logger.warning("carbon_callbacks: the energy report for %s could not be written (%s)", run_dir, exc)
        return False
    return True
