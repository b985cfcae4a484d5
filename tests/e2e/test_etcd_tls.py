"""etcd as the tests and the demo run it: client TLS with client-certificate auth.

Only a certificate from the site CA gets in. A client with no certificate, or with one from
another CA, fails its TLS handshake and writes nothing; a client speaking plain HTTP to the TLS
port gets nothing either. A node certificate (`hotspare pki issue-node`) works as the node's etcd
identity.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from hotspare.coordination.errors import EtcdUnavailableError
from hotspare.coordination.etcd_adapter import Coordinator
from hotspare.etcd_security import EtcdTls
from hotspare.pki.certs import CertKind
from hotspare.pki.store import SitePki
from tests.support.etcd import EtcdCluster, coordinator_for, session_pki

PREFIX = "/hotspare/locked/"


def _stranger(etcd1: EtcdCluster, tls: EtcdTls | None, *, plaintext: bool = False
              ) -> Coordinator:
    return Coordinator(etcd1.endpoints, PREFIX, timeout=0.5, deadline=1.5, tls=tls,
                       insecure_plaintext=plaintext)


def _refused(coord: Coordinator, what: str) -> str:
    with pytest.raises(EtcdUnavailableError) as info:
        coord.put("config/site", f"forged by {what}")
    coord.close()
    return str(info.value)


def test_only_certificates_of_the_site_ca_get_in(etcd1: EtcdCluster, tmp_path: Path) -> None:
    site_ca = etcd1.client_tls
    assert site_ca is not None and site_ca.ca_file is not None
    assert etcd1.members[0].client_url.startswith("https://")

    # A node with its own node certificate reads and writes.
    node_files = session_pki().ensure(CertKind.NODE, "rec-1", ["127.0.0.1"])
    node = Coordinator(etcd1.endpoints, PREFIX, timeout=1.0, deadline=5.0,
                       tls=EtcdTls(node_files.ca_file, node_files.cert_file, node_files.key_file))
    try:
        node.put("config/site", "genuine")
        assert node.get("config/site").value == b"genuine"  # type: ignore[union-attr]
        revision = node.revision()
    finally:
        node.close()

    # No client certificate: the server demands one, the handshake fails.
    error = _refused(_stranger(etcd1, EtcdTls(site_ca.ca_file)), "no certificate")
    assert "TLS handshake with etcd failed" in error, error

    # A certificate from another CA (the server does not trust its issuer).
    other = SitePki.init(tmp_path / "other-pki", "someone else's CA")
    forged = other.issue(CertKind.NODE, "rec-1", ["127.0.0.1"])
    error = _refused(_stranger(etcd1, EtcdTls(site_ca.ca_file, forged.cert_file,
                                                        forged.key_file)), "another CA")
    assert "TLS handshake with etcd failed" in error, error

    # Plain HTTP to the TLS port, even when the client explicitly allows plaintext.
    error = _refused(_stranger(etcd1, None, plaintext=True), "plain http")
    assert "use https://" in error, error

    # The same, below the adapter: requests with the site CA but no client certificate.
    with pytest.raises(requests.exceptions.SSLError):
        requests.post(f"{etcd1.members[0].client_url}/v3/kv/put", json={"key": "eA=="},
                      verify=str(site_ca.ca_file), timeout=2)

    checker = coordinator_for(etcd1, "locked")
    try:
        kv = checker.get("config/site")
        assert kv is not None and kv.value == b"genuine"
        assert checker.revision() == revision  # nothing the strangers sent was written
    finally:
        checker.close()


def test_plaintext_cluster_needs_the_insecure_switch(tmp_path: Path) -> None:
    from tests.support.etcd import start_etcd_cluster

    cluster = start_etcd_cluster(tmp_path / "etcd", 1, tls=False)
    try:
        assert cluster.insecure_plaintext and cluster.client_tls is None
        assert cluster.cli_args() == ["--etcd-insecure-plaintext"]
        # Without the switch the endpoint (no scheme) means https, and the handshake fails.
        error = _refused(Coordinator(cluster.endpoints, PREFIX, timeout=0.5, deadline=1.5),
                         "a https client")
        assert "SSL" in error or "record" in error or "Connection" in error, error
        plain = Coordinator(cluster.endpoints, PREFIX, insecure_plaintext=True)
        try:
            plain.put("k", "v")
            assert plain.get("k") is not None
        finally:
            plain.close()
    finally:
        cluster.stop()
