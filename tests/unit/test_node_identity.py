"""Per-node credentials (issue 11): validated where they are written, and known by the node API."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Any

import pytest

from hotspare.api.auth import Credentials
from hotspare.api.roles import Role
from hotspare.config.load import ConfigError, load_node_config
from hotspare.node.site_node import identity_mismatch
from hotspare.site.load import SiteConfigError, parse_site_config
from hotspare.site.model import SiteConfig

SHARED = "shared-site-token-0123456789"
OWN = "spare-1-own-credential-0123456789abcdef"


def _sha(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _site(spare_sha: str | None = None, rec_sha: str | None = None) -> SiteConfig:
    doc: dict[str, Any] = {
        "site": {"id": "harbour"},
        "etcd": {"endpoints": ["http://127.0.0.1:2379"]},
        "recording_servers": [{"name": "rec-1", "address": "127.0.0.1:1", "role": "master"}],
        "failover_servers": [{"name": "spare-1", "address": "127.0.0.1:2"}],
    }
    if rec_sha is not None:
        doc["recording_servers"][0]["token_sha256"] = rec_sha
    if spare_sha is not None:
        doc["failover_servers"][0]["token_sha256"] = spare_sha
    return SiteConfig.model_validate(doc)


def _node_toml(tmp_path: Path, token_file: str | None) -> Path:
    own = f'node_token_file = "{token_file}"\n' if token_file is not None else ""
    path = tmp_path / "node.toml"
    path.write_text(f'name = "spare-1"\ndata_dir = "data"\n[api]\ntoken = "{SHARED}"\n{own}'
                    '[site]\nid = "harbour"\netcd_endpoints = ["https://127.0.0.1:2379"]\n')
    return path


def test_node_token_file_is_read_and_checked_at_load(tmp_path: Path) -> None:
    (tmp_path / "node.token").write_text(OWN + "\n")
    config = load_node_config(_node_toml(tmp_path, "node.token"))
    assert config.api.node_token() == OWN and config.api.outgoing_token() == OWN
    assert load_node_config(_node_toml(tmp_path, None)).api.outgoing_token() == SHARED
    with pytest.raises(ConfigError, match=r"api\.node_token_file.*cannot read"):
        load_node_config(_node_toml(tmp_path, "missing.token"))
    (tmp_path / "weak.token").write_text("short\n")
    with pytest.raises(ConfigError, match=r"api\.node_token_file.*at least 16"):
        load_node_config(_node_toml(tmp_path, "weak.token"))


def test_site_identities_are_validated_and_distinct() -> None:
    site = _site(spare_sha=_sha(OWN), rec_sha=_sha("rec-1-own-credential-0123456789"))
    assert site.node_identities()[_sha(OWN)] == "spare-1"
    text = ('[site]\nid = "harbour"\n[etcd]\nendpoints = ["http://127.0.0.1:2379"]\n'
            '[[recording_servers]]\nname = "rec-1"\naddress = "127.0.0.1:1"\nrole = "master"\n'
            'token_sha256 = "{a}"\n[[failover_servers]]\nname = "spare-1"\n'
            'address = "127.0.0.1:2"\ntoken_sha256 = "{b}"\n')
    with pytest.raises(SiteConfigError, match=r"failover_servers\.0\.token_sha256"):
        parse_site_config(text.format(a=_sha(OWN), b="not-a-digest"), "site.toml")
    with pytest.raises(SiteConfigError, match=r"'spare-1' is the same as that of 'rec-1'"):
        parse_site_config(text.format(a=_sha(OWN), b=_sha(OWN)), "site.toml")


def test_a_node_whose_credential_and_site_entry_disagree_is_told_which(tmp_path: Path) -> None:
    (tmp_path / "node.token").write_text(OWN)
    with_token = load_node_config(_node_toml(tmp_path, "node.token"))
    without = load_node_config(_node_toml(tmp_path, None))
    assert identity_mismatch(with_token, _site(spare_sha=_sha(OWN))) is None
    assert identity_mismatch(without, _site()) is None
    assert "is not the token_sha256" in str(identity_mismatch(with_token, _site(_sha("other"))))
    assert "is not the token_sha256" in str(identity_mismatch(with_token, _site()))
    assert "sets no [api] node_token_file" in str(identity_mismatch(without, _site(_sha(OWN))))


def test_credentials_name_the_node_that_presents_its_own_token() -> None:
    identities = {_sha(OWN): "spare-1"}
    credentials = Credentials(SHARED, identities=lambda: identities)
    own = asyncio.run(credentials.principal(OWN))
    assert own is not None and not hasattr(own, "retry_after")
    assert (own.name, own.role, own.node) == ("spare-1", Role.NODE, "spare-1")  # type: ignore[union-attr]
    shared = asyncio.run(credentials.principal(SHARED))
    assert (shared.role, shared.node) == (Role.NODE, None)  # type: ignore[union-attr]
    identities.clear()  # the node was removed from the site: its token opens nothing now
    assert asyncio.run(credentials.principal(OWN)) is None
