"""A throwaway CA and one server certificate for TLS tests, made by the product's own PKI code
(hotspare.pki.certs), so the tests exercise the certificates `hotspare pki` issues."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hotspare.pki.certs import CertKind, issue, new_ca


@dataclass(frozen=True)
class Pki:
    ca_file: Path
    cert_file: Path
    key_file: Path


def make_pki(folder: Path, host: str = "127.0.0.1", ca_name: str = "hotspare test CA") -> Pki:
    """A CA and one node certificate for `host` (an IP address or a DNS name) it signed."""
    folder.mkdir(parents=True, exist_ok=True)
    ca = new_ca(ca_name, days=1)
    leaf = issue(ca, CertKind.NODE, host, [host], days=1)
    pki = Pki(folder / "ca.pem", folder / "server.pem", folder / "server.key")
    pki.ca_file.write_bytes(ca.cert_pem())
    pki.cert_file.write_bytes(leaf.cert_pem())
    pki.key_file.write_bytes(leaf.key_pem())
    return pki
