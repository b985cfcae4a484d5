"""A camera that restarts its stream inside a session, and one that changes its resolution, fed to
the recorder from local Annex-B files (the same PyAV packets RTSP gives; the e2e tests in
tests/e2e/test_camera_faults.py use the simulated cameras)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import pytest

from hotspare.recorder.drift import DriftTracker
from hotspare.recorder.parameter_sets import annexb, parameter_sets, picture_size
from hotspare.recorder.worker import STOPPED, _Run
from hotspare.store import mp4
from hotspare.store.models import WallSource
from tests.support.clips import make_h264_file
from tests.unit.test_recorder_segments import FakeStore, _worker

FRAME_90K = 3_600  # 25 fps


def _annexb_clip(path: Path, width: int, height: int, frames: int = 40, gop: int = 10) -> Path:
    """Raw H.264 (Annex-B, SPS/PPS before every IDR), as a camera sends it over RTP."""
    return make_h264_file(path, frames, gop, width=width, height=height, annexb=True)


def _packets(container: av.container.InputContainer) -> list[av.packet.Packet]:
    stream = container.streams.video[0]
    out = [p for p in container.demux(stream) if p.size]
    for i, packet in enumerate(out):  # the raw demuxer's times, as RTP's 90 kHz ones
        packet.pts = packet.dts = i * FRAME_90K
        packet.time_base = Fraction(1, 90_000)
    return out


@pytest.mark.parametrize("jump_s", [-3600.0, -0.8, 40_000.0])
def test_a_stream_restarted_inside_the_session_becomes_a_new_run(
        tmp_path: Path, jump_s: float) -> None:
    """Timestamps jump (back, or far forward) at a keyframe: the run ends at its last frame and a
    new one begins at that keyframe on the same connection; no segment spans the jump."""
    clip = _annexb_clip(tmp_path / "a.h264", 64, 48)
    store = FakeStore(tmp_path / "store")
    worker = _worker(store, segment_seconds=10.0)
    with av.open(str(clip)) as src:
        src.streams.video[0].time_base = Fraction(1, 90_000)
        run = _Run(worker, src)
        packets = _packets(src)
        jump = round(jump_s * 90_000)
        for i, packet in enumerate(packets):
            if i >= 20:  # the restart: frame 20 is a keyframe
                packet.pts = packet.dts = (packet.pts or 0) + jump
            run.on_packet(packet)
        run.finish(STOPPED)
    worker._committer.close(10)
    begins = [c for c in store.calls if c[0] == "begin"]
    ends = [c for c in store.calls if c[0] == "end"]
    commits = [c for c in store.calls if c[0] == "commit"]
    assert [b[1] for b in begins] == ["run1", "run2"]
    assert all(b[3] is WallSource.LOCAL for b in begins)  # no sender report in a file
    assert "restarted its stream" in str(ends[0][2]) and ends[1][2] == STOPPED
    # run1: frames 0-19, run2: frames 20-39, each starting at media 0, none longer than it holds
    assert [(c[1], c[3], c[4], c[5]) for c in commits] == [
        ("run1", 0, 20 * FRAME_90K, 20), ("run2", 0, 20 * FRAME_90K, 20)]


def test_a_resolution_change_starts_a_segment_whose_init_carries_the_new_sps(
        tmp_path: Path) -> None:
    small = _annexb_clip(tmp_path / "small.h264", 64, 48, frames=20)
    large = _annexb_clip(tmp_path / "large.h264", 128, 96, frames=20)
    store = FakeStore(tmp_path / "store")
    worker = _worker(store, segment_seconds=10.0)
    with av.open(str(small)) as first, av.open(str(large)) as second:
        first.streams.video[0].time_base = Fraction(1, 90_000)
        run = _Run(worker, first)
        packets = _packets(first) + _packets(second)
        for i, packet in enumerate(packets):  # one session: times go on across the change
            packet.pts = packet.dts = i * FRAME_90K
            run.on_packet(packet)
        run.finish(STOPPED)
    worker._committer.close(10)
    commits = [c for c in store.calls if c[0] == "commit"]
    assert [(c[2], c[3], c[5]) for c in commits] == [(0, 0, 20), (1, 20 * FRAME_90K, 20)]
    assert len([c for c in store.calls if c[0] == "begin"]) == 1  # one run, two segments
    sizes = []
    for _, run_id, seq, *_ in commits:
        path = store.segment_path("cam-1", str(run_id), int(seq))  # type: ignore[call-overload]
        assert mp4.parse_path(path).frame_count == 20
        with av.open(str(path)) as segment:
            frames = list(segment.decode(video=0))
            context = segment.streams.video[0].codec_context
            sizes.append(((context.width, context.height), (frames[0].width, frames[-1].width)))
    assert sizes == [((64, 48), (64, 64)), ((128, 96), (128, 128))]


def test_parameter_sets_and_picture_size_of_a_keyframe(tmp_path: Path) -> None:
    clip = _annexb_clip(tmp_path / "c.h264", 320, 180, frames=2)
    with av.open(str(clip)) as src:
        keyframe = bytes(next(p for p in src.demux(video=0) if p.size))
    found = parameter_sets(keyframe, "h264")
    assert [n[0] & 0x1F for n in found] == [7, 8]  # SPS, PPS; the slice after them not taken
    assert picture_size(found, "h264") == (320, 180)  # 192 rows coded, 12 cropped
    assert annexb(found).startswith(b"\x00\x00\x00\x01\x67")
    assert parameter_sets(keyframe, "mjpeg") == ()
    assert picture_size((found[0][:4],), "h264") is None  # truncated: unknown, not a crash


def test_sender_reports_about_another_timeline_leave_the_drift_alone() -> None:
    """After a restart the camera's reports about its old timestamps still come for a while
    (another SSRC, or sent before the restart): only reports near the packet's stream time count."""
    tracker = DriftTracker(Fraction(1, 90_000))
    realtime = 1_000_000_000  # FFmpeg: stream time 0 is at this wall µs (the first report)
    assert tracker.add(1_002_000_000, 500_000 + 180_000, (180_000, realtime))
    # The camera restarted: its RTP time jumped by 3 600 000 000 ticks; a report about it.
    jump = 3_600_000_000
    new_rtp = (500_000 + 180_000 + 900_000 + jump) % 2**32
    assert tracker.add(1_012_000_000, new_rtp, (180_000 + 900_000 + jump - 2**32, realtime))
    assert tracker.drift_us == round(-(jump - 2**32) * 1_000_000 / 90_000)  # the jump undone
    drift = tracker.drift_us
    # A late report about the old timestamps, with a packet of the new ones: ignored.
    assert not tracker.add(1_012_040_000, 500_000 + 180_000 + 903_600,
                           (180_000 + 903_600 + jump - 2**32, realtime))
    assert tracker.drift_us == drift
    assert not tracker.add(1_012_080_000, new_rtp + 3_600, (None, realtime))  # cannot judge


