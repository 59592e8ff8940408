"""The suite's network guard really blocks non-loopback connections."""

import socket

import pytest

from tests.conftest import NetworkCallError


def test_external_connection_is_blocked() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        with pytest.raises(NetworkCallError):
            sock.connect(("192.0.2.1", 80))


def test_dns_lookup_is_blocked() -> None:
    with pytest.raises(NetworkCallError):
        socket.getaddrinfo("example.com", 80)


def test_loopback_is_allowed() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as client:
            client.connect(server.getsockname())
