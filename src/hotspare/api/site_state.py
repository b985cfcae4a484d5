"""The site as the master shows it: server states, owners, spares, endpoints — from etcd alone.

Everything here is computed from one `SiteSnapshot` (the failover keys read at one etcd revision)
and the applied configuration, by pure functions, so the API, the web UI and the unit tests all
see the same answer for the same keys. Nothing here talks to another node: where video lives is
decided from the keys (`owners/`, `claims/`, `spares/`, `reinsert/`), and the timeline module asks
the nodes themselves.

Server states (a string, so clients can show it as is):

| state | when |
| --- | --- |
| `recording` | `alive/<server>` is present and no spare holds its claim or re-inserts into it |
| `covered-by-<spare>` | the server is not alive and `<spare>` holds `claims/<server>` |
| `returning` | the server is alive again while a spare still holds its claim or re-inserts |
| `down` | not alive and nobody covers it |
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hotspare.coordination.etcd_adapter import Coordinator
from hotspare.coordination.models import KeyValue
from hotspare.failover import keys
from hotspare.failover.site_config import AppliedSite
from hotspare.site.model import SiteConfig
from hotspare.tls import node_url


def address_url(address: str, config: SiteConfig) -> str:
    """A node's `host:port` from site.toml as the URL its API answers on (https when the site
    says `tls = true`)."""
    return node_url(address, config.site.tls)


def _json(kv: KeyValue) -> dict[str, Any]:
    try:
        value = kv.json()
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


@dataclass(frozen=True)
class SiteSnapshot:
    """The failover keys by name (prefix stripped), values parsed; one etcd revision."""

    revision: int = 0
    alive: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    spares: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    claims: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    owners: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    reinsert: Mapping[str, Mapping[str, dict[str, Any]]] = field(default_factory=dict)
    """server -> spare -> progress"""


def read_snapshot(coord: Coordinator) -> SiteSnapshot:
    """Five range reads pinned to the first one's revision, so states never mix two moments."""
    first = coord.get_prefix(keys.ALIVE_PREFIX)
    rev = first.revision

    def named(prefix: str, kvs: list[KeyValue]) -> dict[str, dict[str, Any]]:
        return {kv.key.removeprefix(prefix): _json(kv) for kv in kvs}

    reinsert: dict[str, dict[str, dict[str, Any]]] = {}
    for kv in coord.get_prefix(keys.REINSERT_PREFIX, revision=rev).kvs:
        server, _, spare = kv.key.removeprefix(keys.REINSERT_PREFIX).partition("/")
        reinsert.setdefault(server, {})[spare] = _json(kv)
    return SiteSnapshot(
        revision=rev,
        alive=named(keys.ALIVE_PREFIX, first.kvs),
        spares=named(keys.SPARES_PREFIX, coord.get_prefix(keys.SPARES_PREFIX, revision=rev).kvs),
        claims=named(keys.CLAIMS_PREFIX, coord.get_prefix(keys.CLAIMS_PREFIX, revision=rev).kvs),
        owners=named(keys.OWNERS_PREFIX, coord.get_prefix(keys.OWNERS_PREFIX, revision=rev).kvs),
        reinsert=reinsert,
    )


def server_state(server: str, snap: SiteSnapshot) -> str:
    claim = snap.claims.get(server)
    busy = claim is not None or bool(snap.reinsert.get(server))
    if server in snap.alive:
        return "returning" if busy else "recording"
    if claim is not None:
        return f"covered-by-{claim.get('spare', '?')}"
    return "down"


def owner_of(server: str, config: SiteConfig, snap: SiteSnapshot) -> tuple[str, str]:
    """(node, url) serving the server's cameras now: the covering spare while its claim holds,
    else the server itself at its configured address (an `owners/` key left by a finished
    coverage is not trusted once the claim is gone)."""
    claim = snap.claims.get(server)
    owner = snap.owners.get(server, {})
    if claim is not None:
        spare = str(claim.get("spare", ""))
        if owner.get("node") == spare and owner.get("url"):
            return spare, str(owner["url"])
        if claim.get("url"):
            return spare, str(claim["url"])
    me = config.recording_server(server)
    if me is not None:
        return server, address_url(me.address, config)
    return str(owner.get("node", server)), str(owner.get("url", ""))


def spare_url(name: str, config: SiteConfig, snap: SiteSnapshot) -> str:
    registered = snap.spares.get(name, {}).get("url")
    if registered:
        return str(registered)
    spare = config.failover_server(name)
    return address_url(spare.address, config) if spare is not None else ""


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
    if claim is not None and claim.get("spare"):
        found[str(claim["spare"])] = spare_url(str(claim["spare"]), config, snap)
    for spare, progress in snap.reinsert.get(server, {}).items():
        found.setdefault(spare, str(progress.get("url") or spare_url(spare, config, snap)))
    for spare, value in snap.spares.items():
        if server in (value.get("covering"), value.get("leftover")):
            found.setdefault(spare, spare_url(spare, config, snap))
    return {name: url for name, url in found.items() if url}


def servers_view(applied: AppliedSite, snap: SiteSnapshot,
                 protection: Mapping[str, Any] | None) -> dict[str, Any]:
    """`GET /site/servers`: recording servers and spares with state, owner, protection, allotment.

    `protection` is the live protection report (`report_json`), or None when it could not be made;
    the servers are still listed, with `protection: null`.
    """
    config = applied.config
    by_server = {s["name"]: s for s in (protection or {}).get("servers", [])}
    by_spare = {s["name"]: s for s in (protection or {}).get("spares", [])}
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
            "covered_by": str(claim.get("spare")) if claim is not None else None,
            "owner": {"node": node, "url": url},
            "cameras": [c.id for c in server.cameras],
            "protection": by_server.get(server.name),
            "reinsert": [
                {"spare": spare, **{k: progress.get(k) for k in ("total", "done", "bytes")}}
                for spare, progress in sorted(snap.reinsert.get(server.name, {}).items())
            ],
        })
    spares = []
    for spare in config.failover_servers:
        value = snap.spares.get(spare.name)
        spares.append({
            "name": spare.name,
            "address": address_url(spare.address, config),
            "state": "down" if value is None else str(value.get("state", "idle")),
            "covering": None if value is None else value.get("covering"),
            "leftover": None if value is None else value.get("leftover"),
            "licensed": allotment.is_licensed(spare.name),
            "allotment": allotment.of(spare.name),
            "limit": by_spare.get(spare.name, {}).get("limit"),
            "standby": by_spare.get(spare.name, {}).get("standby"),
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
