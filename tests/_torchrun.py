"""Run a script under ``torch.distributed.run`` in tests, tolerating one known teardown abort of torch."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Mapping

# torch 2.11 with gloo: now and then (about 1 run in 20 under load) a worker aborts after Python has finished,
# while C++ objects are destroyed at exit ("terminate called without an active exception", SIGABRT, no Python
# frame in the faulthandler dump), even when the script destroys its process group. Our code has run by then.
TEARDOWN_ABORT = "terminate called without an active exception"


def run_torchrun(
    args: list[str], *, cwd: Path, env: Mapping[str, str], timeout_s: float, output: Path
) -> subprocess.CompletedProcess:
    """Run ``args``; once more, with ``output`` emptied, if a worker hit the teardown abort above."""
    result = subprocess.run(args, cwd=cwd, env=dict(env), capture_output=True, text=True, timeout=timeout_s)
    if result.returncode != 0 and TEARDOWN_ABORT in result.stderr:
        shutil.rmtree(output, ignore_errors=True)
        result = subprocess.run(args, cwd=cwd, env=dict(env), capture_output=True, text=True, timeout=timeout_s)
    return result
