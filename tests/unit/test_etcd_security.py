"""How the adapter reaches etcd: https is never downgraded, http needs the insecure switch, and
a node config's etcd TLS files are checked with the field named."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from hotspare.config.load import ConfigError, load_node_config
from hotspare.coordination.etcd_adapter import Coordinator
from hotspare.etcd_security import EtcdSecurityError, EtcdTls, endpoint_scheme
from hotspare.pki.certs import CertKind
from tests.support.etcd import session_pki


def _url(coord: Coordinator) -> str:
    client = coord._client(coord.endpoints[0])
    return str(client.get_url("kv/range"))


def test_https_endpoint_is_never_downgraded() -> None:
    coord = Coordinator(["https://etcd1.example:2379/"], "/hotspare/s/")
    assert coord.endpoints == ["etcd1.example:2379"]
    assert coord.scheme == "https"
    assert _url(coord).startswith("https://etcd1.example:2379/")
    with pytest.raises(EtcdSecurityError, match="insecure_plaintext is set but"):
        Coordinator(["https://etcd1.example:2379"], "/hotspare/s/", insecure_plaintext=True)


def test_endpoint_without_scheme_means_https() -> None:
    assert _url(Coordinator(["10.0.0.5"], "/hotspare/s/")).startswith("https://10.0.0.5:2379/")


def test_http_only_with_the_insecure_switch(caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(EtcdSecurityError, match=r"use http://: plain HTTP lets anyone"):
        Coordinator(["http://127.0.0.1:2379"], "/hotspare/s/")
    with caplog.at_level(logging.WARNING):
        coord = Coordinator(["http://127.0.0.1:2379"], "/hotspare/s/", insecure_plaintext=True)
    assert _url(coord).startswith("http://127.0.0.1:2379/")
    assert any("plain HTTP (insecure_plaintext)" in r.getMessage() for r in caplog.records)


def test_mixed_or_contradictory_settings_are_refused(tmp_path: Path) -> None:
    with pytest.raises(EtcdSecurityError, match="mix http:// and https://"):
        endpoint_scheme(["http://a:1", "https://b:2"], None, False)
    with pytest.raises(EtcdSecurityError, match="together with etcd TLS files"):
        endpoint_scheme(["a:1"], EtcdTls(ca_file=tmp_path / "ca.pem"), True)
    with pytest.raises(EtcdSecurityError, match="both the etcd client certificate and its key"):
        EtcdTls(cert_file=tmp_path / "c.pem")


def test_client_certificate_goes_into_the_session() -> None:
    files = session_pki().ensure(CertKind.CLIENT, "unit-admin")
    coord = Coordinator(["127.0.0.1:2379"], "/hotspare/s/",
                        tls=EtcdTls(files.ca_file, files.cert_file, files.key_file))
    session = coord._client(coord.endpoints[0]).session
    assert session.verify == str(files.ca_file)
    assert session.cert == (str(files.cert_file), str(files.key_file))
    assert session.trust_env is False  # $REQUESTS_CA_BUNDLE cannot replace the site CA


def _node_toml(tmp_path: Path, site_extra: str) -> Path:
    path = tmp_path / "node.toml"
    path.write_text(f"""
name = "rec-1"
data_dir = "data"
[api]
token = "a-long-enough-node-token-0123456789"
[site]
id = "s"
etcd_endpoints = ["https://127.0.0.1:2379"]
{site_extra}
""", encoding="utf-8")
    return path


def test_node_config_names_the_missing_etcd_file(tmp_path: Path) -> None:
    files = session_pki().ensure(CertKind.NODE, "rec-1", ["127.0.0.1"])
    good = (f'etcd_ca_file = "{files.ca_file.as_posix()}"\n'
            f'etcd_cert_file = "{files.cert_file.as_posix()}"\n'
            f'etcd_key_file = "{files.key_file.as_posix()}"\n')
    site = load_node_config(_node_toml(tmp_path, good)).site
    assert site is not None and site.etcd_tls.cert_file == files.cert_file

    missing = good.replace(files.cert_file.as_posix(), (tmp_path / "gone.pem").as_posix())
    with pytest.raises(ConfigError, match=r"site\.etcd_cert_file.*gone\.pem does not exist"):
        load_node_config(_node_toml(tmp_path, missing))

    only_cert = good.replace(f'etcd_key_file = "{files.key_file.as_posix()}"\n', "")
    with pytest.raises(ConfigError, match=r"set both `etcd_cert_file` and `etcd_key_file`"):
        load_node_config(_node_toml(tmp_path, only_cert))

    wrong_key = good.replace(files.key_file.as_posix(),
                             session_pki().ensure(CertKind.CLIENT, "unit-admin").key_file
                             .as_posix())
    with pytest.raises(ConfigError, match=r"etcd_cert_file / etcd_key_file: cannot load"):
        load_node_config(_node_toml(tmp_path, wrong_key))


def test_node_config_refuses_http_without_the_switch(tmp_path: Path) -> None:
    plain = _node_toml(tmp_path, "").read_text().replace("https://", "http://")
    (tmp_path / "node.toml").write_text(plain, encoding="utf-8")
    with pytest.raises(ConfigError, match=r"etcd_endpoints / etcd_insecure_plaintext: .*http://"):
        load_node_config(tmp_path / "node.toml")
    (tmp_path / "node.toml").write_text(plain + "etcd_insecure_plaintext = true\n",
                                        encoding="utf-8")
    site = load_node_config(tmp_path / "node.toml").site
    assert site is not None and site.etcd_insecure_plaintext
