"""Exceptions of carbon_callbacks. Every message names the bad value and what is allowed."""

from __future__ import annotations

__all__ = ["CarbonCallbacksError", "ConfigError", "MeterError", "ReadError"]


class CarbonCallbacksError(Exception):
    """Base class: an input the package cannot use (the CLI prints it as one line, exit status 2)."""


class ConfigError(CarbonCallbacksError, ValueError):
    """A bad argument, raised when the object is created, never hours into training."""


class MeterError(CarbonCallbacksError, RuntimeError):
    """A hardware backend failed to read. Backends translate their own errors into this one."""


class ReadError(CarbonCallbacksError):
    """A run, log, ledger or intensity file that cannot be read: the message names the file and the problem."""
