"""A real node keeps a spare's idle probe connection open past uvicorn's default 5 s, so the
spare's watch on it still sees the node's death at once after a long probe round (on a site of 200
servers a round took up to 8 s, and two crashes in five waited for the next probe: issue 14)."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from hotspare.failover.probe import HealthProber, ProbeKind
from hotspare.failover.probe_watch import ProbeWatch
from hotspare.wire import KEEP_ALIVE_SECONDS
from tests.support.certs import make_pki
from tests.support.node import make_node
from tests.unit.test_failover_probe_watch import Closed

pytestmark = pytest.mark.slow

UVICORN_DEFAULT_KEEP_ALIVE = 5.0


def test_an_idle_probe_connection_outlives_uvicorns_default_and_the_nodes_death_is_seen_at_once(
        tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    node = make_node(tmp_path, "rec-1", [], api_extra={
        "tls_cert_file": str(pki.cert_file), "tls_key_file": str(pki.key_file)})
    closed = Closed()
    prober = HealthProber(node.token, 2.0, ca_file=pki.ca_file, tls=lambda: True)
    watch = ProbeWatch(prober, closed)
    node.start()
    watch.start()
    try:
        assert node.url is not None and node.url.startswith("https://")
        address = urlsplit(node.url).netloc
        first = prober.probe(address)
        assert first.kind in (ProbeKind.RECORDING, ProbeKind.NOT_RECORDING), first
        assert KEEP_ALIVE_SECONDS > UVICORN_DEFAULT_KEEP_ALIVE + 1.0
        time.sleep(UVICORN_DEFAULT_KEEP_ALIVE + 1.0)
        assert closed.addresses == [], "the node closed the idle probe connection"
        assert len(prober.idle_connections()) == 1, "the watch let the idle connection go"
        killed_at = time.monotonic()
        node.kill()
        assert closed.seen.wait(2.0), "the node's death was not seen on the idle connection"
        noticed = time.monotonic() - killed_at
        print(f"death seen on a connection idle {UVICORN_DEFAULT_KEEP_ALIVE + 1.0:.0f} s: "
              f"{noticed * 1000:.0f} ms after SIGKILL")
        assert closed.addresses == [address]
        assert noticed < 1.0, noticed
        assert prober.probe(address).kind is ProbeKind.REFUSED
    finally:
        watch.stop()
        prober.close()
        node.kill()
