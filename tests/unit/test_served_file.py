"""The served form of a cut segment (hotspare.store.served_file): the stored init section, whole
fragments, and a fragment cut inside rewritten; a real demuxer and decoder read the result."""

from __future__ import annotations

import io
from pathlib import Path

import av
import pytest

from hotspare.store import mp4
from hotspare.store.models import SegmentInfo
from hotspare.store.served_file import served_file
from hotspare.store.synth import write_segment

T0 = 1_764_000_000_000_000
FPS = 25
FRAME_US = 1_000_000 // FPS
START_90K = 900_000


def _segment(path: Path, frames: int) -> SegmentInfo:
    info = mp4.parse_path(path)
    return SegmentInfo(
        segment_id=1, camera_id="cam", run_id="r1", seq=0, recorded_by="n", recorded_as="n",
        start_wall_us=T0, start_media_90k=info.start_media_90k, duration_90k=info.duration_90k,
        frame_count=frames, head_skip_frames=0, bytes=path.stat().st_size,
        init_bytes=info.init_bytes, sha256="0" * 64, relpath="x.mp4", reinsert_pending=False,
        imported_from=None)


def _packets(data: bytes) -> list[tuple[int, bool, bytes]]:
    with av.open(io.BytesIO(data), format="mp4") as c:
        return [(int(p.pts or 0), p.is_keyframe, bytes(p))
                for p in c.demux(c.streams.video[0]) if p.size]


def _decoded(data: bytes) -> int:
    with av.open(io.BytesIO(data), format="mp4") as c:
        return sum(1 for _ in c.decode(video=0))


@pytest.mark.parametrize("keep", [1, 3, 5, 7, 9])
def test_cut_keeps_the_first_frames_byte_for_byte(tmp_path: Path, keep: int) -> None:
    path = tmp_path / "seg.mp4"
    write_segment(path, START_90K, 10, gop=5, fps=FPS)  # fragments of 5 frames: 0-4, 5-9
    segment = _segment(path, 10)
    raw = path.read_bytes()
    served = served_file(path, segment, T0 + keep * FRAME_US)
    assert served.frames == keep
    assert served.init == raw[: segment.init_bytes]  # an EXT-X-MAP may point at the stored file
    assert served.duration_90k == keep * 90_000 // FPS
    info = mp4.parse_bytes(served.data)
    assert info.complete and info.frame_count == keep
    assert info.start_media_90k == START_90K  # media time kept: players place it right
    assert _packets(served.data) == _packets(raw)[:keep]
    assert _decoded(served.data) == keep
    assert _decoded(raw[: segment.init_bytes] + served.media) == keep


def test_cut_at_the_end_serves_the_whole_file(tmp_path: Path) -> None:
    path = tmp_path / "seg.mp4"
    write_segment(path, START_90K, 10, gop=5, fps=FPS)
    segment = _segment(path, 10)
    served = served_file(path, segment, T0 + 20 * FRAME_US)
    assert served.frames == 10 and served.data == path.read_bytes()


def test_a_cut_within_half_a_frame_of_a_frame_start_excludes_that_frame(tmp_path: Path) -> None:
    path = tmp_path / "seg.mp4"
    write_segment(path, START_90K, 10, gop=5, fps=FPS)
    segment = _segment(path, 10)
    assert served_file(path, segment, T0 + 6 * FRAME_US - 30).frames == 6
    assert served_file(path, segment, T0 + 6 * FRAME_US + 30).frames == 6


def test_nothing_to_serve_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "seg.mp4"
    write_segment(path, START_90K, 10, gop=5, fps=FPS)
    with pytest.raises(mp4.Mp4Error, match="nothing to serve"):
        served_file(path, _segment(path, 10), T0 + 10)


def test_one_fragment_per_frame_cuts_between_fragments(tmp_path: Path) -> None:
    path = tmp_path / "seg.mp4"
    write_segment(path, START_90K, 10, gop=5, fps=FPS,
                  movflags="frag_every_frame+empty_moov+default_base_moof+frag_discont+delay_moov")
    segment = _segment(path, 10)
    assert len(mp4.parse_path(path).fragments) == 10
    served = served_file(path, segment, T0 + 4 * FRAME_US)
    info = mp4.parse_bytes(served.data)
    assert served.data == path.read_bytes()[: info.fragments[-1].end]
    assert _decoded(served.data) == 4


@pytest.mark.parametrize("fragment_seconds", [0.0, 0.2])
def test_the_recorders_own_files_cut_at_every_frame(tmp_path: Path,
                                                    fragment_seconds: float) -> None:
    """What the recorder writes, one fragment per frame or time-based fragments (several frames
    each, cut where FFmpeg chooses): every cut keeps exactly the frames before it."""
    from hotspare.recorder.segment_writer import SegmentWriter
    from tests.support.clips import make_h264_file

    clip = make_h264_file(tmp_path / "clip.mp4", frames=20, gop=10)
    path = tmp_path / "seg.mp4"
    with av.open(str(clip)) as src:
        stream = src.streams.video[0]
        packets = [p for p in src.demux(stream) if p.size][:15]
        writer = SegmentWriter(path, stream, START_90K, fragment_seconds=fragment_seconds)
        for i, packet in enumerate(packets):
            writer.write(packet, START_90K + i * 3600, START_90K + i * 3600)
        writer.close(START_90K + 15 * 3600)
    segment = _segment(path, 15)
    raw = _packets(path.read_bytes())
    assert len(raw) == 15
    fragments = len(mp4.parse_path(path).fragments)
    assert fragments == 15 if fragment_seconds == 0 else fragments <= 5  # cuts inside fragments
    for keep in range(1, 15):
        served = served_file(path, segment, T0 + keep * FRAME_US)
        assert _packets(served.data) == raw[:keep], keep
    assert _decoded(served_file(path, segment, T0 + 12 * FRAME_US).data) == 12
