"""The recorder against the streams real cameras send: H.265, B-frames, several slices, audio.

Same frame-exact check as tests/e2e/test_recorder_rtsp.py (every delivered frame stored once,
segments start on keyframes, camera-anchored wall time on the capture time), for each kind of
stream; all cameras of a test in one simulator and one recorder.
"""

from __future__ import annotations

import time
from pathlib import Path

import av
import pytest

from hotspare.config.models import CameraConfig, RecordingSettings
from hotspare.recorder import CameraState, Recorder
from hotspare.store.models import WallSource
from hotspare.store.segment_store import SegmentStore
from tests.support.audio import AudioReport, read_audio
from tests.support.camsim import CameraSim, now_us
from tests.support.frames import all_segments, store_frames

FRAME_US = 40_000  # 25 fps
WALL_EXACT_US = 1_000
"""RTCP gives the sim's capture time to within µs (docs/camera-sim.md); a recorder that keeps
media time exact stores every frame within this of its capture time, whatever the codec."""


def record_and_check(
    tmp_path: Path, streams: dict[str, str], *, camera_timed_only: bool = False,
    silent: frozenset[str] = frozenset(),
) -> dict[str, float]:
    """Record every camera for 10 s; assert the frame-exact invariants; return the largest wall
    time error per camera (µs). `camera_timed_only`: check wall times only where the run is timed
    by the camera (RTCP); a run left on the local estimate is reported, not failed. `silent`:
    cameras recorded with `record_audio = false` (video only, their wall time checked as with
    `camera_timed_only`); every other camera's audio, if it sends any, must be in its files."""
    worst: dict[str, float] = {}
    with CameraSim(tmp_path / "sim", list(streams), streams=streams, clip_seconds=2) as sim:
        store = SegmentStore.open(tmp_path / "store", "server-a")
        cameras = [CameraConfig(id=c, url=sim.rtsp_url(c), record_audio=c not in silent)
                   for c in sim.camera_ids]
        recorder = Recorder("server-a", cameras, store, RecordingSettings(segment_seconds=2.0))
        recorder.start()
        time.sleep(10.0)
        health = recorder.health()
        stop_us = now_us()
        recorder.stop()
        for c in sim.camera_ids:
            sim.wait_logged(c, stop_us)
        try:
            for camera_id, spec in streams.items():
                assert health[camera_id].state is CameraState.RECORDING, health[camera_id]
                assert health[camera_id].consecutive_failures == 0, health[camera_id]
                runs = store.list_runs(camera_id, 0, 2**62)
                assert len(runs) == 1, (camera_id, runs)
                local_ok = camera_timed_only or camera_id in silent
                if local_ok and runs[0].wall_source is not WallSource.CAMERA:
                    print(f"\n{camera_id}: run timed by {runs[0].wall_source.value} clock")
                    frames = store_frames(store, camera_id, frame_us=2**62)
                else:
                    assert runs[0].wall_source is WallSource.CAMERA, (camera_id, runs)
                    frames = store_frames(store, camera_id, frame_us=FRAME_US)
                numbers = [f.tag.frame_no for f in frames]
                assert len(numbers) >= 150, (camera_id, len(numbers))  # 6 s of the 10 at least
                delivered = {
                    r.frame
                    for r in sim.frames(camera_id)
                    if r.delivered and numbers[0] <= r.frame <= numbers[-1]
                }
                missing = sorted(delivered - set(numbers))
                assert not missing, f"{camera_id}: delivered but not stored: {missing[:20]}"
                files = [store.segment_file(s) for s in all_segments(store, camera_id)]
                with av.open(str(files[0])) as mp4:
                    codec = mp4.streams.video[0].codec_context.name
                    has_audio = bool(mp4.streams.audio)
                sends_audio = "audio=" in spec and camera_id not in silent
                assert has_audio == sends_audio, (camera_id, has_audio)
                if sends_audio:
                    _check_audio(camera_id, spec, files)
                assert codec == ("hevc" if "h265" in spec else "h264"), camera_id
                if runs[0].wall_source is WallSource.CAMERA:
                    worst[camera_id] = max(abs(f.wall_us - f.tag.capture_wall_us) for f in frames)
        finally:
            store.close()
    print(f"\nlargest |stored wall time - capture time|, µs: {worst}")
    return worst


