"""The recorder against real RTSP: simulated cameras in their own process, a real segment store.

Every frame carries an SEI tag (camera id, frame number, capture wall time), so these tests name
each frame the camera delivered and check it is stored exactly once, where and when it belongs.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import av
import pytest

from hotspare.config.models import CameraConfig, RecordingSettings
from hotspare.recorder import CameraState, Recorder
from hotspare.store.models import SegmentInfo, WallSource
from hotspare.store.segment_store import SegmentStore
from tests.support.camsim import CameraSim, now_us
from tests.support.frames import StoredFrame, all_segments, stored_frames

FRAME_US = 40_000  # 25 fps
GOP_US = 1_000_000


def check_camera(store: SegmentStore, sim: CameraSim, camera_id: str) -> list[StoredFrame]:
    """Assert the per-camera invariants; return the frames in stored order."""
    frames: list[StoredFrame] = []
    for segment in all_segments(store, camera_id):
        got = stored_frames(store, segment)
        assert got, f"segment {segment.relpath} is empty"
        assert got[0].keyframe, f"segment {segment.relpath} does not start on a keyframe"
        assert segment.frame_count == len(got)
        frames.extend(got)
    assert frames, f"{camera_id}: nothing recorded"
    counts = Counter(f.tag.frame_no for f in frames)
    twice = [n for n, c in counts.items() if c > 1]
    assert not twice, f"{camera_id}: frames stored twice: {twice[:10]}"
    assert all(f.tag.camera_id == camera_id for f in frames)
    for f in frames:
        # Camera-anchored wall time (RTCP) must match the capture time to within one frame.
        assert abs(f.wall_us - f.tag.capture_wall_us) <= FRAME_US, (camera_id, f)
    return frames


def delivered_in(sim: CameraSim, camera_id: str, first: int, last: int) -> set[int]:
    return {r.frame for r in sim.frames(camera_id) if r.delivered and first <= r.frame <= last}


def open_store(tmp_path: Path) -> SegmentStore:
    return SegmentStore.open(tmp_path / "store", "server-a")


@pytest.mark.slow
def test_three_cameras_every_delivered_frame_once_with_true_wall_time(tmp_path: Path) -> None:
    with CameraSim(tmp_path / "sim", cameras=3) as sim:
        store = open_store(tmp_path)
        cameras = [CameraConfig(id=c, url=sim.rtsp_url(c)) for c in sim.camera_ids]
        committed: list[SegmentInfo] = []
        recorder = Recorder(
            "server-a", cameras, store, RecordingSettings(segment_seconds=2.0), committed.append
        )
        started_us = now_us()
        recorder.start()
        # 10 s: five 2 s segments per camera. Every check below is per frame or per segment
        # boundary, none grows with the length (18 s made it the module's slowest test).
        time.sleep(10.0)
        health = recorder.health()
        assert {h.state for h in health.values()} == {CameraState.RECORDING}, health
        stop_us = now_us()
        recorder.stop()
        for c in sim.camera_ids:
            sim.wait_logged(c, stop_us)
        try:
            for camera_id in sim.camera_ids:
                frames = check_camera(store, sim, camera_id)
                numbers = [f.tag.frame_no for f in frames]
                first, last = numbers[0], numbers[-1]
                # Recording starts with the first keyframe after connect: at most a GOP late.
                assert frames[0].tag.capture_wall_us - started_us <= GOP_US + 500_000
                # ...and runs until stop(), less what was in flight.
                assert stop_us - frames[-1].tag.capture_wall_us <= 500_000
                missing = delivered_in(sim, camera_id, first, last) - set(numbers)
                assert not missing, f"{camera_id}: delivered but not stored: {sorted(missing)[:20]}"
                runs = store.list_runs(camera_id, 0, 2**62)
                assert len(runs) == 1
                assert runs[0].wall_source is WallSource.CAMERA
                assert runs[0].end_reason == "stopped"
            assert len(committed) == sum(len(all_segments(store, c)) for c in sim.camera_ids)
        finally:
            store.close()


def test_camera_offline_five_seconds_gives_two_runs_and_one_gap(tmp_path: Path) -> None:
    with CameraSim(tmp_path / "sim", cameras=1) as sim:
        camera_id = sim.camera_ids[0]
        store = open_store(tmp_path)
        settings = RecordingSettings(
            segment_seconds=2.0,
            reconnect_initial_seconds=0.25,
            reconnect_max_seconds=0.5,
            open_timeout_seconds=2.0,
        )
        recorder = Recorder(
            "server-a", [CameraConfig(id=camera_id, url=sim.rtsp_url(camera_id))], store, settings
        )
        recorder.start()
        time.sleep(5.0)
        sim.offline(camera_id, seconds=5.0)
        time.sleep(1.0)
        during = recorder.health()[camera_id]
        assert during.state is CameraState.FAILING
        assert during.error and camera_id in during.error
        time.sleep(8.0)
        assert recorder.health()[camera_id].state is CameraState.RECORDING
        recorder.stop()
        try:
            frames = check_camera(store, sim, camera_id)
            runs = sorted(store.list_runs(camera_id, 0, 2**62), key=lambda r: r.started_wall_us)
            assert len(runs) == 2, runs
            assert runs[0].end_reason not in (None, "stopped")  # dropped by the camera
            assert runs[1].end_reason == "stopped"
            segments = all_segments(store, camera_id)
            first_run = [s for s in segments if s.run_id == runs[0].run_id]
            second_run = [s for s in segments if s.run_id == runs[1].run_id]
            gap_us = second_run[0].start_wall_us - first_run[-1].end_wall_us
            # Offline 5 s, then up to one backoff step and one GOP until the first keyframe.
            assert 5_000_000 - GOP_US <= gap_us <= 5_000_000 + GOP_US + 500_000 + 500_000, gap_us
            # The stored gap is the camera's: it matches the frames' own capture times.
            by_run = {r.run_id: [] for r in runs}  # type: dict[str, list[int]]
            for s in segments:
                by_run[s.run_id].extend(f.tag.frame_no for f in stored_frames(store, s))
            last_a, first_b = by_run[runs[0].run_id][-1], by_run[runs[1].run_id][0]
            frame_gap_us = (first_b - last_a - 1) * FRAME_US
            assert abs(gap_us - frame_gap_us) <= FRAME_US
            # Nothing delivered inside either run is missing.
            for numbers in by_run.values():
                missing = delivered_in(sim, camera_id, numbers[0], numbers[-1]) - set(numbers)
                assert not missing, sorted(missing)[:20]
            assert len(frames) == sum(len(v) for v in by_run.values())
        finally:
            store.close()


_CHILD = """
import sys, threading
from pathlib import Path
from hotspare.config.models import CameraConfig, RecordingSettings
from hotspare.recorder import Recorder
from hotspare.store.segment_store import SegmentStore
store = SegmentStore.open(Path(sys.argv[1]), "server-a")
cams = [CameraConfig(id=sys.argv[2], url=sys.argv[3])]
Recorder("server-a", cams, store, RecordingSettings(segment_seconds=4.0)).start()
print("RECORDING", flush=True)
threading.Event().wait()
"""


def test_sigkill_mid_segment_loses_only_the_frames_in_flight(tmp_path: Path) -> None:
    """The open segment's prefix survives a SIGKILL and reconcile indexes it."""
    with CameraSim(tmp_path / "sim", cameras=1) as sim:
        camera_id = sim.camera_ids[0]
        child = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(tmp_path / "store"), camera_id,
             sim.rtsp_url(camera_id)],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            assert child.stdout is not None and child.stdout.readline().startswith("RECORDING")
            time.sleep(6.0)  # 4 s segments: this is 1-2 s into the second one
        finally:
            kill_us = now_us()
            child.kill()
            child.wait(10)
        sim.wait_logged(camera_id, kill_us)
    store = open_store(tmp_path)  # reconcile salvages the open segment
    try:
        frames = check_camera(store, sim, camera_id)
        runs = store.list_runs(camera_id, 0, 2**62)
        assert len(runs) == 1 and runs[0].end_reason is not None  # closed by reconcile
        assert len(all_segments(store, camera_id)) == 2
        numbers = {f.tag.frame_no for f in frames}
        first = min(numbers)
        delivered = {
            r.frame: r.wall_us for r in sim.frames(camera_id) if r.delivered and r.frame >= first
        }
        # Every frame captured more than 100 ms (2.5 frames) before the kill is on disk.
        lost = sorted(f for f, w in delivered.items() if w < kill_us - 100_000 and f not in numbers)
        assert not lost, lost
    finally:
        store.close()


