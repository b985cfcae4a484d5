"""Gapless takeover (issue 6), end to end: real etcd, RTSP cameras, node processes killed or frozen.

A spare pre-buffers the gapless cameras of a recording server on its own RTSP sessions; when the
server dies (SIGKILL) or hangs (SIGSTOP), the spare writes from the server's commit watermark, and
after handback and re-insert the server's own store holds every frame the cameras produced, once.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from hotspare.sitestate import layout
from tests.support.camsim import now_us
from tests.support.served import STORED, WAYS, assert_served_once, check_served
from tests.support.site import TOKEN, FailoverSite, check_exact, wait_for

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(sys.platform == "win32", reason="SIGSTOP is POSIX-only")]


def standby_ready(site: FailoverSite, spare: str, cameras: list[str],
                  seconds: float) -> dict[str, Any] | None:
    """The spare's published standby sessions, once every camera is buffering `seconds` deep."""
    value = site.get(layout.standby(spare)) or {}
    sessions = value.get("cameras", {})
    ok = all(sessions.get(c, {}).get("state") == "buffering"
             and sessions[c].get("buffered_s", 0) >= seconds for c in cameras)
    return sessions if ok else None


def protection(site: FailoverSite) -> dict[str, Any]:
    port = site.nodes["rec-1"].port
    answer = httpx.get(f"http://127.0.0.1:{port}/api/v1/site/protection",
                       headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5.0)
    answer.raise_for_status()
    return dict(answer.json())


def restart_and_reinsert(site: FailoverSite) -> int:
    """Bring rec-1 back, wait until the spare's buffer is re-inserted, stop rec-1 (so its store can
    be read); returns the end of the checked window."""
    back_us = now_us()
    site.start("rec-1")
    site.wait_event("done", "rec-1", timeout=60, after_us=back_us)
    time.sleep(2.0)
    end_us = now_us()
    site.node("rec-1").stop()
    return end_us


def gapless_rows(report: dict[str, Any], server: str) -> dict[str, dict[str, Any]]:
    row = next(s for s in report["servers"] if s["name"] == server)
    return {c["camera"]: c for c in row["gapless_cameras"]}


@pytest.mark.parametrize("how", ["kill", "freeze"])
def test_eight_gapless_cameras_lose_no_frame(tmp_path: Path, how: str) -> None:
    with FailoverSite(tmp_path, servers={"rec-1": 8}, spares=["spare-1"],
                      server_options={"rec-1": {"protection": "gapless"}}) as site:
        cameras = site.cameras["rec-1"]
        site.start_all()
        wait_for("8 standby sessions buffering", lambda: standby_ready(site, "spare-1", cameras,
                                                                       4.0), 40)
        rows = gapless_rows(protection(site), "rec-1")
        assert sorted(rows) == sorted(cameras)
        assert all(r["spare"] == "spare-1" and r["fallback"] is None for r in rows.values()), rows
        fail_us = now_us()
        # Served bytes are checked from a little before the failure, for half the cameras (each
        # costs some 40 requests per way; the store check below covers all eight).
        begin_us, checked = fail_us - 4_000_000, cameras[:4]
        if how == "kill":
            site.node("rec-1").kill()
        else:
            site.node("rec-1").freeze()
        site.wait_event("claimed", "rec-1", timeout=15, after_us=fail_us)
        recording = site.wait_event("recording", "rec-1", timeout=20, after_us=fail_us)
        gapless = recording.data["gapless"]
        assert sorted(gapless) == sorted(cameras)
        assert all(v["prebuffered"] and v["covered"] for v in gapless.values()), gapless
        if how == "kill":
            time.sleep(3.0)
            # What a user receives while the spare covers: the site playlist spans both nodes.
            served = check_served(site, "spare-1", "rec-1", begin_us, ("site VOD",), "covering",
                                  checked)
            back_us = now_us()
            site.start("rec-1")
        else:
            time.sleep(3.0)
            served = check_served(site, "spare-1", "rec-1", begin_us, ("site VOD",), "covering",
                                  checked)
            time.sleep(max(0.0, 10.0 - (now_us() - fail_us) / 1e6))  # frozen for 10 s
            back_us = now_us()
            site.node("rec-1").thaw()
        site.wait_event("handback", "rec-1", timeout=40, after_us=back_us)
        served += check_served(site, "rec-1", "rec-1", begin_us, ("site VOD",), "handback",
                               checked)
        done = site.wait_event("done", "rec-1", timeout=60, after_us=back_us)
        wait_for("claim released", lambda: site.claim("rec-1") is None, 10)
        time.sleep(2.0)
        served += check_served(site, "rec-1", "rec-1", begin_us, (*WAYS, STORED),
                               "re-inserted", checked)
        end_us = now_us()
        site.node("rec-1").stop()
        print(site.event_lines())
        print(f"{how}: re-insert {done.data}; lead per camera "
              f"{ {c: v['lead_s'] for c, v in gapless.items()} }")
        missing = check_exact(site, "rec-1", [], end_us)
        assert all(not windows for windows in missing.values()), missing
        assert_served_once(site, "rec-1", served, [])


