"""What a node serves when its segments overlap: playlists and downloads give each frame once,
cut segments come as the stored init plus the fragments before the cut, `raw=1` gives the file."""

from __future__ import annotations

import io
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlsplit

import av
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.testclient import TestClient

from hotspare.api.serving import stored_file_response
from hotspare.store.served import half_frame_us
from tests.support.api_node import AUTH, CAMERA, T0, Node, record_run

API = "/api/v1"
RANGE = {"from": str(T0 - 1_000_000), "to": str(T0 + 60_000_000)}
CUT_US = T0 + 1_000_000  # inside run A's third segment [0.8 s, 1.2 s): 5 of its 10 frames stay


def _packets(data: bytes) -> list[bytes]:
    with av.open(io.BytesIO(data), format="mp4") as c:
        stream = c.streams.video[0]
        packets = [p for p in c.demux(stream) if p.size]
        assert packets and packets[0].is_keyframe
        return [bytes(p) for p in packets]


def _get(node: Node, url: str, byte_range: str | None = None) -> bytes:
    parts = urlsplit(url)
    headers = dict(AUTH)
    if byte_range:
        offset, length = byte_range.strip('"').split("@")[::-1]
        headers["Range"] = f"bytes={offset}-{int(offset) + int(length) - 1}"
    response = node.client.get(parts.path, params=parse_qs(parts.query), headers=headers)
    assert response.status_code in (200, 206), (url, response.text)
    return response.content


def _played(node: Node, playlist: str) -> tuple[list[bytes], list[str], list[str]]:
    """Packets a player gets, the media URIs and the EXTINF values, in playlist order."""
    url = f"http://node.test{API}/cameras/{CAMERA}/{playlist}"
    text = node.client.get(url, params=RANGE if "playback" in playlist else None,
                           headers=AUTH).text
    packets: list[bytes] = []
    uris: list[str] = []
    extinf: list[str] = []
    init = b""
    media_range = None
    for line in text.splitlines():
        if line.startswith("#EXT-X-MAP:"):
            map_uri = line.split('URI="')[1].split('"')[0]
            map_range = line.split('BYTERANGE="')[1].split('"')[0]
            init = _get(node, urljoin(url, map_uri), map_range)
        elif line.startswith("#EXTINF:"):
            extinf.append(line.split(":")[1])
        elif line.startswith("#EXT-X-BYTERANGE:"):
            media_range = line.split(":")[1]
        elif line and not line.startswith("#"):
            uris.append(line)
            packets += _packets(init + _get(node, urljoin(url, line), media_range))
            media_range = None
    return packets, uris, extinf


def test_overlapping_segment_is_served_cut_in_playlists_and_downloads(node: Node) -> None:
    a2 = node.segments[2]
    _, (c0,) = record_run(node.store, CAMERA, CUT_US, 1, shade=3)  # a later run overlapping A2
    raw = {s.segment_id: _packets(node.store.segment_file(s).read_bytes())
           for s in [*node.segments, c0]}
    a0, a1, _, b0, b1 = node.segments
    expected = (raw[a0.segment_id] + raw[a1.segment_id] + raw[a2.segment_id][:5]
                + raw[c0.segment_id] + raw[b0.segment_id] + raw[b1.segment_id])
    for playlist in ("playback.m3u8", "live.m3u8"):
        packets, uris, extinf = _played(node, playlist)
        assert packets == expected, playlist
        assert uris[2].endswith(f"/segments/{a2.segment_id}/file?end_us={CUT_US}&part=media")
        assert extinf[2] == "0.200," and extinf[3] == "0.400,"
        assert all(u.endswith("?raw=1") for k, u in enumerate(uris) if k != 2)

    download = node.client.get(f"{API}/segments/{a2.segment_id}/file", headers=AUTH)
    assert download.status_code == 200 and download.headers["hotspare-served-frames"] == "5"
    assert _packets(download.content) == raw[a2.segment_id][:5]
    stored = node.client.get(f"{API}/segments/{a2.segment_id}/file", params={"raw": "1"},
                             headers=AUTH)
    assert stored.content == node.store.segment_file(a2).read_bytes()
    assert stored.headers["x-segment-sha256"] == a2.sha256
    whole = node.client.get(f"{API}/segments/{c0.segment_id}/file", headers=AUTH)
    assert whole.content == node.store.segment_file(c0).read_bytes()

    explicit = {"end_us": str(CUT_US)}
    init = node.client.get(f"{API}/segments/{a2.segment_id}/file",
                           params={**explicit, "part": "init"}, headers=AUTH)
    assert init.content == stored.content[: a2.init_bytes]
    ranged = node.client.get(f"{API}/segments/{a2.segment_id}/file", params=explicit,
                             headers={**AUTH, "Range": "bytes=10-99"})
    assert ranged.status_code == 206 and ranged.content == download.content[10:100]
    assert ranged.headers["content-range"] == f"bytes 10-99/{len(download.content)}"


