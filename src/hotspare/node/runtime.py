"""Run one recording server: store, recorder engine and HTTP API in one process.

The recorder starts before the API answers and stops (committing what it has written) after the API
has stopped taking requests, so a graceful stop never leaves a written segment unindexed.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI

from hotspare import metrics
from hotspare.api.app import create_app
from hotspare.config.models import ApiSettings, NodeConfig
from hotspare.recorder.engine import Recorder
from hotspare.redact import redact_url
from hotspare.store.retention import RetentionReport
from hotspare.store.segment_store import SegmentStore
from hotspare.tls import node_url
from hotspare.wire import KEEP_ALIVE_SECONDS

log = logging.getLogger("hotspare.node")

READY_PREFIX = "HOTSPARE-NODE-READY "


def wall_now_us() -> int:
    return time.time_ns() // 1000


def max_age_us(config: NodeConfig) -> int | None:
    days = config.retention.max_age_days
    return None if days is None else int(days * 86_400 * 1_000_000)


def open_store(root: Path, config: NodeConfig) -> SegmentStore:
    """Open a node's store with its retention reserve, so a full disk is freed before reconcile
    writes (otherwise the node could never start again to run the retention that frees it)."""
    return SegmentStore.open(root, config.name, min_free_bytes=config.retention.min_free_bytes,
                             max_age_us=max_age_us(config))


EarlyDeletionSink = Callable[[str, str], None]
"""(camera, message) of video deleted before max_age_days: a site node emits a site event."""


def report_early_deletions(report: RetentionReport | None,
                           sink: EarlyDeletionSink | None = None) -> None:
    """Count (and pass on) what retention deleted before its time; the store logged the WARNING."""
    if report is None:
        return
    for early in report.early.values():
        metrics.RETENTION_EARLY_DELETED.labels(early.camera_id).inc(early.segments)
        if sink is not None:
            sink(early.camera_id, f"retention deleted video before max_age_days to keep free "
                                  f"space: {early.describe()}; add disk or lower max_age_days")


class RetentionLoop:
    """Applies retention periodically on its own thread; a failure is logged, never fatal."""

    def __init__(self, store: SegmentStore, config: NodeConfig,
                 early_sink: EarlyDeletionSink | None = None) -> None:
        self._store = store
        self._settings = config.retention
        self._early_sink = early_sink
        report_early_deletions(store.open_retention, early_sink)
        store.on_retention = lambda report: report_early_deletions(report, early_sink)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="retention", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        max_age = self._settings.max_age_days
        max_age_us = None if max_age is None else int(max_age * 86_400 * 1_000_000)
        while not self._stop.wait(self._settings.interval_seconds):
            try:
                report = self._store.apply_retention(
                    max_age_us, self._settings.min_free_bytes, wall_now_us()
                )
                report_early_deletions(report, self._early_sink)
            except Exception:
                log.exception(
                    "retention pass failed on store %s; will retry in %.0f s",
                    self._store.root,
                    self._settings.interval_seconds,
                )


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind before starting uvicorn, so port 0 (tests) yields the real port for READY."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted connections only when the
    # listening socket names it, and without it every response waits ~40 ms for a delayed ACK
    # (measured: 44 ms per health probe, 56 ms per 1 MB import; 1.3 ms and 7 ms with it).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(
            f"cannot listen on {host}:{port}: {exc.strerror}; "
            "pick another [api] port or stop the process using it"
        ) from exc
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def own_url(api: ApiSettings, host: str, port: int) -> str:
    """The URL this node announces (READY line, node.json, etcd): the scheme it really serves,
    so a peer or tool never has to guess it."""
    return node_url(f"[{host}]:{port}" if ":" in host else f"{host}:{port}", api.tls)


def serve(app: FastAPI, api: ApiSettings, sock: socket.socket) -> None:
    """Serve on the bound socket, over TLS when `[api]` names a certificate (already loaded once
    by config validation, so a bad file never gets this far)."""
    tls: dict[str, Any] = {}
    if api.tls_cert_file is not None and api.tls_key_file is not None:
        tls = {"ssl_certfile": str(api.tls_cert_file), "ssl_keyfile": str(api.tls_key_file)}
    server = uvicorn.Server(
        uvicorn.Config(app, log_config=None, access_log=False, timeout_graceful_shutdown=5,
                       timeout_keep_alive=KEEP_ALIVE_SECONDS, **tls)
    )
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        # uvicorn shuts down gracefully on Ctrl-C / SIGINT, then raises it again for the caller:
        # for a node that is the normal way to stop, and the caller's own shutdown follows.
        log.info("interrupted (SIGINT): HTTP server stopped")


def write_node_file(config: NodeConfig, url: str) -> Path:
    """`data_dir/node.json` tells local tools where this node listens (port 0 = chosen at start)."""
    path = config.data_dir / "node.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(
        json.dumps({"name": config.name, "url": url, "pid": os.getpid()}), encoding="utf-8"
    )
    os.replace(tmp, path)
    return path


def run_node(config: NodeConfig) -> int:
    """Serve until SIGINT/SIGTERM (uvicorn installs the handlers on every platform it supports)."""
    config.data_dir.mkdir(parents=True, exist_ok=True)
    store = open_store(config.data_dir / "store", config)
    recorder = Recorder(config.name, config.cameras, store, config.recording)
    retention = RetentionLoop(store, config)
    camera_ids = {camera.id for camera in config.cameras}

    sock = bind_socket(config.api.host, config.api.port)
    host, port = sock.getsockname()[:2]
    url = own_url(config.api, host, port)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        recorder.start()
        retention.start()
        write_node_file(config, url)
        print(READY_PREFIX + json.dumps({"name": config.name, "url": url}), flush=True)
        log.info("node %s recording %d camera(s), API at %s", config.name, len(camera_ids), url)
        try:
            yield
        finally:
            log.info("node %s stopping: committing open segments", config.name)
            retention.stop()
            recorder.stop()
            store.close()

    app = create_app(
        store, recorder.health, config.api.bearer_token(), config.name, lambda: set(camera_ids),
        users=config.api.users, playback_url_seconds=config.api.playback_url_seconds,
    )
    app.router.lifespan_context = lifespan
    serve(app, config.api, sock)
    return 0


def describe(config: NodeConfig) -> dict[str, Any]:
    """A secret-free summary of a configuration, for `hotspare config check`."""
    return {
        "name": config.name,
        "data_dir": str(config.data_dir),
        "api": f"{config.api.host}:{config.api.port}",
        "https": config.api.tls,
        "cameras": [{"id": c.id, "url": redact_url(c.url), "transport": c.transport}
                    for c in config.cameras],
        "segment_seconds": config.recording.segment_seconds,
    }
