"""The ``carbon-callbacks`` command (stub: analyze, replay, plot and report are being built)."""

from __future__ import annotations

import argparse
import sys

from ._version import __version__


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="carbon-callbacks", description="Energy and CO2 of speech training runs.")
    parser.add_argument("--version", action="version", version=f"carbon-callbacks {__version__}")
    parser.parse_args(argv)
    parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