def test_mixed_site_only_standard_cameras_show_the_gap(tmp_path: Path) -> None:
    with FailoverSite(tmp_path, servers={"rec-1": 4}, spares=["spare-1"]) as site:
        gapless = ["rec-1-c1", "rec-1-c2"]

        def modes(doc: dict[str, Any]) -> None:
            for camera in doc["recording_servers"][0]["cameras"]:
                if camera["id"] in gapless:
                    camera["protection"] = "gapless"

        site.reapply(modes)
        site.start_all()
        wait_for("standby buffering", lambda: standby_ready(site, "spare-1", gapless, 4.0), 40)
        standby = site.get(layout.standby("spare-1")) or {}
        assert sorted(standby["cameras"]) == gapless  # standard cameras cost nothing standing
        crash_us = now_us()
        site.node("rec-1").kill()
        recording = site.wait_event("recording", "rec-1", timeout=20, after_us=crash_us)
        time.sleep(3.0)
        end_us = restart_and_reinsert(site)
        window = (crash_us - 1_500_000, recording.wall_us)
        missing = check_exact(site, "rec-1", [window], end_us)
        for camera in gapless:
            assert not missing[camera], (camera, missing[camera])
        for camera in ("rec-1-c3", "rec-1-c4"):
            assert missing[camera], f"{camera}: a standard camera shows no takeover gap"
            lost = sum(b - a for a, b in missing[camera]) + 1 / site.fps
            # The expected gap: from the crash to the spare's first frame (claim + up to a GOP).
            assert lost <= (recording.wall_us - crash_us) / 1e6 + 1.0, (camera, lost)
            print(f"{camera}: lost {lost:.2f} s; crash→spare recording "
                  f"{(recording.wall_us - crash_us) / 1e6:.2f} s")


