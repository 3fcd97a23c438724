"""Socket helpers shared by the sandbox tests."""

from __future__ import annotations

import socket


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a new server could listen on `port` now.

    Servers set SO_REUSEADDR, so connections in TIME_WAIT left by earlier requests do not count.
    """
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True
