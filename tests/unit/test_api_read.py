"""Health, segment listing, runs, timeline and downloads against a real store."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from hotspare.api import routes_read
from hotspare.client.node_client import NodeApiError, NodeClient
from tests.support.api_node import AUTH, CAMERA, SERVER, T0, TOKEN, Node, open_node

API = "/api/v1"


def test_health_ok_only_when_every_camera_records(node: Node) -> None:
    node.health = {
        CAMERA: {"state": "recording", "last_frame_wall_us": T0, "run_id": "r1"},
        "cam-2": {"state": "recording"},
    }
    body = node.client.get(f"{API}/health", headers=AUTH).json()
    assert body["ok"] is True and body["server_name"] == SERVER
    node.health["cam-2"] = {"state": "failing", "error": "connection refused"}
    response = node.client.get(f"{API}/health", headers=AUTH)
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is False
    assert {c["camera_id"]: c["state"] for c in body["cameras"]} == {
        CAMERA: "recording",
        "cam-2": "failing",
    }


def test_health_reports_configured_camera_without_worker_and_broken_source(node: Node) -> None:
    node.health = {CAMERA: {"state": "recording"}}
    body = node.client.get(f"{API}/health", headers=AUTH).json()
    assert body["ok"] is False
    assert [c["state"] for c in body["cameras"] if c["camera_id"] == "cam-2"] == ["connecting"]

    def broken() -> dict[str, object]:
        raise RuntimeError("recorder gone")

    node.health = {CAMERA: {"state": "recording", "last_frame_wall_us": "soon"}}
    assert node.client.get(f"{API}/health", headers=AUTH).json()["ok"] is False

    node.client.app.state.node.health = broken  # type: ignore[attr-defined]
    response = node.client.get(f"{API}/health", headers=AUTH)
    assert response.status_code == 200
    assert response.json()["ok"] is False and "recorder gone" in response.json()["error"]


def test_list_segments_by_wall_us_and_iso(node: Node) -> None:
    params = {"from": str(T0), "to": str(T0 + 60_000_000)}
    body = node.client.get(f"{API}/cameras/{CAMERA}/segments", params=params, headers=AUTH).json()
    assert [s["segment_id"] for s in body["segments"]] == [s.segment_id for s in node.segments]
    first = body["segments"][0]
    assert first["end_wall_us"] - first["start_wall_us"] == 400_000
    iso = {"from": "2025-11-25T21:00:05Z", "to": "2025-11-25T22:01:00+01:00"}
    body = node.client.get(f"{API}/cameras/{CAMERA}/segments", params=iso, headers=AUTH).json()
    assert [s["run_id"] for s in body["segments"]] == [node.runs[1].run_id] * 2
    limited = node.client.get(
        f"{API}/cameras/{CAMERA}/segments", params={**params, "limit": 2}, headers=AUTH
    ).json()
    assert len(limited["segments"]) == 2 and limited["truncated"] is True


def test_bad_times_and_cameras_are_clear_4xx(node: Node) -> None:
    url = f"{API}/cameras/{CAMERA}/segments"
    for params, code in [
        ({"from": "yesterday"}, "bad_time"),
        ({"from": "2025-11-25T21:00:00"}, "bad_time"),
        ({"from": "99999999999999999999"}, "bad_time"),
        ({"from": "²"}, "bad_time"),  # found by fuzzing: was a 500
        ({"to": "٣"}, "bad_time"),
        ({"from": str(T0 + 10), "to": str(T0)}, "bad_range"),
    ]:
        response = node.client.get(url, params=params, headers=AUTH)
        assert response.status_code == 400 and response.json()["error"] == code, params
    response = node.client.get(f"{API}/cameras/cam-9/segments", headers=AUTH)
    assert response.status_code == 404 and "cam-9" in response.json()["detail"]
    for bad in ["Cam-1", "a..b", "%2e%2e", "x" * 90]:
        response = node.client.get(f"{API}/cameras/{bad}/runs", headers=AUTH)
        assert response.status_code in (400, 404, 422), bad
        assert set(response.json()) == {"error", "detail"}
    response = node.client.get(url, params={"limit": "0"}, headers=AUTH)
    assert response.status_code == 422 and response.json()["error"] == "invalid_request"


def test_runs_and_timeline(node: Node) -> None:
    params = {"from": str(T0 - 1_000_000), "to": str(T0 + 10_000_000)}
    runs = node.client.get(f"{API}/cameras/{CAMERA}/runs", params=params, headers=AUTH).json()
    assert [r["run_id"] for r in runs["runs"]] == [r.run_id for r in node.runs]
    assert runs["runs"][1]["ended_wall_us"] is None
    body = node.client.get(f"{API}/cameras/{CAMERA}/timeline", params=params, headers=AUTH).json()
    assert [
        (r["start_wall_us"], r["end_wall_us"], r["frame_count"], r["recorded_by"])
        for r in body["runs"]
    ] == [(T0, T0 + 1_200_000, 30, SERVER), (T0 + 5_000_000, T0 + 5_800_000, 20, SERVER)]
    assert [(g["start_wall_us"], g["length_us"]) for g in body["gaps"]] == [
        (T0 - 1_000_000, 1_000_000),
        (T0 + 1_200_000, 3_800_000),
        (T0 + 5_800_000, 4_200_000),
    ]


def test_segment_metadata_and_download_with_range(node: Node) -> None:
    segment = node.segments[1]
    meta = node.client.get(f"{API}/segments/{segment.segment_id}", headers=AUTH).json()
    assert meta["sha256"] == segment.sha256 and meta["init_bytes"] == segment.init_bytes
    whole = node.client.get(f"{API}/segments/{segment.segment_id}/file", headers=AUTH)
    assert whole.status_code == 200 and whole.headers["content-type"] == "video/mp4"
    assert hashlib.sha256(whole.content).hexdigest() == segment.sha256
    part = node.client.get(
        f"{API}/segments/{segment.segment_id}/file",
        headers={**AUTH, "Range": f"bytes={segment.init_bytes}-"},
    )
    assert part.status_code == 206
    assert part.content == whole.content[segment.init_bytes :]
    assert part.headers["content-range"] == (
        f"bytes {segment.init_bytes}-{segment.bytes - 1}/{segment.bytes}"
    )
    assert node.client.get(f"{API}/segments/999999", headers=AUTH).status_code == 404
    for bad in ["0", "-1", "abc", str(2**70)]:
        response = node.client.get(f"{API}/segments/{bad}/file", headers=AUTH)
        assert response.status_code == 422, bad


def test_bad_range_answers_in_the_problem_shape(node: Node) -> None:
    """Found by fuzzing: FileResponse's own text/plain 400 and empty 416 broke the error shape."""
    segment = node.segments[0]
    url = f"{API}/segments/{segment.segment_id}/file"
    for bad in ["bytes=", "items=0-9", "bytes=9-3", "nonsense"]:
        response = node.client.get(url, headers={**AUTH, "Range": bad})
        assert response.status_code == 400, bad
        assert response.json()["error"] == "bad_range_header", bad
    response = node.client.get(url, headers={**AUTH, "Range": f"bytes={segment.bytes}-"})
    assert response.status_code == 416
    assert response.json()["error"] == "range_not_satisfiable"
    assert response.headers["content-range"] == f"bytes */{segment.bytes}"


