"""Choosing TCP ports for servers that must be named before they start (site files, etcd members).

A port from `bind(port 0)` comes from the OS's ephemeral range, the same range outgoing connections
use: between the pick and the server's own bind, any RTSP client or HTTP probe on the machine may
take it ("address already in use", seen in CI). So ports are drawn at random from below that range,
where no outgoing connection lands, and checked free by binding them.
"""

from __future__ import annotations

import random
import socket
import sys
from pathlib import Path

_LOWEST = 20_000
_WINDOWS_EPHEMERAL_LOW = 49_152  # Windows' default dynamic range is 49152-65535
_given: set[int] = set()  # ports this process handed out: a node not yet started leaves its free


def ephemeral_low() -> int:
    """The first port the OS hands out for outgoing connections."""
    if sys.platform.startswith("linux"):
        try:
            text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text(encoding="ascii")
            return int(text.split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return _WINDOWS_EPHEMERAL_LOW if sys.platform == "win32" else 32_768


def pick_free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """`count` distinct ports, free now, outside the ephemeral range when the OS leaves room.

    All sockets stay open until every port is chosen, and a port this process already handed
    out is not drawn again (a node given it may not have bound it yet), so no port is returned
    twice.
    """
    high = ephemeral_low()
    pool = [p for p in range(_LOWEST, high) if p not in _given] if high - _LOWEST >= 1000 else []
    random.shuffle(pool)
    sockets: list[socket.socket] = []
    try:
        for port in pool:
            if len(sockets) == count:
                break
            sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET,
                                 socket.SOCK_STREAM)
            try:
                sock.bind((host, port))
            except OSError:
                sock.close()
                continue
            sockets.append(sock)
        while len(sockets) < count:  # no room below the ephemeral range: the OS's choice
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((host, 0))
            sockets.append(sock)
        ports = [int(s.getsockname()[1]) for s in sockets]
        _given.update(ports)
        return ports
    finally:
        for sock in sockets:
            sock.close()


def free_port(host: str = "127.0.0.1") -> int:
    return pick_free_ports(1, host)[0]
