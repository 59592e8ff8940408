"""The one place where the Lightning adapter calls the analyzer's report writer."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

from ..errors import CarbonCallbacksError

__all__ = ["write_report"]

log = logging.getLogger(__name__)


def write_report(run_dir: Path, metric: str | None = None, mode: str | None = None) -> bool:
    """Write the analyzer's report and figures into ``run_dir``; True when written.

    Skipped (debug message) when ``carbon_callbacks.report.write_run_report`` is not available. A report that
    fails on the run's data warns and returns False: it never fails the training run that produced the data.
    """
    try:
        from .. import report as report_module

        writer = report_module.write_run_report
    except (ImportError, AttributeError) as exc:
        log.debug("carbon_callbacks: no report written (%s)", exc)
        return False
    try:
        writer(run_dir, metric=metric, mode=mode)
    except (CarbonCallbacksError, OSError, ValueError, KeyError) as exc:
        warnings.warn(f"carbon_callbacks: the run report in {run_dir} was not written: {exc}", RuntimeWarning)
        return False
    return True
