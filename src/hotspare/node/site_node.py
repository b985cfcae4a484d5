"""Run one node of a site (`hotspare node --config` with a `[site]` table).

The role comes from the site configuration in etcd, not from the node's file: a name listed under
`recording_servers` records its cameras and publishes liveness; a name under `failover_servers`
records nothing of its own and runs the spare loop. The node's own file only says who it is, where
its data lives and where its API listens.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from hotspare.api.app import API_PREFIX, create_app
from hotspare.api.fencing import ImportGate
from hotspare.api.routes_protection import protection_router
from hotspare.api.site_cors import allow_site_cors
from hotspare.api.site_merge import NODE_TIMEOUT_SECONDS
from hotspare.api.site_routes import SiteApi, site_router
from hotspare.client.node_client import NodeClient
from hotspare.config.models import NodeConfig, SiteMembership
from hotspare.coordination.etcd_adapter import Coordinator
from hotspare.export.mount import mount_export
from hotspare.failover.buffer_room import BufferRoomMonitor, RoomGauge
from hotspare.failover.protection import ProtectionMonitor
from hotspare.failover.server_agent import ServerAgent
from hotspare.failover.spare_agent import SpareAgent, SpareView
from hotspare.node.runtime import (
    READY_PREFIX,
    RetentionLoop,
    bind_socket,
    open_store,
    own_url,
    serve,
    write_node_file,
)
from hotspare.recorder.engine import Recorder
from hotspare.signing_keys import (
    BUILT_IN_KEYS,
    KeyFileError,
    TrustedPublicKey,
    install_trust_roots,
    read_trust_roots,
)
from hotspare.site.model import SiteConfig
from hotspare.site_secret import (
    SiteSecret,
    install_site_secret,
    installed_site_secret,
    read_site_secret,
)
from hotspare.sitestate import layout
from hotspare.sitestate.access import EtcdSite
from hotspare.sitestate.events import EventLog
from hotspare.sitestate.protection import live_report, report_json
from hotspare.sitestate.view import SiteView
from hotspare.store.segment_store import SegmentStore
from hotspare.tls import PeerTls
from hotspare.web.ui import mount_web_ui

log = logging.getLogger("hotspare.node.site")

SITE_WAIT_SECONDS = 30.0


def coordinator(site: SiteMembership, node: str | None = None) -> Coordinator:
    return Coordinator.for_member(site, node)


def _role(config: SiteConfig, name: str) -> str | None:
    if config.recording_server(name) is not None:
        return "recording"
    if config.failover_server(name) is not None:
        return "spare"
    return None


def tls_mismatch(config: NodeConfig, site: SiteConfig) -> str | None:
    """Why this node's own TLS and the site's `tls` flag disagree, or None. Peers pick the scheme
    from the flag: a plain-HTTP probe of a TLS port looks like a dead process to a spare."""
    if config.api.tls == site.site.tls:
        return None
    if site.site.tls:
        return (f"site {site.site.id!r} has `tls = true` but {config.name!r} serves plain HTTP; "
                "set [api] tls_cert_file and tls_key_file in its node.toml")
    return (f"{config.name!r} serves HTTPS ([api] tls_cert_file) but site {site.site.id!r} does "
            "not set `tls = true`, so its peers would speak plain HTTP to it; set [site] tls = "
            "true in site.toml and apply it, or remove the certificate")


def identity_mismatch(config: NodeConfig, site: SiteConfig) -> str | None:
    """Why this node's own credential and its `token_sha256` in the site disagree, or None: a
    spare whose uploads its servers cannot attribute would find out only at its first re-insert."""
    listed = site.node_identities()
    mine = next((digest for digest, name in listed.items() if name == config.name), None)
    token = config.api.node_token()
    if token is None:
        if mine is None:
            return None
        return (f"site {site.site.id!r} lists a token_sha256 for {config.name!r} but its "
                "node.toml sets no [api] node_token_file; give it the token file whose SHA-256 "
                "that is")
    if hashlib.sha256(token.encode("utf-8")).hexdigest() != mine:
        return (f"the SHA-256 of {config.name!r}'s [api] node_token_file is not the "
                f"token_sha256 site {site.site.id!r} lists for it; put the file's SHA-256 in "
                "site.toml and apply it")
    return None


def _trust_roots(site: SiteMembership) -> list[TrustedPublicKey]:
    """The licence keys of this installation (never the site document's own, issue 11)."""
    path = site.licence_keys_file
    if not path.is_file():
        log.error("no licence trust roots: %s does not exist, so no licence of site %s counts "
                  "here (its spares protect nothing); put the licence signing key's .pub file "
                  "there and restart the node", path, site.id)
        return list(BUILT_IN_KEYS)
    try:
        return read_trust_roots(path)
    except KeyFileError as exc:  # checked at load; changed since
        log.error("licence trust roots unusable (%s); no licence counts here", exc)
        return list(BUILT_IN_KEYS)


def _site_secret(site: SiteMembership) -> SiteSecret | None:
    """The key camera passwords are opened with; None (said once here, and by each camera with
    a password when it connects) when the node holds none."""
    path = site.site_secret_file
    if not path.is_file():
        log.info("no site secret (%s): cameras whose password is sealed in the site "
                 "configuration cannot connect from this node", path)
        return None
    try:
        return read_site_secret(path)
    except KeyFileError as exc:  # checked at load; changed since
        log.error("site secret unusable (%s): cameras with a password cannot connect", exc)
        return None


def run_site_node(config: NodeConfig) -> int:
    site = config.site
    assert site is not None
    config.data_dir.mkdir(parents=True, exist_ok=True)
    install_trust_roots(_trust_roots(site))
    install_site_secret(_site_secret(site), site.site_secret_file)
    coord = coordinator(site, config.name)
    view = SiteView(coord, config.data_dir / "site-cache.json")
    applied = view.load_initial(SITE_WAIT_SECONDS)
    if applied is None:
        print(
            f"hotspare node: no site configuration for site {site.id!r} in etcd "
            f"({', '.join(site.etcd_endpoints)}) and no cached copy; run `hotspare site apply` "
            "first",
            file=sys.stderr,
        )
        return 2
    role = _role(applied.config, config.name)
    if role is None:
        print(
            f"hotspare node: {config.name!r} is neither a recording server nor a failover "
            f"server of site {site.id!r}; add it to the site configuration",
            file=sys.stderr,
        )
        return 2
    mismatch = tls_mismatch(config, applied.config) or identity_mismatch(config, applied.config)
    if mismatch is not None:
        print(f"hotspare node: {mismatch}", file=sys.stderr)
        return 2
    view.on_change(lambda changed: _warn_tls_change(config, changed.config))
    events = EventLog(coord, config.name, site.events_keep)
    sock = bind_socket(config.api.host, config.api.port)
    host, port = sock.getsockname()[:2]
    url = own_url(config.api, host, port)
    token = config.api.outgoing_token()  # what this node presents to the others
    if role == "recording":
        app, start, stop = _recording_server(config, coord, view, events, url)
    else:
        app, start, stop = _spare(config, coord, view, events, url, token)
    secret = installed_site_secret()
    if secret is not None:  # playback grants keyed by the site secret, not the shared token
        app.state.grants.use_key(secret.derive(b"playback grants"))
    monitor = _protection(app, coord, view, events, config.name, site)
    peers = PeerTls(site.tls_ca_file, lambda: _site_tls(view))
    mount_export(app, config, coord, view, token, peers, url)
    _site_api_and_ui(app, coord, view, token, peers)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        start()
        view.watch()
        monitor.start()
        write_node_file(config, url)
        print(
            READY_PREFIX + json.dumps({"name": config.name, "url": url, "role": role}), flush=True
        )
        log.info("node %s (%s of site %s) API at %s", config.name, role, site.id, url)
        try:
            yield
        finally:
            log.info("node %s stopping", config.name)
            monitor.stop()
            stop()
            coord.close()

    app.router.lifespan_context = lifespan
    serve(app, config.api, sock)
    return 0


def _site_tls(view: SiteView) -> bool:
    applied = view.current
    return applied is not None and applied.config.site.tls


def _warn_tls_change(config: NodeConfig, site: SiteConfig) -> None:
    """A changed `tls` flag takes effect only when every node is restarted with matching [api]
    certificates; until then say so loudly rather than fail probes silently."""
    mismatch = tls_mismatch(config, site)
    if mismatch is not None:
        log.error("%s; restart the nodes once their certificates match the site", mismatch)


def _protection(app: FastAPI, coord: Coordinator, view: SiteView, events: EventLog, name: str,
                site: SiteMembership) -> ProtectionMonitor:
    """Every site node serves the live protection report and watches it for changes (issue 4;
    see hotspare/failover/protection.py for why every node and not the master alone)."""

    def report() -> dict[str, Any]:
        applied = view.current
        if applied is None:
            raise LookupError("this node has no site configuration yet")
        return report_json(live_report(coord, applied), applied)

    app.include_router(protection_router(report), prefix=API_PREFIX)
    monitor = ProtectionMonitor(coord, name, lambda: view.current, events,
                                start_grace=max(10.0, site.startup_grace_seconds))
    view.on_change(monitor.wake)
    return monitor


def _site_api_and_ui(app: FastAPI, coord: Coordinator, view: SiteView, token: str,
                     peers: PeerTls) -> None:
    """The site API and web UI (issue 5) on every node, not the master alone: they need only etcd
    and the other nodes' APIs, so the spare that assumes the master's identity serves them at the
    master's published address with no role transfer. Clients use the master, found through
    `GET /api/v1/site/endpoints` (docs/site-api.md). CORS and the UI are added last so that they
    wrap the token check: preflights and the UI's static files need no token, data calls do."""

    def report() -> dict[str, Any]:
        applied = view.current
        if applied is None:
            raise LookupError("this node has no site configuration yet")
        return report_json(live_report(coord, applied), applied)

    def client(url: str) -> NodeClient:  # URLs from site_state: https when the site says so
        return NodeClient(url, token, timeout=NODE_TIMEOUT_SECONDS, verify=peers.verify)

    app.include_router(site_router(SiteApi(coord, lambda: view.current, token, report, client)),
                       prefix=API_PREFIX)
    allow_site_cors(app)
    mount_web_ui(app)


def _recording_server(
    config: NodeConfig, coord: Coordinator, view: SiteView, events: EventLog, url: str
) -> tuple[FastAPI, Any, Any]:
    site = config.site
    assert site is not None and view.current is not None
    me = view.current.config.recording_server(config.name)
    assert me is not None
    store = open_store(config.data_dir / "store", config)
    recorder = Recorder(config.name, me.cameras, store, me.recording)
    retention = RetentionLoop(
        store, config, lambda camera, message: events.emit("early_deleted", config.name, message,
                                                           camera=camera))
    cameras = {c.id for c in me.cameras}
    agent = ServerAgent(EtcdSite(coord), config.name, url, site.lease_ttl_seconds,
                        recorder.health, events)

    def changed(applied: Any) -> None:
        mine = applied.config.recording_server(config.name)
        if mine is None:
            log.error(
                "%s was removed from the site configuration; it keeps recording its last "
                "cameras until restarted",
                config.name,
            )
            return
        # The API's camera set first: a removed camera must not be reported as "connecting"
        # (not recording) while its worker stops.
        cameras.intersection_update(c.id for c in mine.cameras)
        recorder.update_cameras(mine.cameras)
        cameras.update(c.id for c in mine.cameras)
        agent.wake()

    view.on_change(changed)

    def start() -> None:
        recorder.start()
        retention.start()
        agent.start()

    def stop() -> None:
        agent.stop()
        retention.stop()
        recorder.stop()
        store.close()

    app = create_app(
        store, recorder.health, config.api.bearer_token(), config.name, lambda: set(cameras),
        users=config.api.users, node_identities=lambda: _identities(view),
        playback_url_seconds=config.api.playback_url_seconds,
    )
    app.state.import_gate = ImportGate(EtcdSite(coord), config.name, lambda: _spares(view))
    return app, start, stop


def _identities(view: SiteView) -> dict[str, str]:
    applied = view.current
    return {} if applied is None else applied.config.node_identities()


def _spares(view: SiteView) -> set[str]:
    applied = view.current
    return set() if applied is None else {s.name for s in applied.config.failover_servers}


def _spare(
    config: NodeConfig, coord: Coordinator, view: SiteView, events: EventLog, url: str, token: str
) -> tuple[FastAPI, Any, Any]:
    site = config.site
    assert site is not None
    idle_store = SegmentStore.open(config.data_dir / "idle-store", config.name)
    holder: dict[str, FastAPI] = {}

    def show_store(store: SegmentStore) -> None:
        app = holder.get("app")
        if app is not None:
            app.state.node.store = store

    spare_view = SpareView(idle_store, show_store)
    gauge = RoomGauge(config.data_dir, config.retention.min_free_bytes, site.buffer_warn_seconds)
    agent = SpareAgent(
        EtcdSite(coord), config.name, url, token, config.data_dir, site, view, events, spare_view,
        gauge,
    )
    agent.open_leftover_buffers()
    view.on_change(lambda _applied: agent.wake())
    room = BufferRoomMonitor(config.name, config.data_dir, config.retention.min_free_bytes,
                             site.buffer_warn_seconds, lambda: view.current, events)

    def start() -> None:
        agent.start()
        room.start()
        coord.watch_prefix(layout.ALIVE_PREFIX, agent.wake)
        coord.watch_prefix(layout.CLAIMS_PREFIX, agent.wake)

    def stop() -> None:
        room.stop()
        agent.stop()
        idle_store.close()

    app = create_app(idle_store, spare_view.health, config.api.bearer_token(), config.name,
                     spare_view.known_cameras, users=config.api.users,
                     node_identities=lambda: _identities(view),
                     playback_url_seconds=config.api.playback_url_seconds)
    holder["app"] = app
    return app, start, stop
