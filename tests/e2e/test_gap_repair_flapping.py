"""A gapless server's link to its cameras flaps while they come over RTSP/UDP (issue 12, gap
repair).

The path between the server and its cameras goes down 0.5 s and up 0.5 s, four times, while the
server still talks to etcd and the spare: no takeover can step in (the server answers its
probes, its cameras record), so the server records on, and each cut costs it the frames sent
while it was down and the rest of their GOP (the recorder leaves out what lost RTP packets
damaged). The designated spare, on a path that did not flap, holds those frames in its
pre-buffer and brings them into the server's store (docs/failover.md "Gap repair"). Without the
repair those holes stayed (the chaos soak's `flapping_link` bound was FLAPS × (down + GOP) for
gapless cameras too); now every frame is served once. (A flap of the server's whole link is
often taken for a silent host and taken over; the takeover's re-insert then covers the cuts
while the spare records, and the repair, under the claim, what comes after: the chaos soak's
`flapping_link` runs that.)
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from hotspare.sitestate.events import Event
from tests.e2e.test_gapless import standby_ready
from tests.support.camsim import now_us
from tests.support.netsite import CAMERAS, NetSite
from tests.support.served import assert_served_once, check_served
from tests.support.site import check_exact, wait_for

pytestmark = pytest.mark.slow

FLAPS = 4
SETTLE_S = 4.0
"""After the last flap: the server commits the segment after its last hole (1 s segments),
and the spare's next pass (every second) lists it, cuts the hole and uploads it."""


def test_a_flapping_camera_link_leaves_no_hole_in_a_gapless_udp_camera(tmp_path: Path) -> None:
    """Without the repair (its pass disabled, 2026-12-05): 45 frames missing per camera in node
    VOD and download, and the store check failed; with it: 0 missing, 0 twice."""
    with NetSite(tmp_path, servers={"rec-1": 2}, spares=["spare-1"], camera_transport="udp",
                 server_options={"rec-1": {"protection": "gapless"}}) as site:
        cameras = site.cameras["rec-1"]
        site.start_all()
        wait_for("rec-1 confirmed", lambda: site.alive("rec-1", confirmed=True), 30)
        wait_for("standby sessions buffering",
                 lambda: standby_ready(site, "spare-1", cameras, 4.0), 40)
        flap_us = now_us()
        for _ in range(FLAPS):
            site.net.partition("rec-1", CAMERAS)
            try:
                time.sleep(0.5)
            finally:
                site.net.heal("rec-1", CAMERAS)
            time.sleep(0.5)
        time.sleep(SETTLE_S)

        def repairs() -> list[Event] | None:
            found = [e for e in site.events() if e.kind == "gap_repaired" and e.wall_us >= flap_us]
            return found if {e.data.get("camera") for e in found} >= set(cameras) else None

        repaired = wait_for("gap_repaired for every camera", repairs, 20)
        time.sleep(2.0)  # a later hole's repair, if any, lands too
        print(site.event_lines())
        print("repaired:", [(e.data["camera"], e.data["seconds"], e.data["frames"])
                            for e in repaired])
        events = [e for e in site.events() if e.wall_us >= flap_us]
        assert not [e.line() for e in events if e.kind in ("claimed", "gap_not_repairable")]
        served = check_served(site, "rec-1", "rec-1", flap_us - 4_000_000,
                              ("node VOD", "download"), "repaired")
        end_us = now_us()
        site.node("rec-1").stop()
        missing = check_exact(site, "rec-1", [], end_us)
        assert all(not windows for windows in missing.values()), missing
        assert_served_once(site, "rec-1", served, [])
