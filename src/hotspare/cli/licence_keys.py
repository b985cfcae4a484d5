"""`--licence-keys`: where a CLI command that judges licences finds the keys it trusts.

The keys are the installation's (`hotspare.signing_keys.read_trust_roots`), never the site
document's `trusted_keys`: a document that brings its own key could bring a licence signed with it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hotspare.config.load import ConfigError
from hotspare.signing_keys import (
    BUILT_IN_KEYS,
    TRUST_ROOTS_FILE,
    KeyFileError,
    TrustedPublicKey,
    install_trust_roots,
    read_trust_roots,
)
from hotspare.site.model import SiteConfig


def add_licence_keys_option(parser: argparse.ArgumentParser, beside: str) -> None:
    parser.add_argument(
        "--licence-keys", type=Path, metavar="PEM",
        help=f"the licence signing keys this installation trusts (PEM public keys); default "
        f"{TRUST_ROOTS_FILE} beside {beside}. The site file's trusted_keys are not trusted")


def install_licence_keys(args: argparse.Namespace, beside: Path) -> list[TrustedPublicKey]:
    """Read and install the trust roots; a missing default file leaves only the built-in keys
    (said on stderr), a missing or bad named file is a ConfigError."""
    path: Path | None = args.licence_keys
    if path is None:
        path = beside.parent / TRUST_ROOTS_FILE
        if not path.exists():
            print(f"warning: no {path}: no licence signing key is trusted besides the built-in "
                  f"ones ({len(BUILT_IN_KEYS)}), so licences signed by others are refused; put "
                  "the signing key's .pub file there or pass --licence-keys", file=sys.stderr)
            install_trust_roots(BUILT_IN_KEYS)
            return list(BUILT_IN_KEYS)
    try:
        keys = read_trust_roots(path)
    except KeyFileError as exc:
        raise ConfigError(f"--licence-keys: {exc}") from None
    install_trust_roots(keys)
    return keys


def warn_ignored_document_keys(site: SiteConfig, trusted: list[TrustedPublicKey],
                               document_keys: list[TrustedPublicKey]) -> None:
    """Say which of the document's own keys no longer count, so the operator can install them."""
    known = {key.key_id for key in trusted}
    for key in document_keys:
        if key.key_id not in known:
            print(f"warning: {key.source} ({key.key_id}) in the configuration of site "
                  f"{site.site.id!r} is not trusted: licence keys come from this installation's "
                  f"{TRUST_ROOTS_FILE} (and each node's), not from the site document",
                  file=sys.stderr)
