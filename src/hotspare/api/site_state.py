"""The site as the master shows it: server states, owners, spares, endpoints — from etcd alone.

Everything here is computed from one `SiteState` (the site keys, typed, read at one etcd revision)
and the applied configuration, by pure functions, so the API, the web UI and the unit tests all
see the same answer for the same keys. Nothing here talks to another node: where video lives is
decided from the keys (`owners/`, `claims/`, `spares/`, `reinsert/`), and the timeline module asks
the nodes themselves.

Which node, from the keys; at which URL, never: a node's URL is built only from its `address` in
the applied site configuration and the site's TLS flag (design decision 12). A URL that a runtime
key publishes and that differs is ignored and logged (once per key and URL), because whoever can
write etcd could otherwise send the master's requests — and the credentials they carry — to a
listener of their own (issue 11).

Server states (a string, so clients can show it as is):

| state | when |
| --- | --- |
| `recording` | `alive/<server>` is present and no spare holds its claim or re-inserts into it |
| `covered-by-<spare>` | the server is not alive and `<spare>` holds `claims/<server>` |
| `returning` | the server is alive again while a spare still holds its claim or re-inserts |
| `down` | not alive and nobody covers it |
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from hotspare.coordination.etcd_adapter import Coordinator
from hotspare.site.model import SiteConfig
from hotspare.sitestate.applied import AppliedSite
from hotspare.sitestate.snapshot import SiteState
from hotspare.tls import node_url

SiteSnapshot = SiteState
"""The name the site API's callers know the snapshot by."""

log = logging.getLogger("hotspare.api.site_state")
_REPORTED_MAX = 1000
_reported: set[tuple[str, str, str]] = set()


def address_url(address: str, config: SiteConfig) -> str:
    """A node's `host:port` from site.toml as the URL its API answers on (https when the site
    says `tls = true`)."""
    return node_url(address, config.site.tls)


def configured_url(name: str, config: SiteConfig) -> str:
    """Node `name`'s URL from the site configuration; "" for a name the site does not list."""
    node = config.recording_server(name) or config.failover_server(name)
    return address_url(node.address, config) if node is not None else ""


def _url_of(name: str, published: str, key: str, config: SiteConfig) -> str:
    """`name`'s configured URL; `published` (read from etcd `key`) is only compared with it."""
    url = configured_url(name, config)
    if published and published != url:
        seen = (key, name, published)
        if seen not in _reported and len(_reported) < _REPORTED_MAX:
            _reported.add(seen)
            log.warning("etcd %s names %s at %s, but the site configuration puts it at %s; the "
                        "runtime value is ignored (node URLs come only from config/site). Check "
                        "who writes to etcd, or re-apply the site if %s has moved", key, name,
                        published, url or "no address (not a node of the site)", name)
    return url


def read_snapshot(coord: Coordinator) -> SiteState:
    """One read at one revision, so states never mix two moments."""
    return SiteState.read(coord)


def server_state(server: str, snap: SiteSnapshot) -> str:
    claim = snap.claims.get(server)
    busy = claim is not None or bool(snap.reinsert.get(server))
    if server in snap.alive:
        return "returning" if busy else "recording"
    if claim is not None:
        return f"covered-by-{claim.spare}"
    return "down"


def owner_of(server: str, config: SiteConfig, snap: SiteSnapshot) -> tuple[str, str]:
    """(node, url) serving the server's cameras now: the covering spare while its claim holds,
    else the server itself (an `owners/` key left by a finished coverage is not trusted once the
    claim is gone). URLs from the configuration only (module docstring); a claim by a node the
    site does not list is ignored."""
    claim = snap.claims.get(server)
    owner = snap.owners.get(server)
    if claim is not None:
        if owner is not None and owner.node == claim.spare:
            _url_of(claim.spare, owner.url, f"owners/{server}", config)
        url = _url_of(claim.spare, claim.url, f"claims/{server}", config)
        if url:
            return claim.spare, url
    me = config.recording_server(server)
    if me is not None:
        return server, address_url(me.address, config)
    if owner is None:
        return server, ""
    node = owner.node or server
    return node, _url_of(node, owner.url, f"owners/{server}", config)


def spare_url(name: str, config: SiteConfig, snap: SiteSnapshot) -> str:
    record = snap.spares.get(name)
    return _url_of(name, record.url if record is not None else "", f"spares/{name}", config)


