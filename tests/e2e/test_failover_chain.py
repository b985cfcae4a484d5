"""The covering spare fails (frozen past its lease, or killed): another spare takes over; the
frozen one's stale-token writes are refused and it stands down; when everyone is back, both
spares' buffers are re-inserted and the original's store is exact."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from hotspare.failover.reinsert import FENCING_HEADER
from hotspare.sitestate import layout
from tests.support.camsim import now_us
from tests.support.site import FailoverSite, check_exact, wait_for

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("how", ["freeze", "kill"])
def test_covering_spare_fails(tmp_path: Path, how: str) -> None:
    with FailoverSite(tmp_path, servers={"rec-1": 2}, spares=["spare-1", "spare-2"]) as site:
        site.start_all()
        time.sleep(2.0)
        crash_us = now_us()
        site.node("rec-1").kill()
        first = site.wait_event("claimed", "rec-1", timeout=15)
        first_rec = site.wait_event("recording", "rec-1", node=first.node, timeout=20)
        covering = first.node
        other = "spare-2" if covering == "spare-1" else "spare-1"
        time.sleep(2.0)
        fail_us = now_us()
        if how == "freeze":
            site.node(covering).freeze()
        else:
            site.node(covering).kill()
        second = site.wait_event("claimed", "rec-1", node=other, timeout=20, after_us=fail_us)
        second_rec = site.wait_event("recording", "rec-1", node=other, timeout=20,
                                     after_us=fail_us)
        print(f"{how}: covering spare failed → next claim "
              f"{(second.wall_us - fail_us) / 1e6:.2f} s")
        if how == "freeze":
            site.node(covering).thaw()
            down = site.wait_event("stood_down", "rec-1", node=covering, timeout=15,
                                   after_us=fail_us)
            assert down.data["stale_write_refused"] is True, down
            assert down.data["token"] == first.data["token"]
        else:
            site.start(covering)  # comes back with a buffer to re-insert
        assert (site.claim("rec-1") or {}).get("spare") == other
        time.sleep(2.0)
        restart_us = now_us()
        site.start("rec-1")
        site.wait_event("done", "rec-1", node=other, timeout=60, after_us=restart_us)
        site.wait_event("done", "rec-1", node=covering, timeout=60, after_us=restart_us)
        wait_for("claim released", lambda: site.claim("rec-1") is None, 10)
        # The original refuses an upload under the first (stale) token before reading its body,
        # even from the spare that held it, authenticated as itself.
        own = (site.tmp / covering / "node.token").read_text(encoding="utf-8").strip()
        stale = httpx.put(f"http://127.0.0.1:{site.nodes['rec-1'].port}/api/v1/cameras/"
                          "rec-1-c1/segments/import", content=b"x",
                          headers={"Authorization": f"bearer {own}",
                                   FENCING_HEADER: f"claims/rec-1:{first.data['token']}"})
        assert stale.status_code == 409 and stale.json()["error"] == "stale_fencing_token"
        for name in ("spare-1", "spare-2"):
            wait_for(f"{name} idle",
                     lambda n=name: (site.get(layout.spare(n)) or {}).get("state") == "idle", 10)
        time.sleep(1.5)
        end_us = now_us()
        site.node("rec-1").stop()
        print(site.event_lines())
        allowed = [(crash_us - 1_500_000, first_rec.wall_us),
                   (fail_us - 1_500_000, second_rec.wall_us)]
        missing = check_exact(site, "rec-1", allowed, end_us, restart_us)
        print("missing", {c: [(a - crash_us / 1e6, b - crash_us / 1e6) for a, b in w]
                          for c, w in missing.items()})
