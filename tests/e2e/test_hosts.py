"""Failover between hosts (network namespaces, tests/support/netsite.py), not just processes.

A killed process on a live host answers "refused" at once; a host whose link is cut answers
nothing, which is what a power cut, a dead switch port or a kernel panic looks like from the
spare. These tests measure both on the same site and check that a host that is only slow, or
silent for less than the silence that claims, is not taken over (partitions:
tests/e2e/test_partitions.py).
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import pytest

from hotspare.sitestate import layout
from tests.support.camsim import now_us
from tests.support.netsite import NetSite
from tests.support.site import check_exact, wait_for

pytestmark = pytest.mark.slow

VANISHED_HOST_BOUND_S = 1.0
"""Issue 12: a vanished host is claimed as fast as a dead process, within a second."""


AWAY_AFTER_RECORDING_S = 5.0
"""The host stays away this long once the spare records: its video then comes from the spare."""


def _wait_reinserted(site: NetSite, server: str, since_us: int) -> None:
    site.wait_event("handback", server, timeout=40, after_us=since_us)
    site.wait_event("done", server, timeout=60, after_us=since_us)
    wait_for("claim released", lambda: site.claim(server) is None, 10)
    wait_for("spare idle", lambda: (site.get(layout.spare("spare-1")) or {}).get("state")
             == "idle", 10)


def test_a_vanished_host_is_claimed_as_fast_as_a_dead_process(tmp_path: Path) -> None:
    with NetSite(tmp_path, servers={"rec-1": 2}, spares=["spare-1"],
                 camera_transport="udp") as site:
        site.start_all()
        time.sleep(3.0)  # some video on the original first

        # 1. The process dies, its host stays up: refused twice, claim at once.
        crash_us = now_us()
        site.node("rec-1").kill()
        claimed = site.wait_event("claimed", "rec-1", timeout=15, after_us=crash_us)
        crash_claim_s = (claimed.wall_us - crash_us) / 1e6
        crash_recording = site.wait_event("recording", "rec-1", timeout=20, after_us=crash_us)
        time.sleep(2.0)
        restart_us = now_us()
        site.start("rec-1")
        _wait_reinserted(site, "rec-1", restart_us)
        wait_for("rec-1 confirmed", lambda: site.alive("rec-1", confirmed=True), 15)
        time.sleep(2.0)  # steady state again: keepalives at their usual rhythm

        # 2. The host vanishes (process alive, link cut): silence, no refusal.
        rec = site.host("rec-1")
        cut_us = now_us()
        rec.link_down()
        try:
            cut_claimed = site.wait_event("claimed", "rec-1", timeout=15, after_us=cut_us)
            key_gone_us = wait_for("rec-1's alive key gone (lease expired)",
                                   lambda: None if site.alive("rec-1") else now_us(), 15, 0.05)
            with contextlib.suppress(AssertionError):  # see below
                site.wait_event("recording", "rec-1", timeout=10, after_us=cut_us)
            time.sleep(AWAY_AFTER_RECORDING_S)
        finally:
            back_us = now_us()
            rec.link_up()
        # Not required while the host is away: once in seven runs the spare got no frames from the
        # simulator until the link was back (its one shared stream per camera, with the vanished
        # server's TCP session stuck, is the suspect; docs/test-hosts.md).
        cut_recording = site.wait_event("recording", "rec-1", timeout=30, after_us=cut_us)
        cut_claim_s = (cut_claimed.wall_us - cut_us) / 1e6
        print(f"crash→claim {crash_claim_s:.2f} s ({claimed.message})")
        print(f"link-down→claim {cut_claim_s:.2f} s ({cut_claimed.message}); the lease "
              f"alone would have taken link-down→lease gone {(key_gone_us - cut_us) / 1e6:.2f} s; "
              f"link-down→spare recording {(cut_recording.wall_us - cut_us) / 1e6:.2f} s "
              f"(link back after {(back_us - cut_us) / 1e6:.2f} s"
              f"{'' if cut_recording.wall_us < back_us else '; the spare got no frames before'})")
        assert site.node("rec-1").process is not None
        assert site.node("rec-1").process.poll() is None, "rec-1 must have lived through the cut"

        # 3. The host comes back with its process: handback and re-insert as after a freeze.
        _wait_reinserted(site, "rec-1", back_us)
        time.sleep(2.0)
        end_us = now_us()
        site.node("rec-1").stop()
        print(site.event_lines())
        missing = check_exact(site, "rec-1", [(crash_us - 1_500_000, crash_recording.wall_us),
                                              (cut_us - 1_500_000, cut_recording.wall_us)],
                              end_us)
        print("missing", {c: [(round(a - cut_us / 1e6, 2), round(b - cut_us / 1e6, 2))
                              for a, b in w] for c, w in missing.items()})

        assert crash_claim_s <= VANISHED_HOST_BOUND_S, crash_claim_s
        assert "host silent" in cut_claimed.message, cut_claimed.message
        assert cut_claim_s <= VANISHED_HOST_BOUND_S, (
            f"link-down→claim {cut_claim_s:.2f} s > {VANISHED_HOST_BOUND_S} s "
            f"(crash→claim {crash_claim_s:.2f} s): {cut_claimed.message}")


FREEZE_S = 0.3
"""Shorter than the silence that claims (a probe unanswered for the probe timeout, 0.5 s here,
and a question through etcd asked after 0.15 s of it unanswered too; docs/design.md decision
5)."""
LINK_BLIP_S = 0.15
"""A link drop looks longer than it is: TCP resends what the drop lost only after its
retransmission timeout (≥ 0.2 s on Linux, doubling at each loss), and the server's answer waits
behind it. 0.3 s drops were claimed in two runs of three (docs/test-hosts.md)."""


def test_a_slow_but_alive_host_is_not_claimed(tmp_path: Path) -> None:
    """A link that drops, and a server frozen, for less than the silence that claims, and a
    server starved of CPU for seconds (stopped 150 ms of every 250 ms: it answers late but
    answers), are never claimed."""
    with NetSite(tmp_path, servers={"rec-1": 2}, spares=["spare-1"]) as site:
        site.start_all()
        wait_for("rec-1 confirmed", lambda: site.alive("rec-1", confirmed=True), 15)
        time.sleep(2.0)
        start_us = now_us()

        rec = site.host("rec-1")
        for _ in range(3):
            rec.link_down()
            try:
                time.sleep(LINK_BLIP_S)
            finally:
                rec.link_up()
            time.sleep(2.0)

        for _ in range(3):
            site.node("rec-1").freeze()
            try:
                time.sleep(FREEZE_S)
            finally:
                site.node("rec-1").thaw()
            time.sleep(2.0)

        starved_until = time.monotonic() + 4.0
        while time.monotonic() < starved_until:
            site.node("rec-1").freeze()
            try:
                time.sleep(0.15)
            finally:
                site.node("rec-1").thaw()
            time.sleep(0.1)
        time.sleep(4.0)  # well past a lease TTL (2 s): a claim would have been made by now

        print(site.event_lines())
        claims = [e for e in site.events() if e.kind == "claimed" and e.wall_us >= start_us]
        assert not claims, [e.line() for e in claims]
        assert site.claim("rec-1") is None
        assert site.alive("rec-1")
