"""The Python examples of the docs pages without a test file of their own run as written."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
_BLOCK = re.compile(r"```python\n(.*?)```", re.S)


def python_blocks(page: str) -> list[str]:
    """The ```python blocks of ``docs/<page>``."""
    return _BLOCK.findall((DOCS / page).read_text(encoding="utf-8"))


@pytest.mark.parametrize("page", ["cli.md", "stopping.md"])
def test_examples_run(page: str, tmp_path: Path, curves_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = python_blocks(page)
    assert blocks, f"docs/{page} has no Python example"
    (tmp_path / "results").mkdir()
    shutil.copy(curves_dir / "sb_asr_voicebank_ctc_phn_sangeet.txt", tmp_path / "results" / "train_log.txt")
    monkeypatch.chdir(tmp_path)
    for block in blocks:
        exec(compile(block, f"docs/{page}", "exec"), {})
