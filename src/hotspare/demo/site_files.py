"""Write a site's files: signing key, licence, site.toml and one node.toml per node.

The demo and the end-to-end tests lay out sites through this one module, so a test site is built
exactly like the one a newcomer runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import tomli_w

from hotspare.site.licences import issue_licence
from hotspare.site.signing_keys import generate_keypair, public_key_pem, read_private_key
from hotspare.tcp_ports import free_port


@dataclass
class ServerPlan:
    name: str
    cameras: dict[str, str]  # camera id -> RTSP URL
    role: str = "recording"  # or "master"
    platform: str = "linux"
    frame_grabber_inputs: int = 0
    port: int = 0
    extra: dict[str, Any] = field(default_factory=dict)  # more site-file fields, as written


@dataclass
class SparePlan:
    name: str
    port: int = 0
    max_cameras: int | None = None


@dataclass
class SitePlan:
    """What a site consists of; `write_site` turns it into files."""

    site_id: str
    etcd_endpoints: list[str]
    servers: list[ServerPlan]
    spares: list[SparePlan]
    token: str
    spare_licences: int | None = None  # default: one per spare
    camera_licences: int = 64
    recording: dict[str, Any] = field(default_factory=dict)
    membership: dict[str, Any] = field(default_factory=dict)  # [site] timings for node files
    host: str = "127.0.0.1"
    # [[api.users]] of every node: {"name", "role", "token_hash"}; the same on each, because the
    # master's UI sends a user's token on to the node holding the video.
    users: list[dict[str, str]] = field(default_factory=list)


def _endpoint_urls(endpoints: list[str]) -> list[str]:
    return [e if "://" in e else f"http://{e}" for e in endpoints]


def issue_site_licence(
    directory: Path, site_id: str, servers: int, cameras: int, days: int = 30
) -> tuple[str, str]:
    """Make a signing key in `directory` and a licence valid from yesterday: (licence, key PEM)."""
    private_path, _public_path, _key_id = generate_keypair(directory)
    private_key = read_private_key(private_path)
    now = datetime.now(UTC)
    licence = issue_licence(
        private_key, site_id, servers, cameras, now - timedelta(days=1), now + timedelta(days=days)
    )
    return licence, public_key_pem(private_key.public_key())


def site_document(plan: SitePlan, licence: str, public_pem: str) -> dict[str, Any]:
    every: list[ServerPlan | SparePlan] = [*plan.servers, *plan.spares]
    for node in every:
        if not node.port:
            node.port = free_port(plan.host)
    recording = [
        {
            "name": server.name,
            "address": f"{plan.host}:{server.port}",
            "role": server.role,
            "platform": server.platform,
            "frame_grabber_inputs": server.frame_grabber_inputs,
            "recording": dict(plan.recording),
            "cameras": [{"id": cid, "url": url} for cid, url in server.cameras.items()],
            **server.extra,
        }
        for server in plan.servers
    ]
    failover: list[dict[str, Any]] = []
    for spare in plan.spares:
        entry: dict[str, Any] = {"name": spare.name, "address": f"{plan.host}:{spare.port}"}
        if spare.max_cameras is not None:
            entry["max_cameras"] = spare.max_cameras
        failover.append(entry)
    return {
        "site": {"id": plan.site_id},
        "etcd": {"endpoints": _endpoint_urls(plan.etcd_endpoints)},
        "recording_servers": recording,
        "failover_servers": failover,
        "licences": [{"text": licence}],
        "trusted_keys": [{"public_key": public_pem}],
    }


def node_document(plan: SitePlan, name: str, port: int, data_dir: Path) -> dict[str, Any]:
    return {
        "name": name,
        "data_dir": str(data_dir),
        "api": {"host": plan.host, "port": port, "token": plan.token,
                **({"users": plan.users} if plan.users else {})},
        "retention": {"max_age_days": 30, "min_free_bytes": 0},
        "site": {
            "id": plan.site_id,
            "etcd_endpoints": _endpoint_urls(plan.etcd_endpoints),
            **plan.membership,
        },
    }


def write_toml(path: Path, document: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(tomli_w.dumps(document).encode("utf-8"))
    return path


@dataclass
class SiteFiles:
    site_toml: Path
    node_tomls: dict[str, Path]  # node name -> its node.toml
    document: dict[str, Any]


def write_site(base: Path, plan: SitePlan) -> SiteFiles:
    """Write keys/, site.toml and <node>/node.toml under `base`."""
    spare_licences = len(plan.spares) if plan.spare_licences is None else plan.spare_licences
    licence, pem = issue_site_licence(
        base / "keys", plan.site_id, spare_licences, plan.camera_licences
    )
    document = site_document(plan, licence, pem)
    every: list[ServerPlan | SparePlan] = [*plan.servers, *plan.spares]
    site_toml = write_toml(base / "site.toml", document)
    nodes = {
        node.name: write_toml(
            base / node.name / "node.toml",
            node_document(plan, node.name, node.port, base / node.name / "data"),
        )
        for node in every
    }
    return SiteFiles(site_toml, nodes, document)
