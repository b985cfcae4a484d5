"""A gapless server whose host vanishes while its cameras come over RTSP/UDP (issue 12, 13).

The link down cuts the camera streams mid-flight: the server's FFmpeg had part of a frame when
its link went, and gets the rest of some later frame when the link is back. Found by the chaos
soak in network namespaces: that frame was stored as if whole (cut short, or two frames' NAL
units in one sample at the first one's time), so after re-insert one frame per camera was
stored and served twice, and the spare's whole copy of the frames around the cut was trimmed as
"already held" (frames lost, bound 0). Now the recorder leaves out what FFmpeg reports as damaged
by lost RTP packets (docs/recorder.md, *Packet loss*), and the spare's copy fills the gap.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from hotspare.sitestate import layout
from tests.e2e.test_gapless import standby_ready
from tests.support.camsim import now_us
from tests.support.netsite import NetSite
from tests.support.served import assert_served_once, check_served
from tests.support.site import check_exact, wait_for

pytestmark = pytest.mark.slow

AWAY_S = 2.0
"""How long the host stays away once the spare records: less than the recorder's socket timeout
(3 s here), so the server's session lives through the cut and FFmpeg hands it what it assembled
across the hole, as in the soak (a longer cut may end the run instead)."""


def test_a_vanished_gapless_udp_server_serves_every_frame_once(tmp_path: Path) -> None:
    """Before the fix, in two runs: 29-30 frames per camera missing from node VOD and download
    (what the server recorded after the hole, in a segment that spanned it) and, in one of them,
    a frame stored twice in the index."""
    with NetSite(tmp_path, servers={"rec-1": 2}, spares=["spare-1"], camera_transport="udp",
                 server_options={"rec-1": {"protection": "gapless"}}) as site:
        cameras = site.cameras["rec-1"]
        rec = site.host("rec-1")
        site.start_all()
        wait_for("rec-1 confirmed", lambda: site.alive("rec-1", confirmed=True), 30)
        wait_for("standby sessions buffering",
                 lambda: standby_ready(site, "spare-1", cameras, 4.0), 40)
        begin_us = cut_us = now_us()
        rec.link_down()
        try:
            site.wait_event("claimed", "rec-1", timeout=15, after_us=cut_us)
            recording = site.wait_event("recording", "rec-1", timeout=20, after_us=cut_us)
            time.sleep(AWAY_S)
        finally:
            rec.link_up()
        gapless = recording.data["gapless"]
        assert all(v["prebuffered"] and v["covered"] for v in gapless.values()), gapless
        back_us = now_us()
        site.wait_event("done", "rec-1", timeout=60, after_us=back_us)
        wait_for("claim released", lambda: site.claim("rec-1") is None, 10)
        wait_for("spare idle", lambda: (site.get(layout.spare("spare-1")) or {})
                 .get("state") == "idle", 10)
        time.sleep(2.0)
        served = check_served(site, "rec-1", "rec-1", begin_us - 4_000_000,
                              ("node VOD", "download"), "re-inserted")
        end_us = now_us()
        site.node("rec-1").stop()
        print(site.event_lines())
        missing = check_exact(site, "rec-1", [], end_us)
        assert all(not windows for windows in missing.values()), missing
        assert_served_once(site, "rec-1", served, [])
