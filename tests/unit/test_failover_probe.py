"""The spare's health probe on real loopback sockets: each way a server can answer, or not, is
the kind of probe result the detection rules expect (docs/failover.md, "Detection")."""

from __future__ import annotations

import json
import socket
import struct
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from hotspare.failover.probe import HealthProber, ProbeKind

TOKEN = "probe-test-token-0123456789"


class Health(ThreadingHTTPServer):
    """A node's health route: `status` and `body` are what it answers; `connections` what it
    accepted, to reset them as a dying process's kernel does."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.status = 200
        self.body: dict[str, object] = {"server_name": "rec-1", "ok": True, "cameras": [],
                                         "checked_wall_us": 1}
        self.tokens: list[str] = []
        self.connections: list[socket.socket] = []
        self.accepted = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"

    def reset_all(self) -> None:
        """Break every accepted connection under the client, as a dying process's kernel does."""
        for conn in self.connections:
            if conn.fileno() == -1:
                continue  # closed already (by its handler, after the client went)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.shutdown(socket.SHUT_RDWR)  # close() alone waits for the handler's blocked read


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the nodes' uvicorn does
    server: Health

    def setup(self) -> None:
        super().setup()
        self.server.connections.append(self.connection)
        self.server.accepted += 1

    def do_GET(self) -> None:
        self.server.tokens.append(self.headers.get("Authorization", ""))
        body = json.dumps(self.server.body).encode()
        self.send_response(self.server.status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def node() -> Iterator[Health]:
    server = Health()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def prober() -> Iterator[HealthProber]:
    prober = HealthProber(TOKEN, 0.3)
    yield prober
    prober.close()


def test_recording_reuses_one_connection_and_sends_the_token(node: Health,
                                                             prober: HealthProber) -> None:
    for _ in range(5):
        assert prober.probe(node.address).kind is ProbeKind.RECORDING
    assert node.accepted == 1
    assert node.tokens == [f"Bearer {TOKEN}"] * 5


def test_not_recording_names_the_cameras(node: Health, prober: HealthProber) -> None:
    node.body = {"server_name": "rec-1", "ok": False, "checked_wall_us": 1,
                 "cameras": [{"camera_id": "cam-1", "state": "failing"}]}
    result = prober.probe(node.address)
    assert result.kind is ProbeKind.NOT_RECORDING
    assert "cam-1=failing" in result.detail


def test_an_error_status_or_a_bad_body_is_an_error_not_a_death(node: Health,
                                                               prober: HealthProber) -> None:
    node.status = 500
    assert prober.probe(node.address).kind is ProbeKind.ERROR
    node.status, node.body = 200, {"ok": "maybe"}
    result = prober.probe(node.address)
    assert result.kind is ProbeKind.ERROR and "unreadable health answer" in result.detail


def test_a_closed_port_is_refused(prober: HealthProber) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{sock.getsockname()[1]}"
    result = prober.probe(address)  # nobody listens there any more
    assert result.kind is ProbeKind.REFUSED, result


def test_a_kept_alive_connection_reset_is_refused_and_the_next_probe_connects_afresh(
        node: Health, prober: HealthProber) -> None:
    assert prober.probe(node.address).kind is ProbeKind.RECORDING
    node.reset_all()
    result = prober.probe(node.address)
    assert result.kind is ProbeKind.REFUSED and "reset" in result.detail, result
    assert prober.probe(node.address).kind is ProbeKind.RECORDING  # a live server: answers
    assert node.accepted == 2


def test_a_listener_that_never_answers_times_out(prober: HealthProber) -> None:
    """The kernel accepts the connection (a frozen process's port does), nobody answers."""
    with socket.create_server(("127.0.0.1", 0)) as sock:
        result = prober.probe(f"127.0.0.1:{sock.getsockname()[1]}")
    assert result.kind is ProbeKind.TIMEOUT and "0.30 s" in result.detail, result
