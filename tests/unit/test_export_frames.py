"""The export's frame check, clip joining, playlist reading and manifest building, on small
fMP4 pieces encoded here (no site, no network)."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import av
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hotspare.export.build import (
    ExportFailed,
    ExportRequest,
    FetchFailed,
    PlaylistPage,
    Progress,
    build_export,
)
from hotspare.export.clip import ClipWriter, clip_frames
from hotspare.export.manifest import CLIP_TICKS_PER_SECOND, sign
from hotspare.export.playlist import ByteRange, Fetch, PlaylistError, parse_vod
from hotspare.export.verify import VerifyFailed, check_frames, verify
from hotspare.timefmt import format_wall_us

T0 = 1_796_000_000_000_000
FRAME = CLIP_TICKS_PER_SECOND // 25


def _fmp4(frames: int = 25, shade: int = 0, bframes: int = 0) -> tuple[bytes, int]:
    """A fragmented MP4 of `frames` frames at 25 fps; returns the bytes and the init size."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4",
                 options={"movflags": "frag_keyframe+empty_moov+default_base_moof"}) as out:
        stream = out.add_stream("libx264", rate=25, options={
            "preset": "ultrafast",
            "x264-params": f"keyint=10:min-keyint=10:scenecut=0:bframes={bframes}"})
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(frames):
            frame = av.VideoFrame(64, 48, "yuv420p")
            for plane in frame.planes:
                plane.update(bytes([(shade + i * 7) % 256]) * plane.buffer_size)
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    data = buffer.getvalue()
    return data, data.index(b"moof") - 4


