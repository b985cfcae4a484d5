"""Segment files with a camera's audio as a second track (docs/recorder.md, Audio): the store
indexes the video alone, fragments holding only audio are carried along, and a served cut drops
the audio after the cut with the frames."""

from __future__ import annotations

import io
from pathlib import Path

import av
import pytest

from hotspare.recorder.segment_writer import FRAGMENT_MOVFLAGS
from hotspare.store import mp4
from hotspare.store.models import SegmentInfo
from hotspare.store.served_file import served_file
from hotspare.store.synth import write_segment

T0 = 1_764_000_000_000_000
FPS = 25
FRAME_90K = 90_000 // FPS
START_90K = 900_000


def _packets(data: bytes) -> tuple[list[int], list[tuple[int, int]]]:
    """(video pts in 90 kHz, audio (pts, duration) in samples) as a demuxer reads them."""
    video: list[int] = []
    audio: list[tuple[int, int]] = []
    with av.open(io.BytesIO(data), format="mp4") as c:
        for p in c.demux():
            if p.size and p.pts is not None:
                if p.stream.type == "video":
                    video.append(int(p.pts))
                else:
                    audio.append((int(p.pts), int(p.duration or 0)))
    return video, audio


def test_fragments_holding_only_audio_are_carried_along(tmp_path: Path) -> None:
    path = tmp_path / "seg.mp4"  # one fragment per packet of either track: some hold only audio
    write_segment(path, START_90K, 10, fps=FPS, audio=True,
                  movflags="frag_every_frame+empty_moov+default_base_moof+frag_discont")
    info = mp4.parse_path(path)
    moofs = path.read_bytes().count(b"moof")
    assert info.complete and info.frame_count == 10 and moofs > len(info.fragments)
    assert info.readable_bytes == path.stat().st_size  # nothing after a frame is dropped


def test_the_recorders_fragments_keep_every_frame_time_with_audio(tmp_path: Path) -> None:
    """FFmpeg's per-frame fragmenter, as the recorder runs it for a camera with audio
    (`min_frag_duration` 1 µs: only a track already holding a sample starts a fragment)."""
    path = tmp_path / "seg.mp4"
    write_segment(path, START_90K, 25, fps=FPS, audio=True, movflags=FRAGMENT_MOVFLAGS,
                  options={"min_frag_duration": "1"})
    info = mp4.parse_path(path)
    assert info.frame_times_90k() == [(START_90K + i * FRAME_90K, FRAME_90K) for i in range(25)]
    video, audio = _packets(path.read_bytes())
    assert video == [START_90K + i * FRAME_90K for i in range(25)]
    assert audio and audio[0][0] == START_90K * 8000 // 90_000


@pytest.mark.parametrize("keep", [3, 7])
def test_a_served_cut_drops_the_audio_after_the_cut(tmp_path: Path, keep: int) -> None:
    path = tmp_path / "seg.mp4"
    write_segment(path, START_90K, 10, gop=5, fps=FPS, audio=True)  # 2 fragments, both tracks
    info = mp4.parse_path(path)
    segment = SegmentInfo(
        segment_id=1, camera_id="cam", run_id="r1", seq=0, recorded_by="n", recorded_as="n",
        start_wall_us=T0, start_media_90k=info.start_media_90k, duration_90k=info.duration_90k,
        frame_count=10, head_skip_frames=0, bytes=path.stat().st_size,
        init_bytes=info.init_bytes, sha256="0" * 64, relpath="x.mp4", reinsert_pending=False,
        imported_from=None)
    raw_video, raw_audio = _packets(path.read_bytes())
    assert raw_audio, "the synthetic segment has no audio"
    served = served_file(path, segment, T0 + keep * 1_000_000 // FPS)
    video, audio = _packets(served.data)
    assert served.frames == keep and video == raw_video[:keep]
    cut_samples = (START_90K + keep * FRAME_90K) * 8000 // 90_000
    assert all(pts + duration <= cut_samples for pts, duration in audio), (audio, cut_samples)
    assert audio == [a for a in raw_audio if a in audio]  # only whole packets, none rewritten
    if keep > 5:  # the first fragment is served whole, its audio with it
        assert audio, "the audio of the fragment before the cut is gone"
    with av.open(io.BytesIO(served.data), format="mp4") as c:
        assert sum(1 for _ in c.decode(video=0)) == keep
