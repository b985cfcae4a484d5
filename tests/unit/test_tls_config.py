"""TLS configuration: a node refuses certificate files it could not serve with, naming the field;
every URL to a node follows the site's one `tls` flag; clients always verify."""

from __future__ import annotations

from pathlib import Path

import pytest

from hotspare.api.site_state import SiteSnapshot, endpoints_view
from hotspare.cli.main import main
from hotspare.config.load import ConfigError, load_node_config
from hotspare.config.models import NodeConfig
from hotspare.node.site_node import tls_mismatch
from hotspare.site.model import SiteConfig
from hotspare.tls import CA_FILE_ENV, PeerTls, TlsSetupError, ca_file_from_env, explain, node_url
from tests.support.certs import Pki, make_pki

BASE = """\
name = "rec-1"
data_dir = "data"

[api]
port = 0
token = "secret-token-0123456789"
"""


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def load(tmp_path: Path, api_extra: str, tail: str = "") -> NodeConfig:
    path = tmp_path / "node.toml"
    path.write_text(BASE + api_extra + tail, encoding="utf-8")
    return load_node_config(path)


def pair(cert: Path | str, key: Path | str) -> str:
    return f"tls_cert_file = '{cert}'\ntls_key_file = '{key}'\n"


def refusal(tmp_path: Path, api_extra: str, tail: str = "") -> str:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, api_extra, tail)
    return str(caught.value)


def test_cert_and_key_serve_https_and_resolve_beside_node_toml(tmp_path: Path, pki: Pki) -> None:
    (tmp_path / "tls").mkdir()
    for src in (pki.cert_file, pki.key_file):
        (tmp_path / "tls" / src.name).write_bytes(src.read_bytes())
    config = load(tmp_path, pair("tls/server.pem", "tls/server.key"))
    assert config.api.tls
    assert config.api.tls_cert_file == (tmp_path / "tls" / "server.pem").resolve()
    assert config.api.tls_key_file == (tmp_path / "tls" / "server.key").resolve()


def test_no_tls_by_default(tmp_path: Path) -> None:
    assert not load(tmp_path, "").api.tls


@pytest.mark.parametrize("line", ["tls_cert_file = 'c.pem'\n", "tls_key_file = 'k.pem'\n"])
def test_cert_and_key_come_together(tmp_path: Path, line: str) -> None:
    message = refusal(tmp_path, line)
    assert "api:" in message and "set both `tls_cert_file` and `tls_key_file`" in message


def test_missing_cert_file_is_named(tmp_path: Path, pki: Pki) -> None:
    message = refusal(tmp_path, pair("nope.pem", pki.key_file))
    assert "tls_cert_file" in message and "nope.pem does not exist" in message


def test_key_of_another_certificate_is_refused(tmp_path: Path, pki: Pki) -> None:
    other = make_pki(tmp_path / "other")
    message = refusal(tmp_path, pair(pki.cert_file, other.key_file))
    assert "tls_cert_file/tls_key_file: cannot load" in message
    assert "the certificate's own" in message


def test_encrypted_key_is_refused_without_prompting(tmp_path: Path, pki: Pki) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    encrypted = tmp_path / "enc.key"
    encrypted.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pw")))
    message = refusal(tmp_path, pair(pki.cert_file, encrypted))
    assert "tls_key_file" in message and "encrypted" in message


SITE = "\n[site]\nid = 's'\netcd_endpoints = ['https://127.0.0.1:2379']\n"


def test_site_ca_file_must_hold_a_certificate(tmp_path: Path, pki: Pki) -> None:
    message = refusal(tmp_path, "", SITE + f"tls_ca_file = '{pki.key_file}'\n")
    assert "site.tls_ca_file" in message and "no usable PEM certificate" in message
    message = refusal(tmp_path, "", SITE + "tls_ca_file = 'missing-ca.pem'\n")
    assert "site.tls_ca_file" in message and "does not exist" in message


def test_site_ca_file_resolves_beside_node_toml(tmp_path: Path, pki: Pki) -> None:
    (tmp_path / "ca.pem").write_bytes(pki.ca_file.read_bytes())
    config = load(tmp_path, "", SITE + "tls_ca_file = 'ca.pem'\n")
    assert config.site is not None
    assert config.site.tls_ca_file == (tmp_path / "ca.pem").resolve()


def site_config(tls: bool) -> SiteConfig:
    return SiteConfig.model_validate({
        "site": {"id": "t", "tls": tls},
        "etcd": {"endpoints": ["http://127.0.0.1:2379"]},
        "recording_servers": [{"name": "rec-1", "address": "rec-1.test:8600", "role": "master"}],
        "failover_servers": [{"name": "spare-1", "address": "[::1]:8601"}],
    })


@pytest.mark.parametrize(("tls", "scheme"), [(False, "http"), (True, "https")])
def test_every_node_url_follows_the_site_flag(tls: bool, scheme: str) -> None:
    view = endpoints_view(site_config(tls), SiteSnapshot())
    assert view["master"]["url"] == f"{scheme}://rec-1.test:8600"
    assert [n["url"] for n in view["nodes"]] == [f"{scheme}://rec-1.test:8600",
                                                 f"{scheme}://[::1]:8601"]
    assert node_url("h:1", tls) == f"{scheme}://h:1"
    assert PeerTls(None, lambda: tls).url("h:1") == f"{scheme}://h:1"


def test_site_tls_is_off_by_default() -> None:
    assert not SiteConfig.model_validate({
        "site": {"id": "t"}, "etcd": {"endpoints": ["http://127.0.0.1:2379"]},
        "recording_servers": [{"name": "rec-1", "address": "h:1", "role": "master"}],
    }).site.tls


def test_node_and_site_must_agree_on_tls(tmp_path: Path, pki: Pki) -> None:
    plain = load(tmp_path, "")
    https = load(tmp_path, pair(pki.cert_file, pki.key_file))
    assert tls_mismatch(plain, site_config(False)) is None
    assert tls_mismatch(https, site_config(True)) is None
    assert "set [api] tls_cert_file" in str(tls_mismatch(plain, site_config(True)))
    assert "tls = true" in str(tls_mismatch(https, site_config(False)))


def test_peer_context_verifies_and_reports_a_bad_bundle(tmp_path: Path, pki: Pki) -> None:
    import ssl

    context = PeerTls(pki.ca_file, lambda: True).verify
    assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname
    with pytest.raises(TlsSetupError, match="does not exist"):
        _ = PeerTls(tmp_path / "gone.pem").verify


def test_ca_file_option_falls_back_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CA_FILE_ENV, "/etc/site-ca.pem")
    assert ca_file_from_env(None) == Path("/etc/site-ca.pem")
    assert ca_file_from_env(Path("given.pem")) == Path("given.pem")
    monkeypatch.delenv(CA_FILE_ENV)
    assert ca_file_from_env(None) is None


def test_cli_refuses_a_missing_ca_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    token = tmp_path / "token"
    token.write_text("secret-token-0123456789")
    for command in (["status"], ["timeline", "cam-1"]):
        code = main([*command, "--node", "https://127.0.0.1:9", "--token-file", str(token),
                     "--ca-file", str(tmp_path / "no-ca.pem")])
        assert code == 2
        assert "no-ca.pem does not exist" in capsys.readouterr().err


def test_explain_names_the_certificate_problem() -> None:
    untrusted = explain(OSError("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed"))
    assert "not trusted" in untrusted and "--ca-file" in untrusted
    assert "does not speak TLS" in explain(OSError("[SSL: WRONG_VERSION_NUMBER] wrong version"))
    assert explain(OSError("refused")) == "refused"
