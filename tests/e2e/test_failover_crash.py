"""SIGKILL (or SIGSTOP) a recording server: a spare claims, records, hands back and re-inserts;
frames exact in the store and in what the API serves."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from hotspare.client.node_client import NodeClient
from hotspare.sitestate import layout
from tests.support.camsim import now_us
from tests.support.served import STORED, WAYS, assert_served_once, check_served
from tests.support.site import TOKEN, FailoverSite, check_exact, wait_for

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("how", [
    "kill",
    pytest.param("freeze", marks=pytest.mark.skipif(sys.platform == "win32",
                                                    reason="SIGSTOP is POSIX-only")),
])
def test_crash_takeover_handback_reinsert(tmp_path: Path, how: str) -> None:
    with FailoverSite(tmp_path, servers={"rec-1": 4}, spares=["spare-1"]) as site:
        assert site.sim is not None
        site.start_all()
        begin_us = now_us()
        time.sleep(3.0)  # some video on the original before the crash
        crash_us = now_us()
        crash_t = time.monotonic()
        if how == "kill":
            site.node("rec-1").kill()
        else:
            site.node("rec-1").freeze()
        claimed = site.wait_event("claimed", "rec-1", timeout=15)
        claim_s = claimed.wall_us / 1e6 - crash_us / 1e6
        recording = site.wait_event("recording", "rec-1", timeout=20)
        record_s = recording.wall_us / 1e6 - crash_us / 1e6
        # Every camera's session was opened at the claim (failover/early_sessions.py) and wrote
        # from its first keyframe: that came within the RTSP exchange and one GOP (1 s).
        first = recording.data.get("first_keyframe_after_claim_s")
        assert first is not None and first["n"] == 4, recording.data
        assert first["max"] <= 2.0, first
        claim = site.claim("rec-1")
        assert claim is not None and claim["spare"] == "spare-1"
        owner = site.get(layout.owner("rec-1"))
        assert owner is not None and owner["node"] == "spare-1"
        time.sleep(4.0)  # the spare records a few segments
        # API clients follow owners/<server> to the spare, which serves the buffered video.
        with NodeClient(owner["url"], TOKEN) as client:
            listed = client.list_segments("rec-1-c1", crash_us, now_us())
            assert listed.segments and all(s.recorded_by == "spare-1" for s in listed.segments)
            assert client.health().ok
        # What a user receives while the spare covers: the site playlist spans both nodes.
        served = check_served(site, "spare-1", "rec-1", begin_us, ("site VOD",), "covering")
        restart_us = now_us()
        if how == "kill":
            site.start("rec-1")
        else:
            site.node("rec-1").thaw()
        site.wait_event("handback", "rec-1", timeout=30, after_us=restart_us)
        # Both nodes hold video now (the spare until its buffer is re-inserted).
        served += check_served(site, "rec-1", "rec-1", begin_us, ("site VOD",), "handback")
        done = site.wait_event("done", "rec-1", timeout=60, after_us=restart_us)
        wait_for("claim released", lambda: site.claim("rec-1") is None, 10)
        wait_for("spare idle", lambda: (site.get(layout.spare("spare-1")) or {}).get("state")
                 == "idle", 10)
        assert done.data["total"] >= 4 * 3, done.data
        time.sleep(2.0)
        served += check_served(site, "rec-1", "rec-1", begin_us, (*WAYS, STORED),
                               "re-inserted")
        end_us = now_us()
        site.node("rec-1").stop()
        print(f"crash→claim {claim_s:.2f} s, crash→spare recording {record_s:.2f} s, "
              f"monotonic {time.monotonic() - crash_t:.1f} s; re-insert {done.data}")
        print(site.event_lines())
        # Only the takeover window may be missing: from the last fragment the killed server
        # flushed (at most a segment before the crash) to the spare's first frame.
        missing = check_exact(site, "rec-1", [(crash_us - 1_500_000, recording.wall_us)],
                              end_us, restart_us)
        print("missing", {c: [(round(a - crash_us / 1e6, 2), round(b - crash_us / 1e6, 2))
                              for a, b in w] for c, w in missing.items()})
        assert_served_once(site, "rec-1", served, [(crash_us - 1_500_000, recording.wall_us)])
