"""A free loopback port for the servers tests start (never the fixed 8000/8080/8081)."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A port nothing listens on now: bound to 0 on 127.0.0.1, read back, released."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
