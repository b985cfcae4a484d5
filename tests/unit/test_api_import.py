"""Import (re-insert) over HTTP: happy path, duplicates, every refusal leaving nothing behind."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hotspare.client.node_client import NodeApiError, NodeClient
from hotspare.store.models import RunInfo, SegmentInfo
from hotspare.store.segment_store import SegmentStore
from hotspare.wire import META_HEADER, ImportMetaIn
from tests.support.api_node import AUTH, CAMERA, SERVER, T0, TOKEN, Node, record_run

API = "/api/v1"
IMPORT_URL = f"{API}/cameras/{CAMERA}/segments/import"


@pytest.fixture
def spare(tmp_path: Path) -> Iterator[tuple[SegmentStore, RunInfo, list[SegmentInfo]]]:
    """A spare's buffer store holding 2 segments of cam-1 recorded as rec-a, 20 s after T0."""
    store = SegmentStore.open(tmp_path / "spare", "spare-1")
    run, segments = record_run(store, CAMERA, T0 + 20_000_000, 2, recorded_as=SERVER, shade=3)
    yield store, run, segments
    store.close()


def _client(node: Node) -> NodeClient:
    return NodeClient("http://node.test", TOKEN, http=node.client)


def _snapshot(node: Node) -> tuple[list[int], list[str]]:
    """Index rows and files of the receiving store, to prove a refusal wrote nothing."""
    rows = [s.segment_id for s in node.store.list_segments(CAMERA, 0, T0 + 3_600_000_000)]
    root = node.store.root
    files = sorted(str(p.relative_to(root)) for p in (root / "segments").rglob("*") if p.is_file())
    files += [str(p) for p in (root / "incoming").iterdir()]
    return rows, files


def test_import_then_duplicate_keeps_one_row(node: Node, spare: tuple) -> None:
    store, run, segments = spare
    client = _client(node)
    for segment in segments:
        result = client.import_segment(
            CAMERA, ImportMetaIn.of(segment, run), store.segment_file(segment)
        )
        assert result.status == "inserted" and result.segment is not None
        assert result.segment.sha256 == segment.sha256
        assert result.segment.recorded_by == "spare-1"
    rows_after_first, files = _snapshot(node)
    assert len(rows_after_first) == len(node.segments) + 2
    assert not (node.store.root / "incoming").exists() or not any(
        (node.store.root / "incoming").iterdir()
    )
    again = client.import_segment(
        CAMERA, ImportMetaIn.of(segments[0], run), store.segment_file(segments[0])
    )
    assert again.status == "duplicate"
    assert _snapshot(node) == (rows_after_first, files)
    timeline = client.timeline(CAMERA, T0, T0 + 30_000_000)
    assert [r.recorded_by for r in timeline.runs] == [SERVER, SERVER, "spare-1"]


def test_client_downloads_and_lists(node: Node, tmp_path: Path) -> None:
    client = _client(node)
    listed = client.list_segments(CAMERA, T0, T0 + 60_000_000).segments
    assert [s.segment_id for s in listed] == [s.segment_id for s in node.segments]
    target = client.download_segment(
        listed[0].segment_id, tmp_path / "seg.mp4", expected_sha256=listed[0].sha256
    )
    assert target.stat().st_size == listed[0].bytes
    assert client.health().server_name == SERVER
    assert len(client.list_runs(CAMERA, T0, T0 + 60_000_000).runs) == 2
    with pytest.raises(NodeApiError) as refused:
        client.get_segment(424242)
    assert refused.value.status == 404 and refused.value.error == "unknown_segment"


def _put(
    node: Node,
    meta: dict,
    body: bytes | Iterator[bytes],
    camera: str = CAMERA,
    extra: dict[str, str] | None = None,
) -> tuple[int, dict]:
    headers = {
        **AUTH,
        META_HEADER: ImportMetaIn.model_validate(meta).model_dump_json()
        if not isinstance(meta.get("raw"), str)
        else meta["raw"],
        **(extra or {}),
    }
    response = node.client.put(
        f"{API}/cameras/{camera}/segments/import", content=body, headers=headers
    )
    return response.status_code, response.json()


def _case(spare: tuple) -> tuple[dict, bytes]:
    store, run, segments = spare
    meta = ImportMetaIn.of(segments[0], run).model_dump()
    return meta, store.segment_file(segments[0]).read_bytes()


