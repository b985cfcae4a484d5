"""Node configurations for end-to-end tests; the processes are the product's own launcher."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import tomli_w

from hotspare.node.process import NodeProcess

__all__ = ["NodeProcess", "make_node"]


def make_node(
    tmp: Path,
    name: str,
    cameras: Sequence[tuple[str, str]],
    *,
    segment_seconds: float = 2.0,
    transport: str = "tcp",
    token: str = "test-token-0123456789",
    api_extra: Mapping[str, str] | None = None,
) -> NodeProcess:
    """Write a node config for `cameras` [(id, rtsp url)] under tmp/name; return the node.
    `api_extra` adds `[api]` fields (e.g. tls_cert_file/tls_key_file for an HTTPS node)."""
    base = tmp / name
    base.mkdir(parents=True, exist_ok=True)
    config = {
        "name": name,
        "data_dir": str(base / "data"),
        "api": {"host": "127.0.0.1", "port": 0, "token": token, **(api_extra or {})},
        "recording": {
            "segment_seconds": segment_seconds,
            "reconnect_initial_seconds": 0.2,
            "reconnect_max_seconds": 1.0,
            "open_timeout_seconds": 3.0,
        },
        "retention": {"max_age_days": 30, "min_free_bytes": 0},
        "cameras": [{"id": cid, "url": url, "transport": transport} for cid, url in cameras],
    }
    path = base / "node.toml"
    path.write_bytes(tomli_w.dumps(config).encode())
    return NodeProcess(
        name=name, config_path=path, data_dir=base / "data", token=token, log_path=base / "node.log"
    )