def _pieces_manifest(path: Path, walls: list[int], bframes: int = 0) -> dict[str, Any]:
    writer = ClipWriter(path)
    pieces = []
    for index, wall in enumerate(walls):
        data, _ = _fmp4(shade=index * 50, bframes=bframes)
        placed = writer.add(data, wall, f"piece {index}")
        pieces.append({"frame_count": placed.frame_count, "clip_first_pts": placed.clip_first_pts,
                       "frame_durations": [[d, 1] for d in placed.durations],
                       "first_frame_wall_us": wall,
                       "last_frame_wall_us": wall + sum(placed.durations[:-1]) * 1_000_000
                       // CLIP_TICKS_PER_SECOND})
    writer.close()
    return {"pieces": pieces}


@pytest.mark.parametrize("bframes", [0, 2])
def test_joined_clip_holds_each_piece_at_its_wall_time(tmp_path: Path, bframes: int) -> None:
    clip = tmp_path / "clip.mp4"
    # one second of video, a 1 s hole, one more second
    manifest = _pieces_manifest(clip, [T0, T0 + 2_000_000], bframes)
    frames = clip_frames(clip)
    assert len(frames) == 50
    starts = sorted(f.pts for f in frames)
    assert starts[:25] == [i * FRAME for i in range(25)]
    assert starts[25:] == [2 * CLIP_TICKS_PER_SECOND + i * FRAME for i in range(25)]
    check_frames(manifest, frames)


def test_overlapping_pieces_keep_decode_order(tmp_path: Path) -> None:
    """A piece the wall clock places inside the previous one is moved after it, never muxed
    backwards (which would make an unplayable file)."""
    clip = tmp_path / "clip.mp4"
    manifest = _pieces_manifest(clip, [T0, T0 + 500_000])
    frames = clip_frames(clip)
    dts = [f.dts for f in frames]
    assert dts == sorted(dts) and len(set(dts)) == len(dts)
    check_frames(manifest, frames)


@pytest.mark.parametrize(("change", "message"), [
    (lambda m: m["pieces"][0].__setitem__("frame_count", 24), "holds 50 frames"),
    (lambda m: m["pieces"][1]["frame_durations"].__setitem__(3, [FRAME + 1, 1]), "frame 4"),
    (lambda m: m["pieces"][1].__setitem__("clip_first_pts", 1), "frame 0"),
    (lambda m: m["pieces"][0].__setitem__("last_frame_wall_us", T0), "last frame wall time"),
    (lambda m: m["pieces"][0]["frame_durations"].append([FRAME, 1]), "26 frame spans"),
])
def test_frame_check_names_what_differs(tmp_path: Path, change: Any, message: str) -> None:
    clip = tmp_path / "clip.mp4"
    manifest = _pieces_manifest(clip, [T0, T0 + 1_000_000])
    change(manifest)
    with pytest.raises(VerifyFailed, match=message):
        check_frames(manifest, clip_frames(clip))


def test_playlist_entries_follow_maps_ranges_and_discontinuities() -> None:
    text = "\n".join([
        "#EXTM3U", "#EXT-X-VERSION:7",
        '#EXT-X-MAP:URI="http://a:1/api/v1/segments/5/file",BYTERANGE="800@0"',
        f"#EXT-X-PROGRAM-DATE-TIME:{format_wall_us(T0)}", "#EXTINF:1.000,",
        "#EXT-X-BYTERANGE:1000@800", "http://a:1/api/v1/segments/5/file",
        "#EXTINF:1.000,", "#EXT-X-BYTERANGE:500", "http://a:1/api/v1/segments/5/file",
        "#EXT-X-DISCONTINUITY", '#EXT-X-MAP:URI="other.mp4"', "#EXTINF:2.000,",
        "trimmed/7.mp4", "#EXT-X-ENDLIST"])
    entries = parse_vod(text, "http://b:2/api/v1/site/cameras/c/playback.m3u8")
    assert [e.media.byte_range for e in entries] == [ByteRange(800, 1000), ByteRange(1800, 500),
                                                     None]
    assert entries[0].init == Fetch("http://a:1/api/v1/segments/5/file", ByteRange(0, 800))
    assert entries[0].wall_us == T0 and entries[1].wall_us is None
    assert [e.discontinuity for e in entries] == [False, False, True]
    assert entries[2].media.url == "http://b:2/api/v1/site/cameras/c/trimmed/7.mp4"
    assert entries[2].init.url == "http://b:2/api/v1/site/cameras/c/other.mp4"


@pytest.mark.parametrize(("text", "message"), [
    ("not a playlist", "no #EXTM3U"),
    ("#EXTM3U\n#EXTINF:1,\nseg.mp4", "no EXT-X-MAP"),
    ('#EXTM3U\n#EXT-X-MAP:URI="i"\n#EXT-X-BYTERANGE:x@1\nseg.mp4', "not `length@offset`"),
    ('#EXTM3U\n#EXT-X-MAP:URI="i"\n#EXT-X-BYTERANGE:10\nseg.mp4', "no offset"),
])
def test_unreadable_playlists_are_named(text: str, message: str) -> None:
    with pytest.raises(PlaylistError, match=message):
        parse_vod(text, "http://x/")


class _FakeSource:
    """Two nodes: `srv` holds segment 1 (whole file) and `spare` segment 2; `down` is listed but
    never answers."""

    def __init__(self, partial: list[str]) -> None:
        self.files = {"http://srv/api/v1/segments/1/file": _fmp4(shade=0),
                      "http://spare/api/v1/segments/2/file": _fmp4(shade=90)}
        self.partial = partial

    def playlist(self, camera: str, from_us: int, to_us: int) -> PlaylistPage:
        lines = ["#EXTM3U"]
        for index, url in enumerate([*self.files, "http://down/api/v1/segments/3/file"]):
            data, init = self.files.get(url, (b"x" * 2000, 800))
            lines += [f'#EXT-X-MAP:URI="{url}",BYTERANGE="{init}@0"',
                      f"#EXT-X-PROGRAM-DATE-TIME:{format_wall_us(T0 + index * 1_000_000)}",
                      "#EXTINF:1.000,", f"#EXT-X-BYTERANGE:{len(data) - init}@{init}", url]
        return PlaylistPage(parse_vod("\n".join(lines), "http://srv/"), self.partial, None)

    def fetch(self, what: Fetch) -> bytes:
        if what.url not in self.files:
            raise FetchFailed("down: connection refused")
        data = self.files[what.url][0]
        assert what.byte_range is not None
        return data[what.byte_range.offset:what.byte_range.offset + what.byte_range.length]

    def segment(self, base_url: str, segment_id: int) -> dict[str, Any] | None:
        url = f"{base_url}/api/v1/segments/{segment_id}/file"
        if url not in self.files:
            return None
        data, _init = self.files[url]
        return {"segment_id": segment_id, "recorded_by": base_url.split("/")[2],
                "recorded_as": "srv", "run_id": "r", "seq": segment_id,
                "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data),
                "start_wall_us": T0 + (segment_id - 1) * 1_000_000}

    def node_of(self, url: str) -> str:
        return url.split("/")[2]


def test_build_names_sources_gaps_and_verifies(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    request = ExportRequest("site", "cam", T0 - 2_000_000, T0 + 4_000_000, "srv")
    progress = Progress()
    clip = tmp_path / "clip.mp4"
    manifest = build_export(request, _FakeSource([]), key, clip, progress)
    assert [(p["node"], p["recorded_by"], p["frame_count"], p["source_hash_checked"])
            for p in manifest["pieces"]] == [("srv", "srv", 25, True), ("spare", "spare", 25, True)]
    assert progress.view()["pieces_done"] == 2 and progress.view()["pieces_total"] == 3
    causes = [(g["cause"], g["start_wall_us"] - T0, g["end_wall_us"] - T0)
              for g in manifest["gaps"]]
    assert causes == [("no_video_recorded", -2_000_000, 0),
                      ("node_unreachable", 2_000_000, 4_000_000)]
    assert "down" in manifest["gaps"][1]["detail"]
    path = tmp_path / "m.json"
    path.write_text(json.dumps(manifest), encoding="utf-8")
    verify(clip, path, key.public_key())
    # Re-signing a forged manifest with another key does not fool a verifier holding the real one.
    forged = sign({**manifest, "gaps": []}, Ed25519PrivateKey.generate())
    path.write_text(json.dumps(forged), encoding="utf-8")
    with pytest.raises(VerifyFailed, match="signature"):
        verify(clip, path, key.public_key())


def test_a_node_not_answering_the_site_is_named_in_gaps(tmp_path: Path) -> None:
    request = ExportRequest("site", "cam", T0 - 2_000_000, T0 + 4_000_000, "srv")
    manifest = build_export(request, _FakeSource(["rec-9"]), Ed25519PrivateKey.generate(),
                            tmp_path / "clip.mp4", Progress())
    assert manifest["nodes_not_answering"] == ["rec-9"]
    gaps = manifest["gaps"]
    assert [g["cause"] for g in gaps] == ["node_not_answering", "node_unreachable"]
    assert "rec-9" in gaps[0]["detail"]


class _MovedSource(_FakeSource):
    """Segment 3 is gone when fetched (re-insert moved it); asked again, the site serves its
    time from segment 4 on the server."""

    def __init__(self) -> None:
        super().__init__([])
        self.calls = 0

    def playlist(self, camera: str, from_us: int, to_us: int) -> PlaylistPage:
        self.calls += 1
        page = super().playlist(camera, from_us, to_us)
        if self.calls == 1:
            return page
        data, init = _fmp4(shade=200)
        url = "http://srv/api/v1/segments/4/file"
        self.files[url] = (data, init)
        text = "\n".join(["#EXTM3U", f'#EXT-X-MAP:URI="{url}",BYTERANGE="{init}@0"',
                          f"#EXT-X-PROGRAM-DATE-TIME:{format_wall_us(T0 + 2_000_000)}",
                          "#EXTINF:1.000,", f"#EXT-X-BYTERANGE:{len(data) - init}@{init}", url])
        return PlaylistPage(parse_vod(text, "http://srv/"), [], None)


def test_a_piece_gone_since_the_playlist_is_fetched_where_it_is_now(tmp_path: Path) -> None:
    source = _MovedSource()
    request = ExportRequest("site", "cam", T0, T0 + 3_000_000, "srv")
    manifest = build_export(request, source, Ed25519PrivateKey.generate(),
                            tmp_path / "clip.mp4", Progress())
    assert [p["segment_id"] for p in manifest["pieces"]] == [1, 2, 4]
    assert manifest["gaps"] == []
    assert manifest["clip"]["frame_count"] == 75


def test_nothing_to_export_is_an_error(tmp_path: Path) -> None:
    source = _FakeSource([])
    source.files = {}
    request = ExportRequest("site", "cam", T0, T0 + 4_000_000, "srv")
    with pytest.raises(ExportFailed, match="no video of camera 'cam'"):
        build_export(request, source, Ed25519PrivateKey.generate(), tmp_path / "c.mp4",
                     Progress())
    assert not (tmp_path / "c.mp4").exists()
