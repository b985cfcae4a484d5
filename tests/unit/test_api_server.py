"""The API over real HTTP (uvicorn on a free port): streaming import, download, a cut upload."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from hotspare.api.app import create_app
from hotspare.api.server import ApiServer
from hotspare.client.node_client import NodeApiError, NodeClient
from hotspare.store.segment_store import SegmentStore
from hotspare.wire import META_HEADER, ImportMetaIn
from tests.support.api_node import AUTH, CAMERA, SERVER, T0, TOKEN, record_run


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, SegmentStore, SegmentStore]]:
    store = SegmentStore.open(tmp_path / "store", SERVER)
    spare = SegmentStore.open(tmp_path / "spare", "spare-1")
    app = create_app(
        store, health=lambda: {}, token=TOKEN, server_name=SERVER, known_cameras=lambda: {CAMERA}
    )
    server = ApiServer(app, port=0)
    server.start()
    try:
        yield f"http://127.0.0.1:{server.port}", store, spare
    finally:
        server.stop()
        spare.close()
        store.close()


def test_streaming_import_and_download_over_http(served: tuple, tmp_path: Path) -> None:
    url, _, spare = served
    run, segments = record_run(spare, CAMERA, T0, 2, recorded_as=SERVER, shade=5)
    with NodeClient(url, TOKEN, timeout=5) as client:
        for segment in segments:
            result = client.import_segment(
                CAMERA, ImportMetaIn.of(segment, run), spare.segment_file(segment)
            )
            assert result.status == "inserted"
        listed = client.list_segments(CAMERA, T0, T0 + 10_000_000).segments
        assert [s.sha256 for s in listed] == [s.sha256 for s in segments]
        path = client.download_segment(
            listed[1].segment_id, tmp_path / "x.mp4", expected_sha256=listed[1].sha256
        )
        assert path.read_bytes() == spare.segment_file(segments[1]).read_bytes()
    with NodeClient(url, "wrong", timeout=5) as client, pytest.raises(NodeApiError) as refused:
        client.health()
    assert refused.value.status == 401


def test_upload_cut_off_mid_body_leaves_nothing(served: tuple) -> None:
    url, store, spare = served
    run, segments = record_run(spare, CAMERA, T0, 1, recorded_as=SERVER, shade=9)
    data = spare.segment_file(segments[0]).read_bytes()
    meta = ImportMetaIn.of(segments[0], run).model_dump_json()
    host, port = url.removeprefix("http://").split(":")
    request = (
        f"PUT /api/v1/cameras/{CAMERA}/segments/import HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: {AUTH['Authorization']}\r\n{META_HEADER}: {meta}\r\n"
        f"Content-Length: {len(data)}\r\nContent-Type: application/octet-stream\r\n\r\n"
    )
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(request.encode("utf-8") + data[: len(data) // 2])
        sock.shutdown(socket.SHUT_WR)  # the sender dies half way
        sock.recv(4096)
    with NodeClient(url, TOKEN, timeout=5) as client:
        assert client.list_segments(CAMERA, 0, T0 + 10_000_000).segments == []
        client.health()  # the server is still fine
    assert list((store.root / "incoming").iterdir()) == []
    assert not (store.root / "segments" / CAMERA).exists() or not any(
        (store.root / "segments" / CAMERA).rglob("*.mp4")
    )
