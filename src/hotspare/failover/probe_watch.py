"""Noticing at once that a server closed the spare's kept-alive probe connection.

A process that dies on a host that stays up has its sockets closed by the kernel, so every
kept-alive probe connection to it receives a FIN or a reset within a round trip. Until now the
spare learned of it only at its next probe of that server: a probe interval plus, on a large site,
the rest of a round over its share (at 200 servers on a saturated 2-core host a round took 0.2 s
at the median and 1.2 s at p95, and crash → claim reached 2.8 s; issue 14). Watching the idle
connections turns that into an event: the spare probes the server at once, two refusals claim it as
before, and the round's length no longer matters.

Only the timing changes: the verdict is still the detection rules' (two refused connects in a
row), so a server that merely closed an idle connection answers the probe and nothing happens. A
hung host or a cut link sends nothing and is still found by the probe timeout and the question
through etcd.
"""

from __future__ import annotations

import logging
import selectors
import socket
import threading
import time
from collections.abc import Callable

from hotspare.failover.probe import IDLE_REUSE_SECONDS, HealthProber, KeptConnection

log = logging.getLogger("hotspare.failover.spare")

POLL_SECONDS = 0.1
"""How often connections given back by probes are added to the watch. A close that arrives
before a connection is watched is still seen once it is (the selector is level-triggered)."""
HURRY_MIN_INTERVAL = 1.0
"""At most one early probe per server per this many seconds: a server (or a proxy in front of
it) that closes every connection after its answer must not turn the watch into a probe loop."""
SELECT_LIMIT = 500
"""Windows' select() takes at most 512 sockets; there the watch covers the first 500 (the
others are found by the round as before). epoll (Linux) and kqueue have no such limit."""

Watched = dict[KeptConnection, socket.socket]
"""Each watched connection and the socket it was registered by (a probe may close and replace
the connection's socket meanwhile; the registration is undone by the socket it was made with)."""


class ProbeWatch:
    """One thread per spare: watches the prober's idle connections and calls `on_closed(address)`
    when a server closes one (never for a connection a probe holds)."""

    def __init__(self, prober: HealthProber, on_closed: Callable[[str], None]) -> None:
        self._prober = prober
        self._on_closed = on_closed
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="probe-watch", daemon=True)
        self._hurried: dict[str, float] = {}
        self.closed_seen = 0
        """Connections the servers closed under the watch (for tests and benchmarks)."""

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(2.0)

    def _run(self) -> None:
        selector = selectors.DefaultSelector()
        limit = SELECT_LIMIT if isinstance(selector, selectors.SelectSelector) else None
        watched: Watched = {}
        try:
            while not self._stop.is_set():
                self._follow(selector, watched, limit)
                if not watched:
                    self._stop.wait(POLL_SECONDS)
                    continue
                for key, _events in selector.select(POLL_SECONDS):
                    conn: KeptConnection = key.data
                    self._forget(selector, watched, conn)
                    if not self._prober.take_if_idle(conn):
                        continue  # a probe holds it: what arrived is its answer
                    if _readable_now(conn.http.sock):
                        conn.http.close()
                        self._closed(conn.address)
                    else:  # a probe took it, read its answer and gave it back meanwhile
                        self._prober.return_idle(conn)
        except Exception:
            log.exception("the watch on the probe connections failed; dead processes are still "
                          "found by the probe rounds, only later")
        finally:
            selector.close()

    def _follow(self, selector: selectors.BaseSelector, watched: Watched,
                limit: int | None) -> None:
        """Watch the connections idle now, forget the rest. One idle past its reuse time is
        closed instead (the next probe would replace it anyway), so a server's idle timeout is
        never mistaken for a death."""
        now = time.monotonic()
        idle = set()
        for conn in self._prober.idle_connections():
            if now - conn.used > IDLE_REUSE_SECONDS:
                self._prober.drop_if_idle(conn)
            else:
                idle.add(conn)
        for conn in [c for c in watched if c not in idle]:
            self._forget(selector, watched, conn)
        for conn in idle:
            if conn in watched or (limit is not None and len(watched) >= limit):
                continue
            sock = conn.http.sock
            if sock is None:
                continue
            try:
                selector.register(sock, selectors.EVENT_READ, conn)
            except (KeyError, ValueError, OSError):
                continue  # closed by a probe meanwhile: the next pass sees it gone
            watched[conn] = sock

    @staticmethod
    def _forget(selector: selectors.BaseSelector, watched: Watched,
                conn: KeptConnection) -> None:
        sock = watched.pop(conn, None)
        if sock is not None:
            try:
                selector.unregister(sock)
            except (KeyError, ValueError):
                pass

    def _closed(self, address: str) -> None:
        self.closed_seen += 1
        now = time.monotonic()
        if now - self._hurried.get(address, -HURRY_MIN_INTERVAL) < HURRY_MIN_INTERVAL:
            return
        self._hurried[address] = now
        log.info("%s closed the spare's probe connection; probing it now", address)
        self._on_closed(address)


def _readable_now(sock: socket.socket) -> bool:
    """Whether `sock` has something to read now (a FIN, a reset, or bytes nobody asked for: on
    an idle HTTP connection each means it is over). Asked again once the watch holds the
    connection alone, because the event may have been an answer a probe has read since."""
    with selectors.DefaultSelector() as once:
        try:
            once.register(sock, selectors.EVENT_READ)
        except (KeyError, ValueError, OSError):
            return True  # closed under us: over too
        return bool(once.select(0))
