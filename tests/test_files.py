"""The bounded reader behind every user-file reader: size limit, non-regular files, one error type per caller."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from carbon_callbacks._files import MAX_FILE_BYTES, read_limited
from carbon_callbacks.carbon import load_intensity_csv
from carbon_callbacks.errors import ConfigError, ReadError
from carbon_callbacks.ledger import read_ledger


def sparse_file(path: Path, size: int) -> Path:
    """A file of ``size`` bytes that uses no disk space (for files over the readers' limit)."""
    with open(path, "wb") as fh:
        fh.truncate(size)
    return path


def test_a_file_at_the_limit_is_read_and_one_byte_more_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "log.txt"
    path.write_bytes(b"0123456789")
    assert read_limited(path, "the log", limit=10) == b"0123456789"
    with pytest.raises(ReadError, match=r"log.txt: the log has 10 bytes, more than the 9 this reader accepts"):
        read_limited(path, "the log", limit=9)


def test_the_caller_chooses_the_error_type(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope.json: cannot read the threshold file \(No such file"):
        read_limited(tmp_path / "nope.json", "the threshold file", error=ConfigError)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(ReadError, match="pipe: the log is not a regular file"):
        read_limited(fifo, "the log")


def test_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ReadError, match="the ledger is not a regular file"):
        read_limited(tmp_path, "the ledger")


@pytest.mark.parametrize(
    ("reader", "what"), [(read_ledger, "the ledger"), (load_intensity_csv, "the intensity file")]
)
def test_huge_files_are_refused_before_reading(tmp_path: Path, reader, what: str) -> None:
    path = sparse_file(tmp_path / "big.csv", MAX_FILE_BYTES + 1)
    with pytest.raises(ReadError, match=f"big.csv: {what} has {MAX_FILE_BYTES + 1:,} bytes"):
        reader(path)
