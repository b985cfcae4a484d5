"""A userspace TCP relay that makes a link slow or lossy, for tests (the kernels here lack netem).

    relay = Relay(("198.51.100.12", 0), ("198.51.100.12", 8000), delay_s=0.15, stall_every=10)
    with host.entered():                # the relay's sockets belong to that host (netns.py)
        relay.start()
    ... clients connect to relay.address ...
    relay.close()

Each accepted connection is either relayed (every chunk, in both directions, delivered
`delay_s` after it arrived, order kept: latency without loss of bandwidth) or, one in every
`stall_every` starting with the first, stalled: accepted, never connected upstream, nothing
answered, held open until the client gives up: what a connection whose packets are lost looks
like from the client. `pause(seconds)` holds every relayed connection's bytes for a while (a
burst of loss that TCP resends afterwards); `reset_all()` drops every relayed connection with a
RST (a link that broke a session). Counters say what was done, for the test's report.

Threads started by `start()` (and the connections they open upstream) live in the network
namespace of the calling thread.
"""

from __future__ import annotations

import contextlib
import queue
import socket
import struct
import threading
import time
from dataclasses import dataclass

__all__ = ["Relay", "RelayCounts"]

_CHUNK = 65536


@dataclass
class RelayCounts:
    accepted: int = 0
    stalled: int = 0
    relayed_bytes: int = 0
    resets: int = 0
    pauses: int = 0


class Relay:
    def __init__(self, listen: tuple[str, int], target: tuple[str, int], *,
                 delay_s: float = 0.0, stall_every: int = 0) -> None:
        """`stall_every`: stall connection 1, N + 1, 2N + 1... (0: none): with N = 10, one
        connection in ten, starting with the first, so that a short test meets one."""
        if delay_s < 0 or stall_every < 0:
            raise ValueError("delay_s and stall_every must not be negative")
        self.target = target
        self.delay_s = delay_s
        self.stall_every = stall_every
        self.counts = RelayCounts()
        self._listen = listen
        self._server: socket.socket | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._resetting: set[socket.socket] = set()
        self._paused_until = 0.0

    @property
    def address(self) -> tuple[str, int]:
        assert self._server is not None, "start() first"
        host, port = self._server.getsockname()[:2]
        return str(host), int(port)

    def start(self) -> Relay:
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(self._listen)
        server.listen(64)
        server.settimeout(0.2)
        self._server = server
        threading.Thread(target=self._accept, name="relay-accept", daemon=True).start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.close()
        with self._lock:
            sockets, self._open = list(self._open), set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.close()

    def __enter__(self) -> Relay:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def pause(self, seconds: float) -> None:
        """Hold every relayed byte (both ways, every connection) for `seconds` from now."""
        with self._lock:
            self._paused_until = max(self._paused_until, time.monotonic() + seconds)
            self.counts.pauses += 1

    def reset_all(self) -> None:
        """Drop every open connection with a RST (SO_LINGER 0), both sides."""
        with self._lock:
            sockets, self._open = list(self._open), set()
            self._resetting.update(sockets)
            self.counts.resets += 1
        for sock in sockets:
            # A thread blocked in recv keeps the socket open past close(): wake it with a
            # shutdown of the reading side; it then closes the socket, and linger 0 makes that
            # close a RST.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.shutdown(socket.SHUT_RD)

    # ------------------------------------------------------------------ inside

    def _accept(self) -> None:
        assert self._server is not None
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.counts.accepted += 1
                number = self.counts.accepted
                stalled = self.stall_every > 0 and (number - 1) % self.stall_every == 0
                if stalled:
                    self.counts.stalled += 1
                self._open.add(client)
            if not stalled:
                threading.Thread(target=self._connect, args=(client,), name="relay-conn",
                                 daemon=True).start()

    def _connect(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.target, timeout=5.0)
        except OSError:
            self._drop(client)
            return
        upstream.settimeout(None)
        with self._lock:
            if self._stop.is_set() or client not in self._open:
                upstream.close()
                return
            self._open.add(upstream)
        for source, sink in ((client, upstream), (upstream, client)):
            pending: queue.Queue[tuple[float, bytes | None]] = queue.Queue()
            threading.Thread(target=self._read, args=(source, sink, pending), daemon=True,
                             name="relay-read").start()
            threading.Thread(target=self._write, args=(sink, source, pending), daemon=True,
                             name="relay-write").start()

    def _read(self, source: socket.socket, sink: socket.socket,
              pending: queue.Queue[tuple[float, bytes | None]]) -> None:
        while True:
            try:
                data = source.recv(_CHUNK)
            except OSError:
                data = b""
            if not data and source in self._resetting:
                pending.put((0.0, None))
                source.close()
                return
            pending.put((time.monotonic() + self.delay_s, data))
            if not data:
                return

    def _write(self, sink: socket.socket, source: socket.socket,
               pending: queue.Queue[tuple[float, bytes | None]]) -> None:
        while True:
            due, data = pending.get()
            if data is None:  # reset: the reader closes its side, the other reader this one
                return
            while True:
                with self._lock:
                    wait = max(due, self._paused_until) - time.monotonic()
                if wait <= 0 or self._stop.is_set():
                    break
                time.sleep(min(wait, 0.05))
            if not data:  # the other side closed: pass the FIN on
                with contextlib.suppress(OSError):
                    sink.shutdown(socket.SHUT_WR)
                return
            try:
                sink.sendall(data)
            except OSError:
                self._drop(source)
                self._drop(sink)
                return
            with self._lock:
                self.counts.relayed_bytes += len(data)

    def _drop(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.discard(sock)
        with contextlib.suppress(OSError):
            sock.close()
