"""The test relay (tests/support/relay.py) adds the delay it says, stalls the connections it says,
holds bytes while paused and resets connections with a RST."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from tests.support.relay import Relay


@pytest.fixture
def echo() -> Iterator[tuple[str, int]]:
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        with conn, contextlib.suppress(ConnectionError):  # the relay resets some on purpose
            while data := conn.recv(4096):
                conn.sendall(data)

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[:2]
    stop.set()
    thread.join(2)
    server.close()


def _round_trip(address: tuple[str, int], timeout: float = 2.0) -> float:
    with socket.create_connection(address, timeout=timeout) as sock:
        started = time.monotonic()
        sock.sendall(b"ping")
        assert sock.recv(16) == b"ping"
        return time.monotonic() - started


def test_delay_each_way(echo: tuple[str, int]) -> None:
    with Relay(("127.0.0.1", 0), echo, delay_s=0.1) as relay:
        elapsed = _round_trip(relay.address)
        # The echo reaches the client before the relay's writer counts it: wait for the count.
        deadline = time.monotonic() + 2.0
        while relay.counts.relayed_bytes < 8 and time.monotonic() < deadline:
            time.sleep(0.01)
        relayed = relay.counts.relayed_bytes
    assert 0.2 <= elapsed < 1.0, elapsed
    assert relayed == 8


def test_one_connection_in_n_is_stalled(echo: tuple[str, int]) -> None:
    with Relay(("127.0.0.1", 0), echo, stall_every=3) as relay:
        with pytest.raises(TimeoutError):
            _round_trip(relay.address, timeout=0.5)  # connection 1: stalled
        _round_trip(relay.address)
        _round_trip(relay.address)
        with pytest.raises(TimeoutError):
            _round_trip(relay.address, timeout=0.5)  # connection 4
    assert (relay.counts.accepted, relay.counts.stalled) == (4, 2)


def test_pause_holds_bytes_then_delivers(echo: tuple[str, int]) -> None:
    with Relay(("127.0.0.1", 0), echo) as relay, \
            socket.create_connection(relay.address, timeout=3.0) as sock:
        relay.pause(0.4)
        started = time.monotonic()
        sock.sendall(b"held")
        assert sock.recv(16) == b"held"
        assert time.monotonic() - started >= 0.35


def test_reset_all_breaks_open_connections(echo: tuple[str, int]) -> None:
    with Relay(("127.0.0.1", 0), echo) as relay, \
            socket.create_connection(relay.address, timeout=2.0) as sock:
        sock.sendall(b"a")
        assert sock.recv(4) == b"a"
        relay.reset_all()
        with pytest.raises(ConnectionResetError):
            sock.recv(4)  # a RST, not a FIN: a FIN would read as b""
