"""A spare's direct health probe of a recording server (the second detection signal).

The outcome is deliberately coarse, because each kind leads to a different rule
(docs/failover.md, "Detection"): a refused connection means the process is gone on a host that is
up, so the spare may act at once; a timeout may be a hung or partitioned host, so the spare also
waits for the server's lease; an answer saying "recording" vetoes any takeover.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import httpx

from hotspare.tls import PeerTls
from hotspare.wire import HealthOut


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


class HealthProber:
    """One HTTP client per server (connection reuse keeps a probe to a few ms, and with TLS
    saves a handshake per probe).

    `ca_file` and `tls` are the node's `[site] tls_ca_file` and the site's `tls` flag (read at
    each probe); `peers` keeps them for the spare's other calls to servers (re-insert).
    """

    def __init__(self, token: str, timeout: float, ca_file: Path | None = None,
                 tls: Callable[[], bool] = lambda: False) -> None:
        self._token = token
        self._timeout = timeout
        self.peers = PeerTls(ca_file, tls)
        self._clients: dict[str, httpx.Client] = {}
        self._lock = threading.Lock()

    def _client(self, url: str) -> httpx.Client:
        with self._lock:  # probes of different servers run on different threads
            client = self._clients.get(url)
            if client is None:
                client = httpx.Client(base_url=url, timeout=self._timeout,
                                      headers={"Authorization": f"Bearer {self._token}"},
                                      verify=self.peers.verify)
                self._clients[url] = client
            return client

    def probe(self, address: str) -> ProbeResult:
        """An untrusted certificate is a ConnectError without "refused", so ERROR: the server is
        up but misconfigured, no reason to take it over. Plain HTTP against a TLS port would look
        like a reset (REFUSED); nodes prevent it by refusing to start when their own TLS and the
        site's `tls` flag disagree (hotspare/node/site_node.py)."""
        url = self.peers.url(address)
        client = self._client(url)
        try:
            response = client.get("/api/v1/health")
        except httpx.TimeoutException as exc:
            return ProbeResult(ProbeKind.TIMEOUT, f"no answer within {self._timeout:.2f} s "
                               f"({type(exc).__name__})")
        except (httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError,
                httpx.WriteError) as exc:
            text = str(exc)
            if isinstance(exc, httpx.ConnectError) and "refused" not in text.lower():
                return ProbeResult(ProbeKind.ERROR, text)  # unreachable host: not proof of death
            # Refused, or a kept-alive connection reset by a dying process.
            self._drop(url)
            return ProbeResult(ProbeKind.REFUSED, text or type(exc).__name__)
        except httpx.HTTPError as exc:
            self._drop(url)
            return ProbeResult(ProbeKind.ERROR, str(exc) or type(exc).__name__)
        if response.status_code != 200:
            return ProbeResult(ProbeKind.ERROR, f"HTTP {response.status_code}")
        try:
            health = HealthOut.model_validate(response.json())
        except ValueError as exc:
            return ProbeResult(ProbeKind.ERROR, f"unreadable health answer: {exc}")
        if health.ok:
            return ProbeResult(ProbeKind.RECORDING)
        states = ", ".join(f"{c.camera_id}={c.state}" for c in health.cameras) or health.error
        return ProbeResult(ProbeKind.NOT_RECORDING, states or "not recording")

    def _drop(self, url: str) -> None:
        with self._lock:
            client = self._clients.pop(url, None)
        if client is not None:
            client.close()

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()
