"""Reading the files users point the package at (logs, ledgers, intensity series): one size limit, one error."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .errors import ReadError

__all__ = ["MAX_FILE_BYTES", "read_limited"]

#: 1 GiB: far above any training log, ledger or intensity series, far below what would exhaust memory.
MAX_FILE_BYTES = 1 << 30


def read_limited(path: Path, what: str, limit: int = MAX_FILE_BYTES, error: type[Exception] = ReadError) -> bytes:
    """The bytes of the regular file ``path``.

    Raises:
        ``error`` (ReadError by default), one line naming the file: it cannot be read, is not a regular file,
        or is larger than ``limit`` bytes.
    """
    try:
        info = os.stat(path)  # before opening: opening a FIFO would wait for a writer
        if not stat.S_ISREG(info.st_mode):
            raise error(f"{path}: {what} is not a regular file")
        if info.st_size > limit:
            raise error(
                f"{path}: {what} has {info.st_size:,} bytes, more than the {limit:,} this reader accepts:"
                " is it the right file?"
            )
        with open(path, "rb") as fh:
            return fh.read(limit)  # a file that grows while it is read is cut at the limit
    except OSError as exc:
        raise error(f"{path}: cannot read {what} ({exc.strerror or exc})") from None
