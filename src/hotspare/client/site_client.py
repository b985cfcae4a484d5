"""A client for the site API that finds the master itself and follows it through a failover.

The master is a role, not a machine (design decision 9, docs/design.md): when a spare takes over
the master, the site API moves to the spare's address. A client holds several endpoints (the
operator's list, then every node the site publishes in `/site/endpoints`); any node answers that
list, so the client asks whichever answers, goes to the master it names, and starts over when the
master stops answering.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Sequence
from typing import Any

import httpx

from hotspare.client.node_client import API_PREFIX, NodeApiError, raise_for_problem
from hotspare.tls import explain

log = logging.getLogger("hotspare.client.site")


class SiteUnreachable(RuntimeError):
    """No endpoint answered; the message lists what was tried and why each failed."""


class SiteClient:
    def __init__(self, endpoints: Sequence[str], token: str, timeout: float = 5.0, *,
                 verify: ssl.SSLContext | bool = True) -> None:
        """`verify` is the trust for https nodes (see `hotspare.tls.client_context`)."""
        if not endpoints:
            raise ValueError("give at least one node URL of the site")
        self._known = [e.rstrip("/") for e in endpoints]
        self._timeout = timeout
        self._verify = verify
        self._headers = {"Authorization": f"Bearer {token}"}
        self.master_url: str | None = None
        self.master_name: str | None = None

    def _request(self, base: str, path: str, params: dict[str, Any] | None) -> Any:
        response = httpx.get(base + API_PREFIX + path, params=params, headers=self._headers,
                             timeout=self._timeout, verify=self._verify)
        raise_for_problem(response)
        return response.json()

    def discover(self) -> str:
        """Ask each known node for the endpoint list; remember the master and every node."""
        failures: list[str] = []
        for base in list(self._known):
            try:
                listing = self._request(base, "/site/endpoints", None)
            except (httpx.HTTPError, NodeApiError) as exc:
                failures.append(f"{base}: {explain(exc)}")
                continue
            master = listing["master"]
            self.master_url = str(master["url"]).rstrip("/")
            self.master_name = str(master["name"])
            for node in listing.get("nodes", []):
                url = str(node.get("url") or "").rstrip("/")
                if url and url not in self._known:
                    self._known.append(url)
            if master.get("node") != master.get("name"):
                log.info("master %s is served by %s at %s", master["name"], master["node"],
                         self.master_url)
            return self.master_url
        raise SiteUnreachable("no node of the site answered: " + "; ".join(failures)
                              + ". Check the URLs and that the nodes are running.")

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        """GET a site route on the master, rediscovering it once if it does not answer."""
        for attempt in range(2):
            if self.master_url is None or attempt:
                self.discover()
            assert self.master_url is not None
            try:
                return self._request(self.master_url, path, params)
            except httpx.TransportError as exc:
                log.info("master at %s did not answer (%s); asking the other nodes",
                         self.master_url, exc)
                if self.master_url in self._known:  # try the others first next time
                    self._known.remove(self.master_url)
                    self._known.append(self.master_url)
        raise SiteUnreachable(f"the master did not answer at {self.master_url} after rediscovery")