def test_explicit_cut_and_bad_queries(node: Node) -> None:
    a0 = node.segments[0]
    url = f"{API}/segments/{a0.segment_id}/file"
    raw = _packets(node.store.segment_file(a0).read_bytes())
    cut = node.client.get(url, params={"end_us": str(a0.start_wall_us + 3 * 40_000)},
                          headers=AUTH)
    assert _packets(cut.content) == raw[:3]
    past_end = node.client.get(url, params={"end_us": str(a0.end_wall_us + 5)}, headers=AUTH)
    assert past_end.content == node.store.segment_file(a0).read_bytes()
    for params, code, error in [
        ({"raw": "1", "end_us": str(a0.end_wall_us)}, 400, "bad_query"),
        ({"raw": "1", "part": "init"}, 400, "bad_query"),
        ({"end_us": str(a0.start_wall_us + half_frame_us(a0))}, 400, "nothing_served"),
        ({"part": "thumbnail"}, 422, None),
    ]:
        answer = node.client.get(url, params=params, headers=AUTH)
        assert answer.status_code == code, (params, answer.text)
        if error:
            assert answer.json()["error"] == error


def test_a_copy_inside_another_segment_is_not_served(node: Node) -> None:
    _, (first,) = record_run(node.store, CAMERA, T0 + 3_000_000, 1)
    _, (copy,) = record_run(node.store, CAMERA, T0 + 3_000_000, 1)  # split brain: same video
    answer = node.client.get(f"{API}/segments/{copy.segment_id}/file", headers=AUTH)
    assert answer.status_code == 409 and answer.json()["error"] == "not_served"
    assert node.client.get(f"{API}/segments/{copy.segment_id}/file", params={"raw": "1"},
                           headers=AUTH).status_code == 200
    _, uris, _ = _played(node, "playback.m3u8")
    assert any(f"/segments/{first.segment_id}/" in u for u in uris)
    assert not any(f"/segments/{copy.segment_id}/" in u for u in uris)


def test_a_file_deleted_while_it_is_sent_still_arrives_whole(tmp_path: Path) -> None:
    """Re-insert deletes a spare's copy once the server holds it, possibly while a player fetches
    it: the answer is sent from the descriptor opened first, so it stays whole (it was a 500)."""
    path = tmp_path / "segment.mp4"
    body = bytes(range(256)) * 4096  # 1 MiB, several chunks
    path.write_bytes(body)

    async def send_after_delete(request: Request) -> Response:
        file = path.open("rb")
        path.unlink()  # gone before a byte is sent
        return stored_file_response(file, request, {})

    app = Starlette(routes=[Route("/f", send_after_delete)])
    with TestClient(app) as client:
        path.write_bytes(body)
        whole = client.get("/f")
        assert whole.status_code == 200 and whole.content == body
        path.write_bytes(body)
        part = client.get("/f", headers={"Range": "bytes=1000-1999"})
        assert part.status_code == 206 and part.content == body[1000:2000]
        assert part.headers["content-range"] == f"bytes 1000-1999/{len(body)}"
