"""Raw-socket clients that play the slow and idle clients a web server must not wait for."""

from __future__ import annotations

import select
import socket
import time


def seconds_until_closed(port: int, *, first: bytes = b"", trickle: bytes = b"", limit: float = 6) -> float:
    """Connect, send ``first`` (reading its response), then send ``trickle`` a byte every 0.5 s.

    Returns how long after ``first`` was answered the server closed the connection.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=limit) as sock:
        if first:
            sock.sendall(first)
            assert sock.recv(65536).startswith(b"HTTP/1.1 200"), "no response to the first request"
        start = time.monotonic()
        pending = iter(trickle)
        while time.monotonic() - start < limit:
            readable, _, _ = select.select([sock], [], [], 0.5)
            if readable:
                try:
                    if sock.recv(65536) == b"":
                        return time.monotonic() - start
                except ConnectionResetError:
                    return time.monotonic() - start
            byte = next(pending, None)
            if byte is not None:
                try:
                    sock.sendall(bytes([byte]))
                except (BrokenPipeError, ConnectionResetError):
                    return time.monotonic() - start
        return limit