@pytest.mark.slow
def test_joining_a_stream_another_client_plays_times_the_first_frame_exactly(
    tmp_path: Path,
) -> None:
    """The original server coming back while the spare still records the camera joins a stream
    that is already playing. FFmpeg then hands over a first packet without pts whose true stream
    time is one frame after stream time 0; taken as 0, the run was anchored one frame early and
    re-insert trimmed the spare's last frame before the restart. Every frame a keyframe (GOP 1),
    so every connection starts on that first packet."""
    frame_us = 100_000
    with CameraSim(tmp_path / "sim", cameras=1, width=320, height=240, fps=10, gop="1") as sim:
        camera_id = sim.camera_ids[0]
        url = sim.rtsp_url(camera_id)
        done = threading.Event()

        def other_client() -> None:  # the spare, keeping the camera's shared stream playing
            with av.open(url, options={"rtsp_transport": "tcp", "timeout": "5000000"},
                         timeout=10.0) as c:
                for _ in c.demux(c.streams.video[0]):
                    if done.is_set():
                        return

        thread = threading.Thread(target=other_client, daemon=True)
        thread.start()
        sim.wait_clients(camera_id, 1)
        time.sleep(0.5)
        store = open_store(tmp_path)
        try:
            for _ in range(3):  # three joins
                recorder = Recorder(
                    "server-a",
                    [CameraConfig(id=camera_id, url=url)],
                    store,
                    RecordingSettings(segment_seconds=1.0),
                )
                recorder.start()
                time.sleep(4.0)  # RTCP arrives 2-3 s after connect: the run ends camera-timed
                recorder.stop()
            runs = store.list_runs(camera_id, 0, 2**62)
            assert len(runs) == 3 and {r.wall_source for r in runs} == {WallSource.CAMERA}
            for run in runs:
                segments = [s for s in all_segments(store, camera_id) if s.run_id == run.run_id]
                first = stored_frames(store, segments[0])
                # The run's first frame is exactly where the camera says it was captured.
                assert abs(segments[0].start_wall_us - first[0].tag.capture_wall_us) <= 1_000, (
                    run.run_id,
                    segments[0].start_wall_us,
                    first[0].tag,
                )
                for segment in segments:
                    frames = stored_frames(store, segment)
                    assert segment.duration_90k == len(frames) * frame_us * 9 // 100, segment
                    for f in frames:
                        assert abs(f.wall_us - f.tag.capture_wall_us) <= 1_000, (segment, f)
        finally:
            done.set()
            store.close()
        thread.join(10)
