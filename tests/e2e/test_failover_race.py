"""Two spares: exactly one claim per failed server, ever (read from etcd's history)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from hotspare.coordination.models import ChangeType
from hotspare.sitestate import layout
from tests.support.site import FailoverSite

pytestmark = pytest.mark.slow


def test_two_spares_two_failures_one_claim_each(tmp_path: Path) -> None:
    with FailoverSite(tmp_path, servers={"rec-1": 2, "rec-2": 2},
                      spares=["spare-1", "spare-2"]) as site:
        assert site.coord is not None
        site.start_all()
        start_rev = site.coord.revision()
        time.sleep(1.0)
        site.node("rec-1").kill()
        site.node("rec-2").kill()
        first = site.wait_event("claimed", "rec-1", timeout=15)
        second = site.wait_event("claimed", "rec-2", timeout=15)
        site.wait_event("recording", "rec-1", timeout=20)
        site.wait_event("recording", "rec-2", timeout=20)
        time.sleep(3.0)  # time for any late loser to (wrongly) claim
        holders = {s: (site.claim(s) or {}).get("spare") for s in ("rec-1", "rec-2")}
        assert set(holders.values()) == {"spare-1", "spare-2"}, holders
        history = site.coord.history(layout.CLAIMS_PREFIX, from_revision=start_rev, prefix=True)
        creates = [e.kv.key for e in history if e.type is ChangeType.PUT and e.kv.version == 1]
        print("claims created:", creates, "holders:", holders)
        print(site.event_lines())
        assert sorted(creates) == [layout.claim("rec-1"), layout.claim("rec-2")], creates
        claimed = [e for e in site.events() if e.kind == "claimed"]
        assert len(claimed) == 2, claimed
        assert {first.node, second.node} == {"spare-1", "spare-2"}


def test_two_spares_one_failure_exactly_one_claim(tmp_path: Path) -> None:
    with FailoverSite(tmp_path, servers={"rec-1": 2}, spares=["spare-1", "spare-2"]) as site:
        assert site.coord is not None
        site.start_all()
        start_rev = site.coord.revision()
        site.node("rec-1").kill()
        winner = site.wait_event("claimed", "rec-1", timeout=15)
        site.wait_event("recording", "rec-1", timeout=20)
        time.sleep(3.0)
        history = site.coord.history(layout.claim("rec-1"), from_revision=start_rev)
        creates = [e for e in history if e.type is ChangeType.PUT and e.kv.version == 1]
        assert len(creates) == 1, history
        assert len(history) == 1, history  # never deleted or re-made either
        assert (site.claim("rec-1") or {}).get("spare") == winner.node
        assert [e.node for e in site.events() if e.kind == "claimed"] == [winner.node]
        loser = "spare-2" if winner.node == "spare-1" else "spare-1"
        log = site.node(loser).log_path.read_text()
        print("loser tried:", "claim on rec-1 lost to" in log)


def test_etcd_leader_killed_during_takeover(tmp_path: Path) -> None:
    # The product's default lease (3 s), not the tests' usual 2 s: after a leader is killed the
    # members wait 1-2 s (randomized election timeout) before voting, and a holder that has no
    # keepalive answered within its TTL must count its lease lost (it cannot tell an election
    # from being cut off). With 2 s the test failed once in a loaded full-suite run with two
    # creates of the claim, most likely that (its logs were not kept).
    with FailoverSite(tmp_path, servers={"rec-1": 2}, spares=["spare-1", "spare-2"],
                      etcd_size=3, lease_ttl=3.0) as site:
        assert site.coord is not None and site.etcd is not None
        site.start_all()
        start_rev = site.coord.revision()
        leader = site.etcd.leader()
        site.node("rec-1").kill()
        leader.kill()
        claimed = site.wait_event("claimed", "rec-1", timeout=30)
        site.wait_event("recording", "rec-1", node=claimed.node, timeout=30)
        time.sleep(2.0)
        history = site.coord.history(layout.claim("rec-1"), from_revision=start_rev)
        creates = [e for e in history if e.type is ChangeType.PUT and e.kv.version == 1]
        assert len(creates) == 1, history
        print(site.event_lines())
