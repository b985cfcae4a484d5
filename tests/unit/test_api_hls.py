"""HLS playlists: byte ranges match the files, discontinuities fall between runs, grants carry."""

from __future__ import annotations

from urllib.parse import parse_qs, urljoin, urlsplit

from hotspare.timefmt import format_wall_us
from tests.support.api_node import AUTH, CAMERA, T0, TOKEN, Node, add_segment

API = "/api/v1"
RANGE = {"from": str(T0 - 1_000_000), "to": str(T0 + 60_000_000)}


def _entries(text: str) -> list[dict[str, str]]:
    """One dict per media segment: the tags that precede its URI, and the URI."""
    entries, current = [], {}
    for line in text.splitlines():
        if line.startswith("#EXT-X-DISCONTINUITY") and ":" not in line:
            current["discontinuity"] = "yes"
        elif line.startswith(
            ("#EXT-X-MAP:", "#EXT-X-BYTERANGE:", "#EXTINF:", "#EXT-X-PROGRAM-DATE-TIME:")
        ):
            tag, _, value = line.partition(":")
            current[tag] = value
        elif line and not line.startswith("#"):
            current["uri"] = line
            entries.append(current)
            current = {}
    return entries


def _header(text: str, tag: str) -> int:
    return int(next(line for line in text.splitlines() if line.startswith(tag + ":")).split(":")[1])


def _get(node: Node, playlist_url: str, uri: str, headers: dict[str, str]) -> bytes:
    absolute = urljoin(playlist_url, uri)
    parts = urlsplit(absolute)
    response = node.client.get(parts.path, params=parse_qs(parts.query), headers=headers)
    assert response.status_code in (200, 206), (absolute, response.text)
    return response.content


def test_vod_playlist_ranges_match_files(node: Node) -> None:
    url = f"http://node.test{API}/cameras/{CAMERA}/playback.m3u8"
    response = node.client.get(url, params=RANGE, headers=AUTH)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/vnd.apple.mpegurl")
    text = response.text
    lines = text.splitlines()
    assert lines[0] == "#EXTM3U" and int(lines[1].split(":")[1]) >= 7
    assert "#EXT-X-PLAYLIST-TYPE:VOD" in lines and lines[-1] == "#EXT-X-ENDLIST"
    entries = _entries(text)
    assert len(entries) == len(node.segments)
    for entry, segment in zip(entries, node.segments, strict=True):
        assert f'BYTERANGE="{segment.init_bytes}@0"' in entry["#EXT-X-MAP"]
        assert entry["#EXT-X-BYTERANGE"] == (
            f"{segment.bytes - segment.init_bytes}@{segment.init_bytes}"
        )
        assert entry["#EXTINF"] == "0.400,"
        assert entry["#EXT-X-PROGRAM-DATE-TIME"] == format_wall_us(segment.start_wall_us)
        assert entry["uri"].endswith(f"/segments/{segment.segment_id}/file?raw=1")
        whole = _get(node, url, entry["uri"], AUTH)
        assert len(whole) == segment.bytes
        assert whole[4:8] == b"ftyp"
        assert whole[segment.init_bytes + 4 : segment.init_bytes + 8] == b"moof"
    # Runs A (3 segments) and B (2): one discontinuity, on B's first segment.
    assert [e.get("discontinuity") for e in entries] == [None, None, None, "yes", None]
    assert "#EXT-X-TARGETDURATION:1" in lines


def test_query_token_becomes_a_grant_in_uris_never_the_token(node: Node) -> None:
    url = f"http://node.test{API}/cameras/{CAMERA}/playback.m3u8"
    text = node.client.get(url, params={**RANGE, "token": TOKEN}).text
    assert TOKEN not in text and "token=" not in text
    entries = _entries(text)
    assert all("&grant=v1." in e["uri"] for e in entries)
    assert all("&grant=v1." in e["#EXT-X-MAP"] for e in entries)
    assert len(_get(node, url, entries[0]["uri"], {})) == node.segments[0].bytes
    header_text = node.client.get(url, params=RANGE, headers=AUTH).text
    assert "token=" not in header_text and "grant=" not in header_text


def test_empty_range_is_a_valid_playlist(node: Node) -> None:
    text = node.client.get(
        f"{API}/cameras/{CAMERA}/playback.m3u8", params={"from": "0", "to": "1000"}, headers=AUTH
    ).text
    assert text.startswith("#EXTM3U") and text.rstrip().endswith("#EXT-X-ENDLIST")
    assert _entries(text) == []


def test_live_window_slides_with_stable_numbers(node: Node) -> None:
    node.client.app.state.node.live_segments = 3  # type: ignore[attr-defined]
    url = f"{API}/cameras/{CAMERA}/live.m3u8"
    first = node.client.get(url, headers=AUTH)
    assert first.status_code == 200 and "#EXT-X-ENDLIST" not in first.text
    entries = _entries(first.text)
    assert [e["uri"].rsplit("/", 2)[-2] for e in entries] == [
        str(s.segment_id) for s in node.segments[-3:]
    ]
    assert [e.get("discontinuity") for e in entries] == [None, "yes", None]
    msn = _header(first.text, "#EXT-X-MEDIA-SEQUENCE")
    dsn = _header(first.text, "#EXT-X-DISCONTINUITY-SEQUENCE")

    add_segment(node.store, node.runs[1], 2)
    second = node.client.get(url, headers=AUTH).text
    entries = _entries(second)
    # Run B's first segment now opens the window: its discontinuity is counted in the header
    # (the first segment's discontinuity sequence number) rather than tagged.
    assert len(entries) == 3 and all("discontinuity" not in e for e in entries)
    assert f"#EXT-X-MEDIA-SEQUENCE:{msn + 1}" in second
    assert f"#EXT-X-DISCONTINUITY-SEQUENCE:{dsn + 1}" in second

    add_segment(node.store, node.runs[1], 3)
    third = node.client.get(url, headers=AUTH).text
    assert f"#EXT-X-MEDIA-SEQUENCE:{msn + 2}" in third
    assert f"#EXT-X-DISCONTINUITY-SEQUENCE:{dsn + 1}" in third
    assert all("discontinuity" not in e for e in _entries(third))
