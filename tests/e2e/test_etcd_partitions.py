"""etcd itself partitioned, over test hosts (tests/support/netsite.py).

- an etcd minority: the member every node talks to first is cut from the other two, while the
  nodes still reach it. It cannot commit anything (no quorum), so each node must move its
  requests, keepalives and watches to the majority: no takeover, no lease lost, no write
  accepted by the minority, recording goes on;
- etcd unreachable for every node (its host's link down) for longer than a lease: etcd, still
  running, expires every lease during the cut, yet nobody is taken over (no mass failover) and
  the server records on from its cached site.

The loopback variant of the second case (etcd frozen, so no lease expires during the freeze) is
tests/e2e/test_failover_resume.py.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from hotspare.coordination.errors import EtcdUnavailableError
from hotspare.coordination.etcd_adapter import Coordinator
from hotspare.sitestate import layout
from tests.support.camsim import now_us
from tests.support.netsite import NetSite
from tests.support.site import check_exact, wait_for

pytestmark = pytest.mark.slow

CUT_S = 6.0
"""Three lease TTLs (2 s): any keepalive, watch or claim stuck on the cut side would show."""


def _settle(site: NetSite) -> None:
    site.start_all()
    wait_for("rec-1 confirmed", lambda: site.alive("rec-1", confirmed=True), 20)
    time.sleep(2.0)


def _steady(site: NetSite, seconds: float) -> None:
    """For `seconds`, both leases must hold: read from the majority, the keys stay."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert site.alive("rec-1"), "rec-1's lease lapsed: its keepalives stayed on the minority"
        assert site.get(layout.spare("spare-1")), "spare-1's registration lapsed"
        time.sleep(0.5)


def _claims_since(site: NetSite, since_us: int) -> list[str]:
    return [e.line() for e in site.events() if e.kind == "claimed" and e.wall_us >= since_us]


def test_an_etcd_minority_is_left_for_the_majority(tmp_path: Path) -> None:
    with NetSite(tmp_path, servers={"rec-1": 2}, spares=["spare-1"], etcd_size=3) as site:
        assert site.etcd is not None
        _settle(site)
        minority = site.etcd.members[0]  # first in every node's endpoint list: the one they use
        alive_before = site.get(layout.alive("rec-1"))
        assert alive_before is not None
        cut_us = now_us()
        site.net.partition("etcd1", "etcd2")
        site.net.partition("etcd1", "etcd3")
        refused_write: str | None = None
        try:
            # The majority elects a leader among itself (if etcd1 led) and keeps the site.
            _steady(site, CUT_S / 2)
            # Now the spare's probes of rec-1 go unanswered too: it asks rec-1 through etcd,
            # and rec-1 hears the question only if its watches moved to the majority as well.
            site.net.partition("spare-1", "rec-1")
            try:
                suspected = site.wait_event("suspected", "rec-1", timeout=5, after_us=cut_us)
                _steady(site, CUT_S / 2)
            finally:
                site.net.heal("spare-1", "rec-1")
            # The minority accepts no write: it cannot reach a quorum.
            lone = Coordinator([minority.endpoint], layout.site_prefix(site.site_id),
                               timeout=0.5, deadline=2.0, tls=site.etcd.client_tls)
            try:
                lone.put("probe/minority", "stale")
            except EtcdUnavailableError as exc:
                refused_write = str(exc)
            finally:
                lone.close()
        finally:
            site.net.heal("etcd1", "etcd2")
            site.net.heal("etcd1", "etcd3")
        time.sleep(3.0)  # room for a late, wrong takeover
        print(site.event_lines())
        assert "cut off from this spare only" in suspected.message, suspected.message
        assert refused_write is not None, "the minority member accepted a write"
        print("minority write refused:", refused_write)
        assert site.get("probe/minority") is None
        assert not _claims_since(site, cut_us), _claims_since(site, cut_us)
        assert site.claim("rec-1") is None
        assert site.alive("rec-1", confirmed=True)
        end_us = now_us()
        site.node("spare-1").stop()
        site.node("rec-1").stop()
        missing = check_exact(site, "rec-1", [], end_us)
        assert not any(missing.values()), missing


def test_etcd_unreachable_for_everyone_is_no_mass_failover(tmp_path: Path) -> None:
    with NetSite(tmp_path, servers={"rec-1": 2, "rec-2": 1}, spares=["spare-1"]) as site:
        _settle(site)
        wait_for("rec-2 confirmed", lambda: site.alive("rec-2", confirmed=True), 20)
        etcd_host = site.host("etcd")
        cut_us = now_us()
        etcd_host.link_down()
        try:
            time.sleep(CUT_S)
        finally:
            back_us = now_us()
            etcd_host.link_up()
        # etcd expired every lease while nobody could reach it; the servers grant new ones.
        for server in ("rec-1", "rec-2"):
            wait_for(f"{server} publishes liveness again",
                     lambda s=server: site.alive(s), 15)  # type: ignore[misc]
        time.sleep(site.lease_ttl + 2.0)  # room for a wrong takeover after etcd is back
        print(site.event_lines())
        print(f"etcd away {(back_us - cut_us) / 1e6:.1f} s")
        assert not _claims_since(site, cut_us), _claims_since(site, cut_us)
        assert site.claim("rec-1") is None and site.claim("rec-2") is None
        end_us = now_us()
        for name in ("spare-1", "rec-1", "rec-2"):
            site.node(name).stop()
        for server in ("rec-1", "rec-2"):
            missing = check_exact(site, server, [], end_us)
            assert not any(missing.values()), (server, missing)