def test_camera_refusing_a_second_session_falls_back_to_standard(tmp_path: Path) -> None:
    with FailoverSite(tmp_path, servers={"rec-1": 2}, spares=["spare-1"],
                      server_options={"rec-1": {"protection": "gapless"}}) as site:
        assert site.sim is not None
        site.sim.set_max_sessions("rec-1-c1", 1)  # the server's session is the only one
        site.start_all()
        wait_for("c2 buffering", lambda: standby_ready(site, "spare-1", ["rec-1-c2"], 3.0), 40)

        def refused() -> dict[str, Any] | None:
            rows = gapless_rows(protection(site), "rec-1")
            fallback = rows["rec-1-c1"]["fallback"]
            return rows if fallback and fallback["code"] == "camera_refused_session" else None

        rows = wait_for("refusal in the protection report", refused, 20)
        assert rows["rec-1-c2"]["fallback"] is None
        print("report:", rows["rec-1-c1"]["fallback"]["message"])
        crash_us = now_us()
        site.node("rec-1").kill()
        fallback = site.wait_event("gapless_fallback", "rec-1", timeout=15, after_us=crash_us)
        assert fallback.data["cameras"] == ["rec-1-c1"]
        recording = site.wait_event("recording", "rec-1", timeout=20, after_us=crash_us)
        assert recording.data["gapless"]["rec-1-c2"]["covered"] is True
        assert recording.data["gapless"]["rec-1-c1"]["prebuffered"] is False
        time.sleep(2.0)
        # The returning server is refused c1 while the spare holds its only session: it asks the
        # spare to let go (`returning/`), gets the camera, and the handback goes on.
        back_us = now_us()
        site.start("rec-1")
        blocked = site.wait_event("blocked", "rec-1", timeout=30, after_us=back_us)
        released = site.wait_event("released", "rec-1", timeout=10, after_us=back_us)
        assert blocked.data["cameras"] == released.data["cameras"] == ["rec-1-c1"]
        site.wait_event("done", "rec-1", timeout=60, after_us=back_us)
        time.sleep(2.0)
        end_us = now_us()
        site.node("rec-1").stop()
        handover = (released.wall_us - 1_000_000, released.wall_us + 4_000_000)
        missing = check_exact(site, "rec-1", [(crash_us - 1_500_000, recording.wall_us),
                                              handover], end_us)
        assert not missing["rec-1-c2"], missing
        assert missing["rec-1-c1"], "the refused camera should show the standard takeover gap"
        print("c1 missing (s after the crash):",
              [(round(a - crash_us / 1e6, 2), round(b - crash_us / 1e6, 2))
               for a, b in missing["rec-1-c1"]], "released at",
              round((released.wall_us - crash_us) / 1e6, 2))


def test_designated_spare_claims_first_and_a_hung_one_means_fallback(tmp_path: Path) -> None:
    """Two spares: the one pre-buffering wins the claim (the other waits its grace second). When
    that spare hangs, the other takes over after the grace, and reports the fallback."""
    with FailoverSite(tmp_path, servers={"rec-1": 2}, spares=["spare-1", "spare-2"],
                      server_options={"rec-1": {"protection": "gapless"}}) as site:
        cameras = site.cameras["rec-1"]
        site.start_all()
        report = protection(site)
        designated = next(s for s in report["servers"] if s["name"] == "rec-1")["standby_spare"]
        other = "spare-2" if designated == "spare-1" else "spare-1"
        assert designated in ("spare-1", "spare-2")
        wait_for("standby buffering", lambda: standby_ready(site, designated, cameras, 4.0), 40)
        assert not (site.get(layout.standby(other)) or {}).get("cameras")
        crash_us = now_us()
        site.node("rec-1").kill()
        claimed = site.wait_event("claimed", "rec-1", timeout=15, after_us=crash_us)
        assert claimed.node == designated
        recording = site.wait_event("recording", "rec-1", timeout=20, after_us=crash_us)
        assert all(v["covered"] for v in recording.data["gapless"].values()), recording.data
        back_us = now_us()
        site.start("rec-1")
        site.wait_event("done", "rec-1", timeout=60, after_us=back_us)
        wait_for("standby buffering again",
                 lambda: standby_ready(site, designated, cameras, 4.0), 40)
        # The designated spare hangs; its lease still says idle for up to a TTL.
        site.node(designated).freeze()
        crash_us = now_us()
        site.node("rec-1").kill()
        claimed = site.wait_event("claimed", "rec-1", timeout=20, after_us=crash_us)
        assert claimed.node == other
        fallback = site.wait_event("gapless_fallback", "rec-1", timeout=15, after_us=crash_us)
        assert sorted(fallback.data["cameras"]) == sorted(cameras)
        print(f"hung designated spare: {other} claimed {(claimed.wall_us - crash_us) / 1e6:.2f} s "
              "after the crash")
        site.node(designated).thaw()
