"""Tiny synthetic data sets and a loader for the recipe scripts (which are not a package)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
RECIPES = REPO / "recipes"


def load_recipe(relative: str) -> ModuleType:
    """Import ``recipes/<relative>`` as a module (its folder goes on sys.path, as when run as a script)."""
    path = RECIPES / relative
    name = "recipe_" + relative.replace("/", "_").removesuffix(".py")
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def tiny_asr(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 training, 6 validation and 6 test utterances of spoken digits."""
    pytest.importorskip("espeakng_loader")
    from carbon_callbacks.synth import generate_asr

    out = tmp_path_factory.mktemp("tiny_asr")
    generate_asr(out, n_train=24, n_valid=6, n_test=6, max_digits=3, seed=1)
    return out


@pytest.fixture(scope="session")
def tiny_sv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 training speakers x 4 utterances; 3 unseen speakers x 3 utterances for validation and for test."""
    pytest.importorskip("espeakng_loader")
    from carbon_callbacks.synth import generate_sv

    out = tmp_path_factory.mktemp("tiny_sv")
    generate_sv(out, n_train_speakers=4, utts_per_speaker=4, n_valid_speakers=3, n_test_speakers=3,
                eval_utts_per_speaker=3, seed=1)
    return out
