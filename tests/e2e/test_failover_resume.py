"""Interruptions: a spare killed mid re-insert resumes (store exact); a frozen etcd causes no
takeover of a server that keeps recording."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from hotspare.sitestate import layout
from tests.support.camsim import now_us
from tests.support.site import FailoverSite, check_exact, crash_until_mid_reinsert, wait_for

pytestmark = pytest.mark.slow


def test_spare_killed_mid_reinsert_resumes(tmp_path: Path) -> None:
    # ~40 KB segments at 60 KB/s: the re-insert of ~20 segments takes long enough to interrupt.
    with FailoverSite(tmp_path, servers={"rec-1": 2}, spares=["spare-1"],
                      reinsert_bytes_per_second=60_000) as site:
        site.start_all()
        # 4 s of cover still leaves a re-insert of several seconds at this rate, and the kill
        # must land inside it (crash_until_mid_reinsert asserts done < total); 6 s only made the
        # re-insert longer.
        mid = crash_until_mid_reinsert(site, "rec-1", "spare-1", covered_seconds=4.0)
        progress = mid.progress
        site.node("spare-1").kill()
        killed_us = now_us()
        print("killed spare-1 at", progress)
        time.sleep(1.0)
        site.start("spare-1")
        done = site.wait_event("done", "rec-1", node="spare-1", timeout=90, after_us=killed_us)
        print("done:", done.data)
        assert done.data["total"] == progress["total"]
        assert done.data["done"] == done.data["total"]
        wait_for("claim gone", lambda: site.claim("rec-1") is None, 10)
        assert site.get(layout.reinsert("rec-1", "spare-1")) is None
        assert site.get(layout.buffer("rec-1", "spare-1")) is None  # the leftover grant ends
        time.sleep(1.5)
        end_us = now_us()
        site.node("rec-1").stop()
        print(site.event_lines())
        missing = check_exact(site, "rec-1", mid.allowed(), end_us)
        print("missing", missing)


def test_frozen_etcd_no_takeover_recording_continues(tmp_path: Path) -> None:
    with FailoverSite(tmp_path, servers={"rec-1": 2}, spares=["spare-1"]) as site:
        assert site.etcd is not None
        site.start_all()
        wait_for("rec-1 confirmed", lambda: site.alive("rec-1", confirmed=True), 15)
        start_us = now_us()
        member = site.etcd.members[0]
        member.freeze()
        try:
            time.sleep(site.lease_ttl + 4.0)
        finally:
            member.thaw()
        thaw_us = now_us()
        time.sleep(site.lease_ttl + 3.0)  # room for a wrong takeover after etcd comes back
        wait_for("rec-1 publishes liveness again", lambda: site.alive("rec-1"), 15)
        assert site.claim("rec-1") is None
        claimed = [e for e in site.events() if e.kind == "claimed"]
        assert not claimed, site.event_lines()
        end_us = now_us()
        site.node("spare-1").stop()
        site.node("rec-1").stop()
        print(site.event_lines())
        # Recording never stopped: nothing missing between the start and the end.
        missing = check_exact(site, "rec-1", [], end_us)
        print("missing", missing, "freeze", (thaw_us - start_us) / 1e6, "s")
