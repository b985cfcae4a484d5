"""The master's site API, served for real, and the site-state reads it makes, timed.

The app is the one `hotspare.node.site_node` mounts on every node — `site_router` over a
`SiteApi` and `protection_router` over `live_report` — with its own `Coordinator` and `SiteView`,
served by uvicorn on loopback. Left out: the bearer-token middleware (its cost per request is the
same at any site size) and the master's own recorder.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from bench.common import median, percentile
from hotspare.api.app import API_PREFIX
from hotspare.api.problems import install_problem_handlers
from hotspare.api.routes_protection import protection_router
from hotspare.api.site_merge import NODE_TIMEOUT_SECONDS
from hotspare.api.site_routes import SiteApi, site_router
from hotspare.client.node_client import NodeClient
from hotspare.coordination.etcd_adapter import Coordinator
from hotspare.node.runtime import bind_socket
from hotspare.sitestate import layout
from hotspare.sitestate.protection import live_report, report_json
from hotspare.sitestate.snapshot import STATE_PREFIXES, SiteState
from hotspare.sitestate.view import SiteView


class Master:
    def __init__(self, coord: Coordinator, token: str, data_dir: Path) -> None:
        self.coord = coord
        data_dir.mkdir(parents=True, exist_ok=True)
        self.view = SiteView(self.coord, data_dir / "site-cache.json")
        if self.view.load_initial(30.0) is None:
            raise RuntimeError("master: no site configuration in etcd")
        self.view.watch()
        app = FastAPI()
        install_problem_handlers(app)  # as on a node: an API error is a problem answer, not a reset
        app.include_router(protection_router(self.report), prefix=API_PREFIX)
        app.include_router(site_router(SiteApi(
            self.coord, lambda: self.view.current, token, self.report,
            lambda url: NodeClient(url, token, timeout=NODE_TIMEOUT_SECONDS))), prefix=API_PREFIX)
        sock = bind_socket("127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False))
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self.server.serve(sockets=[sock])), name="master",
            daemon=True)
        self._thread.start()
        self.http = httpx.Client(base_url=self.url, timeout=30.0)
        deadline = time.monotonic() + 20
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.05)

    def report(self) -> dict[str, Any]:
        applied = self.view.current
        if applied is None:
            raise LookupError("no site configuration yet")
        return report_json(live_report(self.coord, applied), applied)

    def get(self, path: str) -> tuple[float, int, int]:
        """(seconds, status, body bytes) of one API call."""
        started = time.perf_counter()
        reply = self.http.get(API_PREFIX + path)
        return time.perf_counter() - started, reply.status_code, len(reply.content)

    def close(self) -> None:
        self.http.close()
        self.server.should_exit = True
        self._thread.join(10)
        self.coord.close()


def timed(call: Callable[[], Any], times: int) -> list[float]:
    out = []
    for _ in range(times):
        started = time.perf_counter()
        call()
        out.append(time.perf_counter() - started)
    return out


def summary_ms(seconds: list[float]) -> dict[str, float | None]:
    def ms(value: float | None) -> float | None:
        return None if value is None else round(value * 1000, 1)

    return {"n": len(seconds), "p50_ms": ms(median(seconds)),
            "p95_ms": ms(percentile(seconds, 0.95)), "max_ms": ms(max(seconds, default=None))}


def snapshot_facts(coord: Coordinator, times: int) -> dict[str, Any]:
    """The one read every spare tick, every protection check and every site API call makes; and
    the commit watermarks, which it no longer carries (what that saves per read)."""
    seconds = timed(lambda: SiteState.read(coord), times)
    found = coord.get_prefixes(STATE_PREFIXES)
    by_prefix: dict[str, list[int]] = {}
    for kv in found.kvs:
        prefix = kv.key.split("/", 1)[0]
        entry = by_prefix.setdefault(prefix, [0, 0])
        entry[0] += 1
        entry[1] += len(kv.value)
    watermarks = coord.get_prefix(layout.WATERMARKS_PREFIX).kvs
    return {"read": summary_ms(seconds),
            "watermarks_outside": {"keys": len(watermarks),
                                   "value_bytes": sum(len(kv.value) for kv in watermarks)},
            "keys": len(found.kvs),
            "value_bytes": sum(v[1] for v in by_prefix.values()),
            "by_prefix": {p: {"keys": v[0], "value_bytes": v[1]}
                          for p, v in sorted(by_prefix.items())}}
