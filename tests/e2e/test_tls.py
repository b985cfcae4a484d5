"""A real node serving HTTPS: clients that trust the site's CA get answers; a client without it
is refused with the certificate problem named; plain HTTP to the HTTPS port gets nothing; and a
spare's health probe counts an untrusted certificate as an error, never as a dead server."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from hotspare.cli.main import main
from hotspare.client.node_client import NodeClient
from hotspare.failover.probe import HealthProber, ProbeKind
from hotspare.tls import CA_FILE_ENV, client_context
from tests.support.certs import make_pki
from tests.support.node import make_node

# A camera nobody serves: the node knows the id (so its timeline answers) and records nothing.
CAMERA = ("cam-1", "rtsp://127.0.0.1:9/none")


@pytest.mark.slow
def test_node_over_https(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv(CA_FILE_ENV, raising=False)
    pki = make_pki(tmp_path / "pki")
    node = make_node(tmp_path, "rec-1", [CAMERA], api_extra={
        "tls_cert_file": str(pki.cert_file), "tls_key_file": str(pki.key_file)})
    token_file = tmp_path / "token"
    token_file.write_text(node.token)
    try:
        node.start()
        assert node.url is not None and node.url.startswith("https://127.0.0.1:")
        address = urlsplit(node.url).netloc

        with NodeClient(node.url, node.token, verify=client_context(pki.ca_file)) as client:
            assert client.health().server_name == "rec-1"

        cli = ["timeline", CAMERA[0], "--node", node.url, "--token-file", str(token_file)]
        assert main([*cli, "--ca-file", str(pki.ca_file)]) == 0
        assert "camera cam-1" in capsys.readouterr().out

        assert main(cli) == 1  # the system trust store does not know the site's CA
        err = capsys.readouterr().err
        assert "CERTIFICATE_VERIFY_FAILED" in err and "--ca-file" in err, err

        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            NodeClient(node.url, node.token, verify=client_context(None)).health()

        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://{address}/api/v1/health", timeout=5.0)
        assert main([*cli[:3], f"http://{address}", *cli[4:]]) == 1
        assert "try https://" in capsys.readouterr().err

        trusted = HealthProber(node.token, 2.0, pki.ca_file, lambda: True)
        untrusted = HealthProber(node.token, 2.0, None, lambda: True)
        try:
            assert trusted.probe(address).kind is ProbeKind.NOT_RECORDING  # camera unreachable
            refused = untrusted.probe(address)
            assert refused.kind is ProbeKind.ERROR, refused
            assert "CERTIFICATE_VERIFY_FAILED" in refused.detail
        finally:
            trusted.close()
            untrusted.close()
        assert node.process is not None and node.process.poll() is None  # still serving
    finally:
        node.stop()
