"""Write a site's files: signing key, licence, site.toml and one node.toml per node, each node
with its own credential (`node.token`, its SHA-256 in site.toml as the node's `token_sha256`) and
the licence key it trusts (`licence-keys.pem`, also beside site.toml for `site apply`) and the
site secret camera passwords are sealed with (`site-secret.key`, beside site.toml too).

The demo and the end-to-end tests lay out sites through this one module, so a test site is built
exactly like the one a newcomer runs.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import tomli_w

from hotspare.pki.certs import CertKind
from hotspare.pki.store import SitePki
from hotspare.signing_keys import (
    TRUST_ROOTS_FILE,
    generate_keypair,
    public_key_pem,
    read_private_key,
)
from hotspare.site.licences import issue_licence
from hotspare.site_secret import SITE_SECRET_FILE, new_key_line
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
    # The site CA etcd trusts: each node gets a node certificate from it as its etcd client
    # identity. None: etcd is plain HTTP and every node must say etcd_insecure_plaintext.
    etcd_pki: SitePki | None = None


def _endpoint_urls(plan: SitePlan) -> list[str]:
    scheme = "https" if plan.etcd_pki is not None else "http"
    return [e if "://" in e else f"{scheme}://{e}" for e in plan.etcd_endpoints]


def _etcd_access(plan: SitePlan, name: str) -> dict[str, Any]:
    """A node's [site] etcd fields: its certificate from the site CA, or the insecure switch."""
    if plan.etcd_pki is None:
        return {"etcd_insecure_plaintext": True}
    files = plan.etcd_pki.ensure(CertKind.NODE, name, [plan.host])
    return {"etcd_ca_file": str(files.ca_file), "etcd_cert_file": str(files.cert_file),
            "etcd_key_file": str(files.key_file)}


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


def site_document(plan: SitePlan, licence: str,
                  node_tokens: dict[str, str] | None = None) -> dict[str, Any]:
    """`node_tokens`: node name -> its own credential, listed by SHA-256."""
    every: list[ServerPlan | SparePlan] = [*plan.servers, *plan.spares]
    for node in every:
        if not node.port:
            node.port = free_port(plan.host)
    digests = {name: hashlib.sha256(token.encode("utf-8")).hexdigest()
               for name, token in (node_tokens or {}).items()}

    def identity(name: str) -> dict[str, str]:
        return {"token_sha256": digests[name]} if name in digests else {}

    recording = [
        {
            "name": server.name,
            "address": f"{plan.host}:{server.port}",
            **identity(server.name),
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
        entry: dict[str, Any] = {"name": spare.name, "address": f"{plan.host}:{spare.port}",
                                 **identity(spare.name)}
        if spare.max_cameras is not None:
            entry["max_cameras"] = spare.max_cameras
        failover.append(entry)
    return {
        "site": {"id": plan.site_id},
        "etcd": {"endpoints": _endpoint_urls(plan)},
        "recording_servers": recording,
        "failover_servers": failover,
        "licences": [{"text": licence}],
    }


def node_document(plan: SitePlan, name: str, port: int, data_dir: Path,
                  node_token_file: Path | None = None) -> dict[str, Any]:
    own = {} if node_token_file is None else {"node_token_file": str(node_token_file)}
    return {
        "name": name,
        "data_dir": str(data_dir),
        "api": {"host": plan.host, "port": port, "token": plan.token, **own,
                **({"users": plan.users} if plan.users else {})},
        "retention": {"max_age_days": 30, "min_free_bytes": 0},
        "site": {
            "id": plan.site_id,
            "etcd_endpoints": _endpoint_urls(plan),
            **_etcd_access(plan, name),
            **plan.membership,
        },
    }


def write_toml(path: Path, document: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(tomli_w.dumps(document).encode("utf-8"))
    return path


def _write_secret(path: Path, text: str) -> Path:
    """Owner-only from the start (a credential never exists world-readable, even briefly)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text + "\n")
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
    every: list[ServerPlan | SparePlan] = [*plan.servers, *plan.spares]
    tokens = {node.name: secrets.token_urlsafe(32) for node in every}
    document = site_document(plan, licence, tokens)
    site_toml = write_toml(base / "site.toml", document)
    # The licence key is trusted by each installation, not by the document (issue 11); the site
    # secret that seals camera passwords is held by `site apply` and by every node alike.
    secret = new_key_line()
    for folder in [base, *(base / node.name for node in every)]:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / TRUST_ROOTS_FILE).write_text(pem, encoding="ascii")
        _write_secret(folder / SITE_SECRET_FILE, secret)
    nodes = {
        node.name: write_toml(
            base / node.name / "node.toml",
            node_document(plan, node.name, node.port, base / node.name / "data",
                          _write_secret(base / node.name / "node.token", tokens[node.name])),
        )
        for node in every
    }
    return SiteFiles(site_toml, nodes, document)
