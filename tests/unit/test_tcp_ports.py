"""Ports named before their server starts come from below the ephemeral range, free and distinct."""

from __future__ import annotations

import socket

from hotspare.tcp_ports import ephemeral_low, pick_free_ports


def test_ports_are_distinct_bindable_and_not_ephemeral() -> None:
    ports = pick_free_ports(8)
    assert len(set(ports)) == 8
    low = ephemeral_low()
    if low - 20_000 >= 1000:
        assert all(20_000 <= p < low for p in ports), (ports, low)
    for port in ports:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))
