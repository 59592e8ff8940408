"""Imports point inward: the core and the analyzer load no deep-learning framework, and `__all__` is honest."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

FRAMEWORKS = ("torch", "lightning", "speechbrain", "pytorch_lightning")
ANALYZER_SIDE = [
    "carbon_callbacks",
    "carbon_callbacks.meters",
    "carbon_callbacks.carbon",
    "carbon_callbacks.accounting",
    "carbon_callbacks.analysis.readers",
    "carbon_callbacks.analysis.stats",
    "carbon_callbacks.analysis.replay",
    "carbon_callbacks.analysis.threshold",
    "carbon_callbacks.summary",
    "carbon_callbacks.report",
    "carbon_callbacks.cli",
]


def test_core_and_analyzer_import_no_framework() -> None:
    code = (
        "import sys\n"
        + "".join(f"import {name}\n" for name in ANALYZER_SIDE)
        + f"print(','.join(m for m in {FRAMEWORKS!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"the analyzer side imported {out}"


@pytest.mark.parametrize(
    "name",
    ANALYZER_SIDE + ["carbon_callbacks.lightning", "carbon_callbacks.speechbrain", "carbon_callbacks.synth"],
)
def test_public_names_exist(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert exported, f"{name} has no __all__"
    missing = [n for n in exported if not hasattr(module, n)]
    assert not missing, f"{name}.__all__ names {missing} that do not exist"
