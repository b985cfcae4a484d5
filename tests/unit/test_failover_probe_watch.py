"""The watch on the spare's kept-alive probe connections, on real loopback sockets: a server that
closes its end (as a dead process's kernel does) is reported at once, a live one never, and an
idle connection past its reuse time is closed quietly instead of being mistaken for a death."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from hotspare.failover import probe_watch
from hotspare.failover.probe import HealthProber, ProbeKind
from hotspare.failover.probe_watch import ProbeWatch
from tests.unit.test_failover_probe import TOKEN, Health, node  # noqa: F401  (fixture)


class Closed:
    def __init__(self) -> None:
        self.addresses: list[str] = []
        self.seen = threading.Event()

    def __call__(self, address: str) -> None:
        self.addresses.append(address)
        self.seen.set()


@pytest.fixture
def prober() -> Iterator[HealthProber]:
    prober = HealthProber(TOKEN, 0.5)
    yield prober
    prober.close()


@pytest.fixture
def closed(prober: HealthProber) -> Iterator[Closed]:
    closed = Closed()
    watch = ProbeWatch(prober, closed)
    watch.start()
    yield closed
    watch.stop()


def test_a_server_resetting_its_kept_alive_connection_is_reported_at_once(
        node: Health, prober: HealthProber, closed: Closed) -> None:  # noqa: F811
    assert prober.probe(node.address).kind is ProbeKind.RECORDING
    time.sleep(2 * probe_watch.POLL_SECONDS)  # watched by now
    reset_at = time.monotonic()
    node.reset_all()
    assert closed.seen.wait(2.0), "the reset connection was not noticed"
    noticed = time.monotonic() - reset_at
    assert closed.addresses == [node.address]
    assert noticed < 0.5, noticed  # an event, not a poll: milliseconds on loopback
    assert prober.probe(node.address).kind is ProbeKind.RECORDING  # a fresh connection
    assert node.accepted == 2


def test_a_closed_listener_and_connection_reads_as_refused_after_the_report(
        node: Health, prober: HealthProber, closed: Closed) -> None:  # noqa: F811
    """What the detector does next: the server's port is gone, so its probe is refused."""
    assert prober.probe(node.address).kind is ProbeKind.RECORDING
    time.sleep(2 * probe_watch.POLL_SECONDS)
    node.shutdown()
    node.server_close()
    node.reset_all()
    assert closed.seen.wait(2.0)
    assert prober.probe(node.address).kind is ProbeKind.REFUSED


def test_a_live_server_probed_often_is_never_reported(
        node: Health, prober: HealthProber, closed: Closed) -> None:  # noqa: F811
    """Answers arriving on a connection a probe holds are not a close, whatever the race with
    the watch's snapshot of the idle connections."""
    deadline = time.monotonic() + 1.5
    probes = 0
    while time.monotonic() < deadline:
        assert prober.probe(node.address).kind is ProbeKind.RECORDING
        probes += 1
        time.sleep(0.005)
    assert probes > 20  # http.server answers in two writes: ~40 ms each (Nagle)
    assert closed.addresses == []
    assert node.accepted == 1


def test_an_idle_connection_past_its_reuse_time_is_closed_not_reported(
        node: Health, prober: HealthProber, closed: Closed,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(probe_watch, "IDLE_REUSE_SECONDS", 0.2)
    assert prober.probe(node.address).kind is ProbeKind.RECORDING
    deadline = time.monotonic() + 2.0
    while prober.idle_connections() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert prober.idle_connections() == []  # closed by the watch
    node.reset_all()  # too late to be mistaken for a death: nothing is watched
    time.sleep(3 * probe_watch.POLL_SECONDS)
    assert closed.addresses == []


def test_a_server_closing_every_connection_is_reported_at_most_once_a_second(
        node: Health, prober: HealthProber, closed: Closed) -> None:  # noqa: F811
    for _ in range(3):
        assert prober.probe(node.address).kind is ProbeKind.RECORDING
        time.sleep(2 * probe_watch.POLL_SECONDS)
        node.reset_all()
        time.sleep(2 * probe_watch.POLL_SECONDS)
    assert closed.addresses == [node.address]


def test_an_event_that_was_a_probes_answer_is_not_a_close(
        node: Health, prober: HealthProber) -> None:  # noqa: F811
    """The race behind one CI failure: the watch saw a connection readable while a probe held it
    (the answer arriving), the probe read the answer and gave it back, and the watch then found
    it idle and called it closed. The watch now asks again once it holds the connection alone."""
    assert prober.probe(node.address).kind is ProbeKind.RECORDING
    (conn,) = prober.idle_connections()
    assert prober.take_if_idle(conn)
    assert not probe_watch._readable_now(conn.http.sock)  # the answer was read: nothing there
    prober.return_idle(conn)
    assert prober.probe(node.address).kind is ProbeKind.RECORDING
    assert node.accepted == 1  # the same connection, given back
    node.reset_all()
    time.sleep(0.05)
    (conn,) = prober.idle_connections()
    assert prober.take_if_idle(conn) and probe_watch._readable_now(conn.http.sock)
    conn.http.close()