@pytest.mark.slow
def test_h265_and_multi_slice_cameras_record_every_frame_once_exactly_timed(
    tmp_path: Path,
) -> None:
    worst = record_and_check(tmp_path, {
        "h265": "codec=h265",
        "h264-slices": "slices=4",
        "h265-slices": "codec=h265,slices=4",
    })  # fmt: skip
    assert len(worst) == 3 and max(worst.values()) <= WALL_EXACT_US, worst


def _check_audio(camera_id: str, spec: str, files: list[Path]) -> None:
    """The camera's audio in its segment files: AAC (G.711 made AAC), over the video's whole
    time, each beep at its keyframe's capture time as a live client hears it (G.711 to the
    sample; the camera's AAC late by its encoder's delay, < 2 AAC frames: docs/camera-sim.md)."""
    report = AudioReport()
    for path in files:
        read_audio(path.read_bytes(), report)
    errors = report.onset_errors_us
    start, end = report.edges_s()
    print(f"\n{camera_id}: audio from {start:+.3f} s to {-end:+.3f} s of the video, largest gap "
          f"{report.largest_gap_s():.3f} s, beep onset - keyframe µs {[round(e) for e in errors]}")
    assert report.codecs == {"aac"} and not report.pieces_without_audio, camera_id
    # The copied AAC starts at most a packet after the first keyframe, also when the packets
    # timed after it arrived before it; the transcoder's grid and held frames allow more.
    start_bound = 1024 / 16_000 + 0.001 if "aac" in spec else 0.26
    assert start <= start_bound and end <= 0.26 and report.largest_gap_s() <= 0.001, \
        (camera_id, start, end)
    assert len(errors) >= 3 and max(errors) - min(errors) <= 2_000, (camera_id, errors)
    if "aac" in spec:
        assert 0 <= min(errors) and max(errors) <= 2 * 1024 / 16_000 * 1e6, (camera_id, errors)
    else:
        assert max(abs(e) for e in errors) <= 5_000, (camera_id, errors)


@pytest.mark.slow
def test_cameras_with_audio_record_it_in_sync_and_every_frame_once(tmp_path: Path) -> None:
    """AAC copied, G.711 µ-law/A-law made AAC, each in the segment files with the video, which
    is still recorded frame by frame and timed by the camera (with both streams set up every
    run got its RTCP sender report). A camera with `record_audio = false` is recorded video
    only; its run's wall time is checked only where RTCP timed it: a client that sets up only
    the video of a camera with audio sometimes gets no sender report from the simulator
    (docs/recorder.md, Audio)."""
    worst = record_and_check(tmp_path, {
        "h264-pcmu": "audio=pcmu",
        "h264-pcma": "audio=pcma",
        "h265-aac": "codec=h265,audio=aac",
        "h264-aac-off": "audio=aac",
    }, silent=frozenset({"h264-aac-off"}))  # fmt: skip
    assert {"h264-pcmu", "h264-pcma", "h265-aac"} <= set(worst), worst
    assert max(worst.values()) <= WALL_EXACT_US, worst


def _decoded_and_demuxed_pts(path: Path) -> tuple[list[int], list[int]]:
    """Presentation times of the frames a player decodes from one segment file, and of its
    packets (each file alone: a player starts at any segment)."""
    with av.open(str(path)) as mp4:
        decoded = [f.pts for f in mp4.decode(video=0) if f.pts is not None]
    with av.open(str(path)) as mp4:
        demuxed = [p.pts for p in mp4.demux(video=0) if p.size and p.pts is not None]
    return decoded, sorted(demuxed)


@pytest.mark.slow
def test_b_frame_cameras_record_every_frame_once_exactly_timed(tmp_path: Path) -> None:
    """Every frame at its capture time (the fMP4's edit list takes the reorder delay back) and
    every frame decodable; a run may start on a keyframe FFmpeg gives without pts or dts."""
    worst = record_and_check(tmp_path, {
        "h264-bframes": "bframes=2",
        "h265-bframes": "codec=h265,bframes=2",
    })  # fmt: skip
    assert len(worst) == 2 and max(worst.values()) <= WALL_EXACT_US, worst
    store = SegmentStore.open(tmp_path / "store", "server-a")
    try:
        for camera_id in worst:
            for segment in all_segments(store, camera_id):
                decoded, demuxed = _decoded_and_demuxed_pts(store.segment_file(segment))
                assert decoded == demuxed, (camera_id, segment.relpath, decoded, demuxed)
                assert len(decoded) == segment.frame_count, (camera_id, segment.relpath)
    finally:
        store.close()
