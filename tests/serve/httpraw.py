"""Raw HTTP/1.1 over sockets for the hostile-client tests: what a misbehaving client sends, byte by byte."""

from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit


def connect(url: str, timeout: float = 30.0) -> socket.socket:
    u = urlsplit(url)
    return socket.create_connection((u.hostname, u.port), timeout=timeout)


def send_quietly(sock: socket.socket, data: bytes) -> bool:
    """Send; False when the server has already closed the connection."""
    try:
        sock.sendall(data)
        return True
    except OSError:
        return False


def status_of(sock: socket.socket, timeout: float = 30.0) -> tuple[int | None, bytes]:
    """Read what the server sends until it closes (or `timeout`): (HTTP status or None, the bytes)."""
    sock.settimeout(timeout)
    data = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
            if b"\r\n\r\n" in data and _complete(data):
                break
    except (TimeoutError, ConnectionResetError):
        pass
    if not data.startswith(b"HTTP/1."):
        return None, data
    return int(data.split(b" ", 2)[1]), data


def _complete(data: bytes) -> bool:
    head, _, body = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return False


def closed_by_server(sock: socket.socket, timeout: float) -> bool:
    """Whether the server closes the connection within `timeout` (reads and drops what it sends first)."""
    sock.settimeout(timeout)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if not sock.recv(65536):
                return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return False
