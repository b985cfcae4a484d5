"""Bounded reads (issue 11 item 8): every list and playlist is capped in SQL and paged, and a range
too long for a route is refused with `range_too_large` naming the limit.

The store here holds rows without files (listing, timelines and playlists read only the index),
written straight into the index: two days of one camera at 4 s segments in well under a second.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from hotspare.api import routes_hls, routes_read, site_routes
from hotspare.api.app import create_app
from hotspare.api.site_merge import SourceResult, merge_timeline, segment_pages
from hotspare.api.tokens import hash_token, new_token
from hotspare.client.node_client import NodeClient
from hotspare.config.models import ApiUser
from hotspare.store.segment_store import SegmentStore
from hotspare.store.synth import insert_rows_only
from hotspare.wire import (
    MAX_PAGE_ROWS,
    MAX_SEGMENT_RANGE_US,
    MAX_SUMMARY_RANGE_US,
    NEXT_FROM_HEADER,
    TimelineOut,
    TimelineRunOut,
)
from tests.support.api_node import T0, TOKEN
from tests.support.site_api import Site

API = "/api/v1"
CAMERA = "cam-1"
SERVER = "rec-a"
DAY_US = 86_400_000_000
SEG_US = 4_000_000
PER_DAY = DAY_US // SEG_US  # 21 600


def fill(store: SegmentStore, days: int, *, runs_per_day: int = 1, start: int = T0) -> int:
    """`days` of back-to-back 4 s segments of CAMERA, `runs_per_day` runs a day, rows only."""
    with store.index.write() as db:
        return insert_rows_only(db, CAMERA, SERVER, start, days * runs_per_day,
                                PER_DAY // runs_per_day, segment_us=SEG_US, tag="fill")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SegmentStore]:
    with SegmentStore.open(tmp_path / "store", SERVER) as s:
        yield s


def viewer_app(store: SegmentStore) -> tuple[TestClient, dict[str, str]]:
    token = new_token("viewer-1")
    users = [ApiUser(name="viewer-1", role="viewer", token_hash=hash_token(token))]
    app = create_app(store, health=dict, token=TOKEN, server_name=SERVER,
                     known_cameras=lambda: {CAMERA}, clock=lambda: T0 + 40 * DAY_US, users=users)
    return TestClient(app, base_url="http://node.test"), {"Authorization": f"Bearer {token}"}


def test_the_segment_cap_is_a_sql_limit(store: SegmentStore) -> None:
    fill(store, 1)
    statements: list[str] = []
    store.index.read().set_trace_callback(statements.append)
    try:
        got = store.list_segments(CAMERA, T0, T0 + DAY_US, limit=100)
    finally:
        store.index.read().set_trace_callback(None)
    assert len(got) == 100
    assert any("from segment" in s and s.rstrip().endswith("limit 100") for s in statements)


def test_segment_pages_hold_the_cap_and_return_every_row_once_in_order(
        store: SegmentStore) -> None:
    fill(store, 2)
    client, auth = viewer_app(store)
    expected = [r[0] for r in store.index.read().execute(
        "select segment_id from segment where start_wall_us >= ? and start_wall_us < ? "
        "order by start_wall_us, segment_id", (T0, T0 + DAY_US))]
    assert len(expected) == PER_DAY
    seen: list[int] = []
    after: str | None = None
    pages = 0
    with client:
        while True:
            params: dict[str, Any] = {"from": T0, "to": T0 + DAY_US}
            if after:
                params["after"] = after
            body = client.get(f"{API}/cameras/{CAMERA}/segments", params=params,
                              headers=auth).json()
            pages += 1
            if body["next"] is not None:
                assert len(body["segments"]) == MAX_PAGE_ROWS and body["truncated"]
            seen += [s["segment_id"] for s in body["segments"]]
            after = body["next"]
            if after is None:
                assert not body["truncated"]
                break
    assert pages == 3 and seen == expected


def test_runs_are_paged(store: SegmentStore) -> None:
    fill(store, 1, runs_per_day=24)
    client, auth = viewer_app(store)
    ids: list[str] = []
    after = None
    with client:
        while True:
            params: dict[str, Any] = {"from": T0, "to": T0 + DAY_US, "limit": 5}
            if after:
                params["after"] = after
            body = client.get(f"{API}/cameras/{CAMERA}/runs", params=params, headers=auth).json()
            assert len(body["runs"]) <= 5
            ids += [r["run_id"] for r in body["runs"]]
            after = body["next"]
            if after is None:
                break
    assert ids == [f"r{r:05d}fill" for r in range(24)]


@pytest.mark.parametrize(("route", "limit"), [
    ("segments", "24 h"), ("playback.m3u8", "24 h"), ("timeline", "7 d"), ("runs", "7 d"),
])
def test_a_30_day_range_is_refused_naming_the_limit(store: SegmentStore, route: str,
                                                    limit: str) -> None:
    client, auth = viewer_app(store)
    with client:
        response = client.get(f"{API}/cameras/{CAMERA}/{route}",
                              params={"from": T0, "to": T0 + 30 * DAY_US}, headers=auth)
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "range_too_large"
    assert f"at most {limit} per request" in body["detail"] and "30 d" in body["detail"]
    assert "`from` and `to`" in body["detail"]


def test_nodes_may_list_segments_of_any_range_a_page_at_a_time(store: SegmentStore) -> None:
    """Re-insert asks a server from a buffered segment to now; rows are capped all the same."""
    fill(store, 2)
    client, _ = viewer_app(store)
    with client:
        body = client.get(f"{API}/cameras/{CAMERA}/segments",
                          params={"from": T0, "to": T0 + 30 * DAY_US},
                          headers={"Authorization": f"Bearer {TOKEN}"}).json()
    assert len(body["segments"]) == MAX_PAGE_ROWS and body["next"]


def test_a_long_timeline_is_cut_and_its_pages_join_into_the_whole(
        store: SegmentStore, monkeypatch: pytest.MonkeyPatch) -> None:
    fill(store, 2, runs_per_day=4)
    whole = store.timeline(CAMERA, T0 - DAY_US, T0 + 3 * DAY_US)
    monkeypatch.setattr(routes_read, "MAX_TIMELINE_SEGMENTS", 5_000)
    client, auth = viewer_app(store)
    with client:
        first = client.get(f"{API}/cameras/{CAMERA}/timeline",
                           params={"from": T0 - DAY_US, "to": T0 + 3 * DAY_US},
                           headers=auth).json()
        assert first["truncated"] and first["next_from_wall_us"] == T0 + 5_000 * SEG_US
        assert first["runs"][-1]["end_wall_us"] == first["next_from_wall_us"]
        node = NodeClient("http://node.test", TOKEN, http=client)
        joined = node.whole_timeline(CAMERA, T0 - DAY_US, T0 + 3 * DAY_US)
    assert not joined.truncated
    assert [(r.run_id, r.start_wall_us, r.end_wall_us, r.segment_count, r.frame_count)
            for r in joined.runs] == [
        (s.run_id, s.start_wall_us, s.end_wall_us, s.segment_count, s.frame_count)
        for s in whole.spans]
    assert [(g.start_wall_us, g.end_wall_us) for g in joined.gaps] == [
        (g.start_wall_us, g.end_wall_us) for g in whole.gaps]


def test_a_timeline_with_too_many_runs_is_cut_at_a_run(store: SegmentStore) -> None:
    fill(store, 1, runs_per_day=24)
    tl = store.timeline(CAMERA, T0, T0 + DAY_US, max_spans=10)
    assert len(tl.spans) == 10 and tl.next_from_wall_us == T0 + 10 * 3_600_000_000
    assert tl.gaps == []


def test_whole_timeline_asks_a_week_at_a_time(store: SegmentStore) -> None:
    fill(store, 1)
    client, _ = viewer_app(store)
    asked: list[tuple[str, str]] = []
    with client:
        node = NodeClient("http://node.test", TOKEN, http=client)
        client.app.router.routes  # noqa: B018  (the app is up)
        original = node.timeline

        def spy(camera: str, f: int | None = None, t: int | None = None) -> TimelineOut:
            asked.append((str(f), str(t)))
            assert f is not None and t is not None and t - f <= MAX_SUMMARY_RANGE_US
            return original(camera, f, t)

        node.timeline = spy  # type: ignore[method-assign]
        joined = node.whole_timeline(CAMERA, T0 - 20 * DAY_US, T0 + 2 * DAY_US)
    assert len(asked) == 4
    assert [(r.start_wall_us, r.end_wall_us) for r in joined.runs] == [(T0, T0 + DAY_US)]


def test_iter_segments_pages_through_days(store: SegmentStore) -> None:
    fill(store, 2)
    client, _ = viewer_app(store)
    with client:
        node = NodeClient("http://node.test", TOKEN, http=client)
        ids = [s.segment_id for s in node.iter_segments(CAMERA, T0 + 1, T0 + 2 * DAY_US)]
    assert len(ids) == 2 * PER_DAY and len(set(ids)) == len(ids) and ids == sorted(ids)


def test_playlist_is_cut_at_the_cap_and_continues_exactly(
        store: SegmentStore, monkeypatch: pytest.MonkeyPatch) -> None:
    fill(store, 1)
    monkeypatch.setattr(routes_hls, "MAX_PLAYLIST_SEGMENTS", 100)
    client, auth = viewer_app(store)
    with client:
        url = f"{API}/cameras/{CAMERA}/playback.m3u8"
        first = client.get(url, params={"from": T0, "to": T0 + 3_600_000_000}, headers=auth)
        assert first.status_code == 200
        assert first.text.count("#EXTINF") == 100
        assert first.text.rstrip().endswith("#EXT-X-ENDLIST")
        rest = int(first.headers[NEXT_FROM_HEADER])
        assert rest == T0 + 100 * SEG_US and f"from={rest}" in first.text
        second = client.get(url, params={"from": rest, "to": T0 + 3_600_000_000}, headers=auth)
        uris = [x for x in first.text.splitlines() + second.text.splitlines()
                if x and not x.startswith("#")]
        assert len(uris) == len(set(uris)) == 200
        whole = client.get(url, params={"from": T0, "to": T0 + 100 * SEG_US}, headers=auth)
        assert NEXT_FROM_HEADER not in whole.headers and whole.text.count("#EXTINF") == 100


def test_the_spec_publishes_the_limits(store: SegmentStore) -> None:
    client, auth = viewer_app(store)
    with client:
        spec = client.get("/openapi.json", headers=auth).json()
    op = spec["paths"][f"{API}/cameras/{{camera}}/segments"]["get"]
    limit = next(p for p in op["parameters"] if p["name"] == "limit")
    assert limit["schema"]["maximum"] == MAX_PAGE_ROWS
    assert op["x-hotspare-limits"]["max_range_us"] == MAX_SEGMENT_RANGE_US
    for path in ("/cameras/{camera}/timeline", "/cameras/{camera}/runs",
                 "/cameras/{camera}/playback.m3u8", "/site/cameras/{camera}/timeline",
                 "/site/cameras/{camera}/playback.m3u8"):
        if API + path in spec["paths"]:
            assert "x-hotspare-limits" in spec["paths"][API + path]["get"], path


# ------------------------------------------------------------------ the site (master) routes


def get(site: Site, path: str, **params: Any) -> httpx.Response:
    return site.master.get(API + path, params=params, headers={"Authorization": f"Bearer {TOKEN}"})


def test_site_routes_refuse_too_long_ranges(site: Site) -> None:
    for path, days, limit in [("/site/cameras/cam-1/timeline", 8, "7 d"),
                              ("/site/cameras/cam-1/playback.m3u8", 2, "24 h")]:
        response = get(site, path, **{"from": T0, "to": T0 + days * DAY_US})
        assert response.status_code == 400, path
        assert response.json()["error"] == "range_too_large"
        assert f"at most {limit}" in response.json()["detail"]


def test_site_playback_is_capped_and_says_where_to_continue(
        site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(site_routes, "MAX_PLAYLIST_SEGMENTS", 4)
    response = get(site, "/site/cameras/cam-1/playback.m3u8", **{"from": T0, "to": T0 + 3_000_000})
    assert response.status_code == 200 and response.text.count("#EXTINF") == 4
    rest = int(response.headers[NEXT_FROM_HEADER])
    after = get(site, "/site/cameras/cam-1/playback.m3u8", **{"from": rest, "to": T0 + 3_000_000})
    assert after.text.count("#EXTINF") == 2 and NEXT_FROM_HEADER not in after.headers


class _PagedNode:
    """Serves `list_segments` from a real node app with tiny pages, to see the master page."""

    def __init__(self, client: NodeClient) -> None:
        self.client = client
        self.calls = 0

    def list_segments(self, camera: str, f: int, t: int, limit: int, after: str | None) -> Any:
        self.calls += 1
        return self.client.list_segments(camera, f, t, min(limit, 3), after)


def test_the_master_pages_a_node_and_stops_at_the_cap(store: SegmentStore) -> None:
    fill(store, 1)
    client, _ = viewer_app(store)
    with client:
        node = _PagedNode(NodeClient("http://node.test", TOKEN, http=client))
        got = segment_pages(node, CAMERA, T0, T0 + DAY_US, 10)  # type: ignore[arg-type]
    assert len(got.segments) == 10 and got.unread_from == T0 + 10 * SEG_US
    assert node.calls == 4  # 3 + 3 + 3 + the page that shows more exist


def test_merged_timeline_ends_where_a_node_was_cut() -> None:
    def run(node: str, start: int, end: int) -> TimelineRunOut:
        return TimelineRunOut(run_id=f"r{node}", recorded_by=node, recorded_as="rec-2",
                              start_wall_us=start, end_wall_us=end, segment_count=1,
                              frame_count=1)

    cut = TimelineOut(camera_id="cam-1", from_wall_us=T0, to_wall_us=T0 + 100, gaps=[],
                      runs=[run("rec-2", T0, T0 + 40)], truncated=True, next_from_wall_us=T0 + 40)
    whole = TimelineOut(camera_id="cam-1", from_wall_us=T0, to_wall_us=T0 + 100, gaps=[],
                        runs=[run("spare-1", T0 + 30, T0 + 90)])
    merged = merge_timeline("cam-1", "rec-2", T0, T0 + 100,
                            [SourceResult("rec-2", "u2", True, None, cut),
                             SourceResult("spare-1", "u1", True, None, whole)], 0)
    assert merged.truncated and merged.next_from_wall_us == T0 + 40
    assert [(r.held_by, r.end_wall_us) for r in merged.runs] == [("rec-2", T0 + 40),
                                                                  ("spare-1", T0 + 40)]
    assert merged.gaps == []
    capped = merge_timeline("cam-1", "rec-2", T0, T0 + 100,
                            [SourceResult("spare-1", "u1", True, None, whole),
                             SourceResult("rec-2", "u2", True, None,
                                          whole.model_copy(update={"runs": [
                                              run("rec-2", T0, T0 + 10)]}))], 0, max_runs=1)
    assert capped.next_from_wall_us == T0 + 30 and len(capped.runs) == 1
