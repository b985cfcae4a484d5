"""The master's site API over a fake etcd and three real node APIs (in process).

rec-2 is down and covered by spare-1: rec-2's store holds cam-1's video up to the crash, the
spare's buffer holds what it recorded since. The site API must merge both, route playback to the
node holding each segment, and say so plainly when a node does not answer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from hotspare.api.app import API_PREFIX
from hotspare.sitestate import layout
from tests.support.api_node import AUTH, T0, TOKEN
from tests.support.site_api import CAMERA_PASSWORD, REC1, REC2, SEG_US, SPARE, Site, site_config


def get(site: Site, path: str, **params: Any) -> httpx.Response:
    return site.master.get(API_PREFIX + path, params=params, headers=AUTH)


def test_servers_show_state_owner_and_spares(site: Site) -> None:
    data = get(site, "/site/servers").json()
    servers = {s["name"]: s for s in data["servers"]}
    assert servers["rec-1"]["state"] == "recording"
    assert servers["rec-1"]["role"] == "master"
    assert servers["rec-2"]["state"] == "covered-by-spare-1"
    assert servers["rec-2"]["owner"] == {"node": "spare-1", "url": SPARE}
    assert data["spares"] == [{"name": "spare-1", "address": SPARE, "state": "covering",
                               "covering": "rec-2", "leftover": None, "licensed": False,
                               "allotment": 0, "limit": None, "standby": None, "room": None}]


def test_server_states_down_and_returning(site: Site) -> None:
    del site.coord.values[layout.claim("rec-2")]
    assert {s["name"]: s["state"] for s in get(site, "/site/servers").json()["servers"]} == {
        "rec-1": "recording", "rec-2": "down"}
    site.coord.values[layout.alive("rec-2")] = {"url": REC2, "confirmed": True}
    site.coord.values[layout.reinsert("rec-2", "spare-1")] = {"total": 9, "done": 4, "bytes": 10,
                                                           "url": SPARE}
    rec2 = get(site, "/site/servers").json()["servers"][1]
    assert rec2["state"] == "returning"
    assert rec2["owner"] == {"node": "rec-2", "url": REC2}
    assert rec2["reinsert"] == [{"spare": "spare-1", "total": 9, "done": 4, "bytes": 10}]


def test_cameras_route_to_owner_and_never_show_camera_credentials(site: Site) -> None:
    response = get(site, "/site/cameras")
    cams = {c["id"]: c for c in response.json()["cameras"]}
    assert cams["cam-1"] == {"id": "cam-1", "name": "gate", "server": "rec-2",
                             "server_state": "covered-by-spare-1",
                             "owner": {"node": "spare-1", "url": SPARE}}
    assert cams["cam-m"]["owner"]["url"] == REC1
    for path in ("/site/cameras", "/site/servers", "/site/endpoints"):
        text = get(site, path).text
        assert CAMERA_PASSWORD not in text and "rtsp://" not in text and "admin" not in text


def test_timeline_merges_server_and_spare(site: Site) -> None:
    data = get(site, "/site/cameras/cam-1/timeline", **{"from": T0, "to": T0 + 3_000_000}).json()
    assert not data["partial"]
    assert [(r["recorded_by"], r["held_by"]) for r in data["runs"]] == [
        ("rec-2", "rec-2"), ("spare-1", "spare-1")]
    assert data["runs"][1]["recorded_as"] == "rec-2"
    assert [(g["start_wall_us"], g["end_wall_us"]) for g in data["gaps"]] == [
        (T0 + 6 * SEG_US, T0 + 3_000_000)]


def test_timeline_is_partial_when_a_holder_is_unreachable(site: Site) -> None:
    site.unreachable.add(REC2)
    data = get(site, "/site/cameras/cam-1/timeline", **{"from": T0, "to": T0 + 3_000_000}).json()
    assert data["partial"]
    bad = [s for s in data["sources"] if not s["ok"]]
    assert [s["node"] for s in bad] == ["rec-2"] and "unreachable" in bad[0]["error"]
    assert [r["recorded_by"] for r in data["runs"]] == ["spare-1"]
    assert data["gaps"][0]["start_wall_us"] == T0


def test_playback_points_each_segment_at_its_holder(site: Site) -> None:
    response = site.master.get(API_PREFIX + "/site/cameras/cam-1/playback.m3u8",
                               params={"from": T0, "to": T0 + 3_000_000, "token": TOKEN})
    assert response.status_code == 200
    uris = [line for line in response.text.splitlines() if line and not line.startswith("#")]
    assert len(uris) == 6
    assert all(u.startswith(REC2 + "/api/v1/segments/") for u in uris[:3])
    assert all(u.startswith(SPARE + "/api/v1/segments/") for u in uris[3:])
    assert all("/file?raw=1&grant=v1.cam-1." in u for u in uris)
    assert TOKEN not in response.text
    assert response.text.count("#EXT-X-DISCONTINUITY") == 1
    # Every URI answers on its node with the grant it carries.
    for uri in uris:
        base, _, rest = uri.partition("/api/")
        assert site.nodes[base].get("/api/" + rest).status_code == 200


def test_playback_without_query_token_carries_none_and_reports_partial(site: Site) -> None:
    site.unreachable.add(SPARE)
    response = get(site, "/site/cameras/cam-1/playback.m3u8", **{"from": T0, "to": T0 + 3_000_000})
    assert "token=" not in response.text and "grant=" not in response.text
    assert response.headers["Hotspare-Partial"] == "spare-1"
    assert response.text.count("#EXTINF") == 3


def test_live_redirects_to_current_owner(site: Site) -> None:
    response = site.master.get(API_PREFIX + "/site/cameras/cam-1/live.m3u8",
                               params={"token": TOKEN}, follow_redirects=False)
    assert response.status_code == 307
    location = response.headers["location"]
    assert location.startswith(f"{SPARE}/api/v1/cameras/cam-1/live.m3u8?grant=v1.cam-1.")
    assert TOKEN not in location
    response = site.master.get(API_PREFIX + "/site/cameras/cam-m/live.m3u8", headers=AUTH,
                               follow_redirects=False)
    assert response.headers["location"] == f"{REC1}/api/v1/cameras/cam-m/live.m3u8"


def test_endpoints_follow_the_master_owner(site: Site) -> None:
    data = get(site, "/site/endpoints").json()
    assert data["master"] == {"name": "rec-1", "node": "rec-1", "url": REC1}
    assert [(n["name"], n["role"], n["url"]) for n in data["nodes"]] == [
        ("rec-1", "master", REC1), ("rec-2", "recording", REC2), ("spare-1", "spare", SPARE)]
    site.coord.values[layout.claim("rec-1")] = {"spare": "spare-1", "url": SPARE}
    site.coord.values[layout.owner("rec-1")] = {"node": "spare-1", "url": SPARE}
    assert get(site, "/site/endpoints").json()["master"] == {"name": "rec-1", "node": "spare-1",
                                                            "url": SPARE}


def test_events_after(site: Site) -> None:
    data = get(site, "/site/events").json()
    assert [e["kind"] for e in data["events"]] == ["claimed", "recording"]
    assert data["last_wall_us"] == T0 + 5
    data = get(site, "/site/events", after=T0).json()
    assert [e["kind"] for e in data["events"]] == ["recording"]
    assert get(site, "/site/events", after=T0 + 5).json() == {"events": [],
                                                              "last_wall_us": T0 + 5}


@pytest.mark.parametrize(("path", "status", "error"), [
    ("/site/cameras/nope/timeline", 404, "unknown_camera"),
    ("/site/cameras/Bad.Id/playback.m3u8", 400, "bad_camera_id"),
    ("/site/cameras/nope/live.m3u8", 404, "unknown_camera"),
])
def test_camera_refusals(site: Site, path: str, status: int, error: str) -> None:
    response = get(site, path)
    assert (response.status_code, response.json()["error"]) == (status, error)


def test_bad_range_and_etcd_down(site: Site) -> None:
    response = get(site, "/site/cameras/cam-1/timeline", **{"from": T0 + 5, "to": T0})
    assert response.json()["error"] == "bad_range"
    site.coord.down = True
    for path in ("/site/servers", "/site/cameras", "/site/endpoints", "/site/events"):
        response = get(site, path)
        assert (response.status_code, response.json()["error"]) == (503, "etcd_unavailable")


def test_web_ui_static_without_token_data_with_token_and_cors(site: Site) -> None:
    page = site.master.get("/ui/")
    assert page.status_code == 200 and "<title>hotspare</title>" in page.text
    assert site.master.get("/ui/app.js").status_code == 200
    assert site.master.get("/ui", follow_redirects=False).headers["location"] == "/ui/"
    assert site.master.post("/ui/").status_code == 405
    assert site.master.get(API_PREFIX + "/site/servers").status_code == 401
    assert site.master.get("/uix").status_code == 401  # only /ui/ is open
    preflight = site.master.options(API_PREFIX + "/site/servers", headers={
        "Origin": "http://elsewhere.test", "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization"})
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "*"
    answer = site.master.get(API_PREFIX + "/site/servers",
                             headers={**AUTH, "Origin": "http://elsewhere.test"})
    assert answer.headers["access-control-allow-origin"] == "*"


def test_hls_js_is_served_when_installed(site: Site) -> None:
    from hotspare.web.ui import HLS_JS

    response = site.master.get("/ui/vendor/hls.min.js")
    assert response.status_code == (200 if HLS_JS.is_file() else 404)



def test_holders_include_reinserting_and_leftover_spares() -> None:
    from hotspare.api.site_state import SiteSnapshot, holders
    from hotspare.sitestate.values import Alive, ReinsertProgress, SpareRecord

    config = site_config()
    snap = SiteSnapshot(
        alive={"rec-2": Alive("", "", False)},
        spares={"spare-1": SpareRecord("idle", SPARE, leftover="rec-2")},
    )
    assert holders("rec-2", config, snap) == {"rec-2": REC2, "spare-1": SPARE}
    snap = SiteSnapshot(reinsert={"rec-2": {"spare-1": ReinsertProgress(
        "spare-1", "http://moved.test:1", 0)}})
    # a URL published at runtime is not an address: the site configuration's is used (issue 11)
    assert holders("rec-2", config, snap) == {"rec-2": REC2, "spare-1": SPARE}
    assert holders("rec-1", config, SiteSnapshot()) == {"rec-1": REC1}


def test_merge_prefers_the_servers_copy_and_drops_covered_duplicates(site: Site) -> None:
    from hotspare.api.site_merge import SourceResult, merge_segments
    from hotspare.wire import SegmentList

    rec2 = SegmentList.model_validate(site.nodes[REC2].get(
        API_PREFIX + "/cameras/cam-1/segments", headers=AUTH).json())
    spare = SegmentList.model_validate(site.nodes[SPARE].get(
        API_PREFIX + "/cameras/cam-1/segments", headers=AUTH).json())
    # The spare also still holds a copy of rec-2's first segment (same run and seq).
    spare.segments.insert(0, rec2.segments[0].model_copy(update={"segment_id": 999}))
    # And a split-brain recording of the same moment in a run of its own: not played twice.
    spare.segments.insert(1, rec2.segments[1].model_copy(
        update={"segment_id": 1000, "run_id": "split-brain", "recorded_by": "spare-1"}))
    chosen = merge_segments([SourceResult("spare-1", SPARE, True, None, spare),
                             SourceResult("rec-2", REC2, True, None, rec2)], prefer="rec-2")
    assert [(h.node, h.segment.seq) for h in chosen] == [
        ("rec-2", 0), ("rec-2", 1), ("rec-2", 2), ("spare-1", 0), ("spare-1", 1), ("spare-1", 2)]


def test_hls_js_missing_answers_404_and_the_page_still_loads(tmp_path: Path) -> None:
    from hotspare.web.ui import WebUiMiddleware

    app = FastAPI()
    app.add_middleware(WebUiMiddleware, hls_js=tmp_path / "missing.js")  # type: ignore[arg-type]
    with TestClient(app) as client:
        assert client.get("/ui/vendor/hls.min.js").status_code == 404
        page = client.get("/ui/")
        assert page.status_code == 200 and page.headers["x-frame-options"] == "DENY"
        assert client.get("/ui/../pyproject.toml").status_code == 404


def test_playback_cuts_the_earlier_of_overlapping_segments_on_its_own_node(site: Site) -> None:
    """A spare run starting inside rec-2's last segment (a takeover that began before the
    server's last frame): rec-2 is asked for that segment cut, and the spare's overlapping
    segment is cut where the spare's next run starts; each frame once."""
    import io

    import av

    from tests.support.api_node import record_run

    takeover_us = T0 + 2 * SEG_US + SEG_US // 2  # half-way through rec-2's third segment
    record_run(site.stores["spare-1"], "cam-1", takeover_us, 1, recorded_as="rec-2")
    response = site.master.get(API_PREFIX + "/site/cameras/cam-1/playback.m3u8",
                               params={"from": T0, "to": T0 + 3_000_000, "token": TOKEN})
    lines = response.text.splitlines()
    uris = [line for line in lines if line and not line.startswith("#")]
    assert len(uris) == 7
    assert uris[2].startswith(REC2) and f"end_us={takeover_us}&part=media" in uris[2]
    assert uris[3].startswith(SPARE) and f"end_us={T0 + 3 * SEG_US}&part=media" in uris[3]
    assert [line for line in lines if line.startswith("#EXTINF")][2:4] == [
        "#EXTINF:0.200,", "#EXTINF:0.200,"]
    frames = 0
    maps = [line.split('URI="')[1].split('"')[0] for line in lines if line.startswith("#EXT-X-MAP")]
    for map_uri, uri in zip(maps, uris, strict=True):
        base, _, rest = uri.partition("/api/")
        answer = site.nodes[base].get("/api/" + rest)
        assert answer.status_code == 200, answer.text
        # a cut segment's URI gives only its fragments, to play behind the stored init section
        data = _init_of(site, map_uri) + answer.content if "part=media" in uri else answer.content
        with av.open(io.BytesIO(data), format="mp4") as c:
            frames += sum(1 for p in c.demux(c.streams.video[0]) if p.size)
    assert frames == 10 + 10 + 5 + 5 + 10 + 10 + 10


def _init_of(site: Site, map_uri: str) -> bytes:
    from hotspare.store import mp4

    base, _, rest = map_uri.partition("/api/")
    raw = site.nodes[base].get("/api/" + rest).content
    return raw[: mp4.parse_bytes(raw).init_bytes]
