"""`hotspare pki`: the site CA and what it issues; keys private, nothing overwritten silently."""

from __future__ import annotations

import datetime as dt
import stat
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from hotspare.cli.main import main as cli_main
from hotspare.pki.certs import CertKind
from hotspare.pki.store import PkiError, SitePki


def _usages(path: Path) -> set[x509.ObjectIdentifier]:
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    return set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


def test_cli_issues_each_kind(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pki = tmp_path / "pki"
    assert cli_main(["pki", "init-ca", str(pki)]) == 0
    assert cli_main(["pki", "issue-etcd", str(pki), "--name", "m1", "--host", "10.0.0.11",
                     "--host", "etcd1.example"]) == 0
    assert cli_main(["pki", "issue-node", str(pki), "--name", "rec-1", "--host", "10.0.0.21",
                     "--days", "30"]) == 0
    assert cli_main(["pki", "issue-client", str(pki), "--name", "admin"]) == 0
    server_and_client = {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    assert _usages(pki / "etcd" / "m1.pem") == server_and_client
    assert _usages(pki / "nodes" / "rec-1.pem") == server_and_client
    assert _usages(pki / "clients" / "admin.pem") == {ExtendedKeyUsageOID.CLIENT_AUTH}

    node = x509.load_pem_x509_certificate((pki / "nodes" / "rec-1.pem").read_bytes())
    assert node.subject.rfc4514_string() == "CN=rec-1"
    left = node.not_valid_after_utc - dt.datetime.now(dt.UTC)
    assert dt.timedelta(days=29) < left <= dt.timedelta(days=30)

    capsys.readouterr()
    assert cli_main(["pki", "show", str(pki)]) == 0
    out = capsys.readouterr().out
    assert "etcd     m1" in out and "hosts 10.0.0.11, etcd1.example" in out
    assert "nodes    rec-1" in out and "(30 days left)" in out


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX modes; Windows uses folder ACLs")
def test_keys_are_private(tmp_path: Path) -> None:
    pki = SitePki.init(tmp_path / "pki")
    files = pki.issue(CertKind.NODE, "rec-1", ["127.0.0.1"])
    for key in (pki.ca_key_file, files.key_file):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
    assert stat.S_IMODE((tmp_path / "pki" / "nodes").stat().st_mode) == 0o700
    reissued = pki.issue(CertKind.NODE, "rec-1", ["127.0.0.1"], replace=True)
    assert stat.S_IMODE(reissued.key_file.stat().st_mode) == 0o600


def test_nothing_is_overwritten_silently(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    pki = SitePki.init(tmp_path / "pki")
    ca_before = pki.ca_file.read_bytes()
    with pytest.raises(PkiError, match="already exists"):
        SitePki.init(tmp_path / "pki")
    assert pki.ca_file.read_bytes() == ca_before

    files = pki.issue(CertKind.NODE, "rec-1", ["127.0.0.1"])
    key_before = files.key_file.read_bytes()
    assert cli_main(["pki", "issue-node", str(tmp_path / "pki"), "--name", "rec-1",
                     "--host", "127.0.0.1"]) == 2
    assert "pass --replace to reissue" in capsys.readouterr().err
    assert files.key_file.read_bytes() == key_before
    pki.issue(CertKind.NODE, "rec-1", ["127.0.0.1"], replace=True)
    assert files.key_file.read_bytes() != key_before
    assert not list(files.key_file.parent.glob("*.new"))


def test_bad_requests_are_refused(tmp_path: Path) -> None:
    with pytest.raises(PkiError, match="holds no site CA"):
        SitePki(tmp_path / "none").issue(CertKind.CLIENT, "admin")
    pki = SitePki.init(tmp_path / "pki")
    with pytest.raises(PkiError, match="needs at least one --host"):
        pki.issue(CertKind.ETCD, "m1", [])
    with pytest.raises(PkiError, match="lower-case letters"):
        pki.issue(CertKind.CLIENT, "../evil")
    assert not (tmp_path / "pki" / "etcd").exists() or not list((tmp_path / "pki" / "etcd")
                                                                .iterdir())


def test_leaf_never_outlives_its_ca(tmp_path: Path) -> None:
    pki = SitePki.init(tmp_path / "pki", days=10)
    files = pki.issue(CertKind.CLIENT, "admin", days=400)
    cert = x509.load_pem_x509_certificate(files.cert_file.read_bytes())
    ca = x509.load_pem_x509_certificate(pki.ca_file.read_bytes())
    assert cert.not_valid_after_utc <= ca.not_valid_after_utc
