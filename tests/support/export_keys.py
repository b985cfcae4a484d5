"""A site export-signing key for a test site: made with the product's `export keygen`, named in
every node's `[site] export_signing_key_file` (any node may be serving the site API)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import tomli_w

from hotspare.cli.main import main as cli_main
from tests.support.site import FailoverSite


def give_export_key(site: FailoverSite, folder: Path) -> tuple[Path, Path]:
    """(private, public) key files; call before the nodes start."""
    assert cli_main(["export", "keygen", str(folder)]) == 0
    private, public = folder / "export-signing.key", folder / "export-signing.pub"
    assert private.stat().st_mode & 0o077 == 0
    for name in site.nodes:
        path = site.node(name).config_path
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
        doc["site"]["export_signing_key_file"] = str(private)
        path.write_text(tomli_w.dumps(doc), encoding="utf-8")
    return private, public
