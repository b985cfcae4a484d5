"""A spare's direct health probe of a recording server (the second detection signal).

The outcome is deliberately coarse, because each kind leads to a different rule
(docs/failover.md, "Detection"): a refused connection means the process is gone on a host that is
up, so the spare may act at once; a timeout may be a hung or partitioned host, so the spare also
waits for the server's lease; an answer saying "recording" vetoes any takeover.

The probe runs for every server several times a second, so its cost is the spare's cost per
server (issue 14): the standard library's `http.client` on one kept-alive connection per server
costs about a quarter of the CPU of an `httpx` request, and an answer saying `"ok": true` is not
validated field by field (only one that is not, for the cameras it names).
"""

from __future__ import annotations

import http.client
import json
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from urllib.parse import urlsplit

from hotspare.tls import PeerTls
from hotspare.wire import KEEP_ALIVE_SECONDS, HealthOut

HEALTH_PATH = "/api/v1/health"
IDLE_REUSE_SECONDS = KEEP_ALIVE_SECONDS - 5.0
"""A kept-alive connection idle for longer is replaced by a fresh one: the server may be closing it
(a node closes idle ones after `KEEP_ALIVE_SECONDS`), and a closed one would read as a reset. It is
also how long `probe_watch` watches an idle one, so the margin is well below the node's timeout
and far above a probe round (up to 8 s at 200 servers on a saturated host). A server that closes
sooner (another version, a proxy) costs one early probe per close, at most one a second."""


class ProbeKind(StrEnum):
    RECORDING = "recording"
    NOT_RECORDING = "not_recording"
    REFUSED = "refused"
    TIMEOUT = "timeout"
    ERROR = "error"


@dataclass(frozen=True)
class ProbeResult:
    kind: ProbeKind
    detail: str = ""


class KeptConnection:
    """One server's kept-alive probe connection; `used`: when a probe last gave it back."""

    def __init__(self, address: str, url: str, timeout: float,
                 context: ssl.SSLContext | None) -> None:
        self.address = address
        self.url = url
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port
        self.http: http.client.HTTPConnection = (
            http.client.HTTPSConnection(host, port, timeout=timeout, context=context)
            if context is not None else http.client.HTTPConnection(host, port, timeout=timeout))
        self.used = 0.0


class HealthProber:
    """One kept-alive connection per server (connection reuse keeps a probe to a fraction of a
    millisecond, and with TLS saves a handshake per probe).

    `ca_file` and `tls` are the node's `[site] tls_ca_file` and the site's `tls` flag (read at
    each probe); `peers` keeps them for the spare's other calls to servers (re-insert).
    """

    def __init__(self, token: str, timeout: float, ca_file: Path | None = None,
                 tls: Callable[[], bool] = lambda: False) -> None:
        self._headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        self._timeout = timeout
        self.peers = PeerTls(ca_file, tls)
        self._idle: dict[str, KeptConnection] = {}
        self._lock = threading.Lock()

    def _take(self, address: str, url: str) -> KeptConnection:
        """The server's idle connection, or a new one; a probe holds it alone until `_give`."""
        with self._lock:  # probes of different servers run on different threads
            conn = self._idle.pop(url, None)
        if conn is not None and time.monotonic() - conn.used > IDLE_REUSE_SECONDS:
            conn.http.close()
            conn = None
        if conn is None:
            context = self.peers.verify if url.startswith("https:") else None
            conn = KeptConnection(address, url, self._timeout, context)
        return conn

    def _give(self, url: str, conn: KeptConnection) -> None:
        conn.used = time.monotonic()
        with self._lock:
            spare = self._idle.pop(url, None)
            self._idle[url] = conn
        if spare is not None:
            spare.http.close()

    def probe(self, address: str) -> ProbeResult:
        """An untrusted certificate or an unreachable host fails the connect with something other
        than a refusal, so ERROR: not proof of death. A kept-alive connection that breaks is a
        reset, which is what a dying process's socket does: REFUSED, and the next probe connects
        afresh. Plain HTTP against a TLS port would look like a reset (REFUSED); nodes prevent it
        by refusing to start when their own TLS and the site's `tls` flag disagree
        (hotspare/node/site_node.py)."""
        url = self.peers.url(address)
        conn = self._take(address, url)
        if conn.http.sock is None:
            try:
                conn.http.connect()
            except TimeoutError:
                conn.http.close()
                return self._timed_out("connect")
            except ConnectionRefusedError as exc:
                conn.http.close()
                return ProbeResult(ProbeKind.REFUSED, str(exc) or "connection refused")
            except OSError as exc:  # unreachable, TLS refused, reset during the handshake
                conn.http.close()
                return ProbeResult(ProbeKind.ERROR, f"cannot connect: {exc}")
        try:
            conn.http.request("GET", HEALTH_PATH, headers=self._headers)
            response = conn.http.getresponse()
            status, body = response.status, response.read()
        except TimeoutError:
            conn.http.close()  # a late answer would be read as the next probe's
            return self._timed_out("answer")
        except (OSError, http.client.HTTPException) as exc:
            conn.http.close()
            return ProbeResult(ProbeKind.REFUSED,
                               f"connection reset ({str(exc) or type(exc).__name__})")
        self._give(url, conn)
        if status != 200:
            return ProbeResult(ProbeKind.ERROR, f"HTTP {status}")
        return self._judge_body(body)

    def _timed_out(self, phase: str) -> ProbeResult:
        return ProbeResult(ProbeKind.TIMEOUT, f"no answer within {self._timeout:.2f} s ({phase})")

    @staticmethod
    def _judge_body(body: bytes) -> ProbeResult:
        try:
            data = json.loads(body)
            if isinstance(data, dict) and data.get("ok") is True:
                return ProbeResult(ProbeKind.RECORDING)
            health = HealthOut.model_validate(data)
        except ValueError as exc:
            return ProbeResult(ProbeKind.ERROR, f"unreadable health answer: {exc}")
        if health.ok:
            return ProbeResult(ProbeKind.RECORDING)
        states = ", ".join(f"{c.camera_id}={c.state}" for c in health.cameras) or health.error
        return ProbeResult(ProbeKind.NOT_RECORDING, states or "not recording")

    def idle_connections(self) -> list[KeptConnection]:
        """The kept-alive connections no probe holds now (for `probe_watch`)."""
        with self._lock:
            return [conn for conn in self._idle.values() if conn.http.sock is not None]

    def take_if_idle(self, conn: KeptConnection) -> bool:
        """Take `conn` out of the idle ones if it still is one (no probe took it meanwhile); the
        caller then holds it alone and gives it back with `return_idle` or closes it."""
        with self._lock:
            if self._idle.get(conn.url) is not conn:
                return False
            del self._idle[conn.url]
        return True

    def return_idle(self, conn: KeptConnection) -> None:
        """Give back a connection taken by `take_if_idle`, its last use unchanged; closed if a
        probe has made another one meanwhile."""
        with self._lock:
            if conn.url not in self._idle:
                self._idle[conn.url] = conn
                return
        conn.http.close()

    def drop_if_idle(self, conn: KeptConnection) -> bool:
        """Close `conn` if it is still idle (no probe took it meanwhile); True when it was."""
        if not self.take_if_idle(conn):
            return False
        conn.http.close()
        return True

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, {}
        for conn in idle.values():
            conn.http.close()