def _chunks(data: bytes) -> Iterator[bytes]:
    yield data  # a generator makes the test client send it chunked, with no Content-Length


@pytest.mark.parametrize(
    "corruption, status, error",
    [
        ("hash", 400, "hash_mismatch"),
        ("flipped_byte", 400, "hash_mismatch"),
        ("short_body_with_length", 400, "length_mismatch"),
        ("short_body_chunked", 400, "truncated"),
        ("long_body_chunked", 400, "length_mismatch"),
        ("unknown_camera", 404, "unknown_camera"),
        ("dotdot_run", 400, "bad_metadata"),
        ("slash_run", 400, "bad_metadata"),
        ("dotdot_camera", 400, "bad_camera_id"),
        ("frame_count", 422, "segment_mismatch"),
        ("init_bytes", 422, "segment_mismatch"),
        ("too_large", 413, "too_large"),
        ("not_json", 400, "bad_metadata"),
        ("extra_field", 400, "bad_metadata"),
        ("own_recording", 409, "conflict"),
        ("wall_mismatch", 400, "bad_metadata"),
    ],
)
def test_corrupt_upload_is_refused_and_nothing_written(
    node: Node, spare: tuple, corruption: str, status: int, error: str
) -> None:
    meta, data = _case(spare)
    before = _snapshot(node)
    camera = CAMERA
    body: bytes | Iterator[bytes] = data
    extra: dict[str, str] = {}
    if corruption == "hash":
        meta["sha256"] = "0" * 64
    elif corruption == "flipped_byte":
        body = data[:-1] + bytes([data[-1] ^ 0xFF])
    elif corruption == "short_body_with_length":
        body = data[:-100]
    elif corruption == "short_body_chunked":
        body = _chunks(data[:-100])
    elif corruption == "long_body_chunked":
        body = _chunks(data + b"extra")
    elif corruption == "unknown_camera":
        camera = "cam-9"
    elif corruption == "dotdot_run":
        meta = {
            "raw": ImportMetaIn.model_validate(meta)
            .model_dump_json()
            .replace(f'"run_id":"{meta["run_id"]}"', '"run_id":"../x"')
        }
    elif corruption == "slash_run":
        meta = {
            "raw": ImportMetaIn.model_validate(meta)
            .model_dump_json()
            .replace(f'"run_id":"{meta["run_id"]}"', '"run_id":"a/b"')
        }
    elif corruption == "dotdot_camera":
        camera = "%2e%2e"
    elif corruption == "frame_count":
        meta["frame_count"] += 1
    elif corruption == "init_bytes":
        meta["init_bytes"] -= 1
    elif corruption == "too_large":
        meta["bytes"] = (1 << 20) + 1
    elif corruption == "not_json":
        meta = {"raw": "{not json"}
    elif corruption == "extra_field":
        meta = {"raw": ImportMetaIn.model_validate(meta).model_dump_json()[:-1] + ',"x":1}'}
    elif corruption == "own_recording":
        meta["recorded_by"] = SERVER
    elif corruption == "wall_mismatch":
        meta["start_wall_us"] += 5_000
    code, body_json = _put(node, meta, body, camera=camera, extra=extra)
    assert (code, body_json.get("error")) == (status, error), body_json
    assert set(body_json) == {"error", "detail"} and len(body_json["detail"]) > 20
    assert _snapshot(node) == before


def test_import_needs_metadata_header(node: Node, spare: tuple) -> None:
    _, data = _case(spare)
    response = node.client.put(IMPORT_URL, content=data, headers=AUTH)
    assert response.status_code == 422 and response.json()["error"] == "invalid_request"
    assert META_HEADER in response.json()["detail"]


def test_import_on_a_full_disk_is_refused_507_before_the_body(node: Node, spare: tuple) -> None:
    """Was an undocumented 500 from deep in the write; now a documented problem, nothing written."""
    meta, body = _case(spare)
    before = _snapshot(node)
    node.store.disk_free = lambda: len(body) - 1  # not even the segment fits
    status, problem = _put(node, meta, body)
    assert status == 507 and problem["error"] == "insufficient_storage", problem
    assert SERVER in problem["detail"] and "retry later" in problem["detail"]
    assert _snapshot(node) == before