def holders(server: str, config: SiteConfig, snap: SiteSnapshot) -> dict[str, str]:
    """Every node that may hold video of `server`'s cameras: name -> URL, the server first.

    Spares count when they hold the claim, re-insert into the server, or carry a leftover buffer
    for it (after a stand-down), because until re-insert finishes that video is only there.
    """
    found: dict[str, str] = {}
    me = config.recording_server(server)
    if me is not None:
        found[server] = address_url(me.address, config)
    claim = snap.claims.get(server)
    if claim is not None and claim.spare:
        found[claim.spare] = spare_url(claim.spare, config, snap)
    for spare, progress in snap.reinsert.get(server, {}).items():
        _url_of(spare, progress.url, f"reinsert/{server}/{spare}", config)
        found.setdefault(spare, spare_url(spare, config, snap))
    for spare, value in snap.spares.items():
        if server in (value.covering, value.leftover):
            found.setdefault(spare, spare_url(spare, config, snap))
    return {name: url for name, url in found.items() if url}


def servers_view(applied: AppliedSite, snap: SiteSnapshot,
                 protection_report: Mapping[str, Any] | None) -> dict[str, Any]:
    """`GET /site/servers`: recording servers and spares with state, owner, protection, allotment.

    `protection_report` is the live protection report (`report_json`), or None when it could not
    be made; the servers are still listed, with `protection: null`.
    """
    config = applied.config
    by_server = {s["name"]: s for s in (protection_report or {}).get("servers", [])}
    by_spare = {s["name"]: s for s in (protection_report or {}).get("spares", [])}
    allotment = applied.allotment()
    servers = []
    for server in config.recording_servers:
        node, url = owner_of(server.name, config, snap)
        claim = snap.claims.get(server.name)
        servers.append({
            "name": server.name,
            "role": server.role.value,
            "address": address_url(server.address, config),
            "state": server_state(server.name, snap),
            "covered_by": claim.spare if claim is not None else None,
            "owner": {"node": node, "url": url},
            "cameras": [c.id for c in server.cameras],
            "protection": by_server.get(server.name),
            "reinsert": [
                {"spare": spare, "total": progress.total, "done": progress.done,
                 "bytes": progress.bytes}
                for spare, progress in sorted(snap.reinsert.get(server.name, {}).items())
            ],
        })
    spares = []
    for spare in config.failover_servers:
        value = snap.spares.get(spare.name)
        spares.append({
            "name": spare.name,
            "address": address_url(spare.address, config),
            "state": "down" if value is None else value.state,
            "covering": None if value is None else value.covering,
            "leftover": None if value is None else value.leftover,
            "licensed": allotment.is_licensed(spare.name),
            "allotment": allotment.of(spare.name),
            "limit": by_spare.get(spare.name, {}).get("limit"),
            "standby": by_spare.get(spare.name, {}).get("standby"),
            "room": by_spare.get(spare.name, {}).get("room"),
        })
    return {"site_id": config.site.id, "revision": snap.revision,
            "master": config.master.name, "servers": servers, "spares": spares}


def cameras_view(config: SiteConfig, snap: SiteSnapshot) -> list[dict[str, Any]]:
    """`GET /site/cameras`: ids, names and where each is served; never a camera URL or login."""
    cameras = []
    for server in config.recording_servers:
        node, url = owner_of(server.name, config, snap)
        state = server_state(server.name, snap)
        for camera in server.cameras:
            cameras.append({"id": camera.id, "name": camera.name, "server": server.name,
                            "server_state": state, "owner": {"node": node, "url": url}})
    return cameras


def camera_server(config: SiteConfig, camera: str) -> str | None:
    for server in config.recording_servers:
        if any(c.id == camera for c in server.cameras):
            return server.name
    return None


def endpoints_view(config: SiteConfig, snap: SiteSnapshot) -> dict[str, Any]:
    """`GET /site/endpoints`: where the master is now and every node's URL.

    The master's URL is its `owners/` entry while a spare covers it (the spare serves its
    identity, site API included), else its own address. Clients keep this list and, when the
    master stops answering, ask any node on it for the list again (docs/site-api.md).
    """
    master = config.master
    node, url = owner_of(master.name, config, snap)
    nodes = [{"name": s.name, "role": s.role.value, "url": address_url(s.address, config)}
             for s in config.recording_servers]
    nodes += [{"name": s.name, "role": "spare", "url": spare_url(s.name, config, snap)}
              for s in config.failover_servers]
    return {"site_id": config.site.id, "master": {"name": master.name, "node": node, "url": url},
            "nodes": nodes}
