"""Shared test fixtures."""

from __future__ import annotations

import ipaddress
import socket
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

REPO = Path(__file__).resolve().parents[1]
CURVES = REPO.parent / "shared" / "curves"


@pytest.fixture(scope="session")
def curves_dir() -> Path:
    """The real training curves of ../shared/curves (present beside every clone, CI included)."""
    if not CURVES.is_dir():
        pytest.skip(f"{CURVES} not found")
    return CURVES


class NetworkCallError(RuntimeError):
    """Raised when code under test tries to reach a non-loopback address."""


def _is_loopback(address: Any) -> bool:
    if isinstance(address, (str, bytes)):  # AF_UNIX path
        return True
    host = address[0]
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: resolving it would be a network call


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test runs with sockets blocked except loopback (DDP over gloo uses 127.0.0.1)."""
    real_connect = socket.socket.connect

    def guarded_connect(self: socket.socket, address: Any) -> Any:
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address):
            raise NetworkCallError(f"network call to {address!r} during a test")
        return real_connect(self, address)

    def guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in (None, "localhost") and not _is_loopback((host,)):
            raise NetworkCallError(f"DNS lookup of {host!r} during a test")
        return real_getaddrinfo(host, *args, **kwargs)

    real_getaddrinfo = socket.getaddrinfo
    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket, "getaddrinfo", guarded_getaddrinfo)
    yield


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems() -> None:
    """Drop SpeechBrain's lazy-module stubs that cannot load (optional k2, ...) from ``sys.modules``.

    Hypothesis' pytest plugin reads ``__file__`` of every loaded module during collection, and SpeechBrain's
    ``LazyModule`` raises ImportError (not AttributeError) there when its optional dependency is missing.
    """
    for name, module in list(sys.modules.items()):
        try:
            getattr(module, "__file__", None)
        except ImportError:
            del sys.modules[name]