def test_a_report_matches_ffmpegs_forward_unwrapping_of_a_jump_back() -> None:
    """FFmpeg unwrapped a restart's jump of -975 s forward (+46 745 s, measured); the report about
    the new timestamps must still count, and the drift then maps FFmpeg's stream times."""
    tb = Fraction(1, 90_000)
    tracker = DriftTracker(tb)
    realtime = 1_000_000_000
    old_rtp = 4_226_000_000
    assert tracker.add(1_003_000_000, old_rtp, (270_000, realtime))  # 3 s in
    back = -87_805_169  # the camera's new base, 975 s lower
    new_rtp = (old_rtp + 90_000 + back) % 2**32
    ffmpeg_ts = 270_000 + 90_000 + back + 2**32  # 1 s later, unwrapped forward
    assert tracker.add(1_004_000_000, new_rtp, (ffmpeg_ts, realtime))
    wall = realtime + round(ffmpeg_ts * tb * 1_000_000) + tracker.drift_us
    assert wall == 1_004_000_000  # the frame sent with that report, at the report's wall time


def test_parameter_sets_repeated_in_one_access_unit_count_once(tmp_path: Path) -> None:
    """A payloader that sends the sets before every keyframe, in front of the encoder's own,
    repeats them: the same parameters, not a change (an H.265 camera was cut at every GOP)."""
    clip = _annexb_clip(tmp_path / "r.h264", 64, 48, frames=2)
    with av.open(str(clip)) as container:
        keyframe = bytes(_packets(container)[0])
    once = parameter_sets(keyframe, "h264")
    assert len(once) == 2  # SPS, PPS
    assert parameter_sets(annexb(once) + keyframe, "h264") == once