def test_missing_file_is_404_not_500(node: Node) -> None:
    segment = node.segments[0]
    node.store.segment_file(segment).unlink()
    response = node.client.get(f"{API}/segments/{segment.segment_id}/file", headers=AUTH)
    assert response.status_code == 404 and response.json()["error"] == "file_missing"


def test_segments_of_several_cameras_in_one_request(node: Node) -> None:
    """`GET /segments?camera=…`: what a spare's gap repair asks a server once a second."""
    params: dict[str, Any] = {"camera": [CAMERA, "cam-2", CAMERA], "from": str(T0),
                              "to": str(T0 + 60_000_000)}
    body = node.client.get(f"{API}/segments", params=params, headers=AUTH).json()
    assert [c["camera_id"] for c in body["cameras"]] == [CAMERA, "cam-2"]  # named twice: once
    assert [s["segment_id"] for s in body["cameras"][0]["segments"]] == [
        s.segment_id for s in node.segments]
    assert body["cameras"][1]["segments"] == [] and body["from_wall_us"] == T0
    cut = node.client.get(f"{API}/segments", params={**params, "limit": 2}, headers=AUTH).json()
    first = cut["cameras"][0]
    assert len(first["segments"]) == 2 and first["truncated"] is True
    rest = node.client.get(f"{API}/cameras/{CAMERA}/segments", headers=AUTH, params={
        "from": str(T0), "to": str(T0 + 60_000_000), "after": first["next"]}).json()
    assert len(rest["segments"]) == len(node.segments) - 2

    def refused(query: dict[str, Any]) -> tuple[int, str, str]:
        response = node.client.get(f"{API}/segments", params=query, headers=AUTH)
        return response.status_code, response.json()["error"], response.json()["detail"]

    assert refused({})[:2] == (400, "no_camera")
    status, error, detail = refused({"camera": [f"cam-{i}" for i in range(257)]})
    assert (status, error) == (400, "too_many_cameras") and "257" in detail and "256" in detail
    assert refused({"camera": ["Cam 1"]})[:2] == (400, "bad_camera_id")
    assert refused({"camera": [CAMERA, "cam-9"]})[:2] == (404, "unknown_camera")
    status, error, _ = refused({"camera": CAMERA, "from": str(T0),
                                "to": str(T0 + 3_600_000_001)})
    assert (status, error) == (400, "range_too_large")
    assert refused({"camera": CAMERA, "limit": 1001})[:2] == (422, "invalid_request")
    assert node.client.get(f"{API}/segments", params={"camera": CAMERA}).status_code == 401


def test_a_node_without_the_multi_camera_listing_answers_not_found(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What an older server answers (version skew): the 404 gap repair falls back on, unlike a
    camera it does not know (`unknown_camera`)."""
    monkeypatch.setattr(routes_read.router, "routes", [
        r for r in routes_read.router.routes if getattr(r, "path", "") != "/segments"])
    with open_node(tmp_path) as older:
        client = NodeClient("http://node.test", TOKEN, http=older.client)
        with pytest.raises(NodeApiError) as refused:
            client.list_cameras_segments([CAMERA], T0, T0 + 1_000_000)
        assert (refused.value.status, refused.value.error) == (404, "not_found")
        assert client.list_segments(CAMERA, T0, T0 + 60_000_000).segments  # per camera: yes
