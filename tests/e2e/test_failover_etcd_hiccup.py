"""etcd frozen during a re-insert under a claim, then thawed: the re-insert completes, frames
exactly once, and the claim is released.

While etcd is frozen the original cannot check the fencing token of an upload. That must read as
"retry later", not as "your token is stale": a spare that took it for a refusal stood down without
releasing its claim, and no spare covered that server again until the spare restarted.

The lease (10 s) outlives the freeze (4.5 s), so the spare's claim survives it, while a node's
etcd deadline (3 s) is shorter than the freeze, so the original's fencing check does fail during it.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from hotspare.sitestate import layout
from tests.support.camsim import now_us
from tests.support.site import FailoverSite, check_exact, crash_until_mid_reinsert, wait_for

pytestmark = pytest.mark.slow

FREEZE_SECONDS = 4.5


def test_etcd_frozen_during_reinsert_then_claim_released(tmp_path: Path) -> None:
    # ~40 KB segments at 60 KB/s: the re-insert of ~20 segments takes long enough to freeze in.
    with FailoverSite(tmp_path, servers={"rec-1": 2}, spares=["spare-1"], lease_ttl=10.0,
                      reinsert_bytes_per_second=60_000) as site:
        assert site.etcd is not None
        site.start_all()
        # 5 s of cover: ~14 segments, ~9 s of re-insert at this rate, the freeze begins ~2 s
        # in (3 segments done) and ends well before it is over (asserted below: done comes
        # after the thaw); 8 s only made the re-insert longer.
        mid = crash_until_mid_reinsert(site, "rec-1", "spare-1", covered_seconds=5.0)
        key = layout.reinsert("rec-1", "spare-1")
        member = site.etcd.members[0]
        member.freeze()
        try:
            time.sleep(FREEZE_SECONDS)
        finally:
            member.thaw()
        thawed_us = now_us()
        done = site.wait_event("done", "rec-1", node="spare-1", timeout=90,
                               after_us=mid.restart_us)
        print("done:", done.data, done.message)
        assert done.wall_us > thawed_us, "the re-insert was over before etcd thawed"
        wait_for("claim on rec-1 released", lambda: site.claim("rec-1") is None, 15)
        assert site.get(key) is None
        assert done.data["done"] == done.data["total"], done.data
        stood_down = [e for e in site.events() if e.kind == "stood_down"]
        assert not stood_down, site.event_lines()
        wait_for("spare idle", lambda: (site.get("spares/spare-1") or {}).get("state")
                 == "idle", 10)
        time.sleep(1.5)
        end_us = now_us()
        site.node("rec-1").stop()
        print(site.event_lines())
        print("thawed", (done.wall_us - thawed_us) / 1e6, "s before done")
        missing = check_exact(site, "rec-1", mid.allowed(), end_us)
        print("missing", missing)
