"""A camera whose RTP clock runs fast: wall times stay within the drift bound (docs/recorder.md,
*Time*) over an unbroken connection, because the recorder re-anchors from later RTCP sender
reports instead of keeping the first one's mapping for the whole connection."""

from __future__ import annotations

import time
from itertools import pairwise
from pathlib import Path

import pytest

from hotspare.config.models import CameraConfig, RecordingSettings
from hotspare.recorder import CameraState, Recorder
from hotspare.recorder.drift import reanchor_threshold_us
from hotspare.store.models import WallSource
from hotspare.store.segment_store import SegmentStore
from hotspare.store.served import Serve, segment_spans
from tests.support.camsim import CameraSim, now_us
from tests.support.frames import all_segments, store_frames

PPM = 3000
"""Far beyond a real camera (50–100 ppm), so that 24 s drift 72 ms, beyond the bound."""
FRAME_US = 40_000
RTCP_INTERVAL_S = 1.0
GOP_S = 1.0
BOUND_US = (reanchor_threshold_us(FRAME_US * 90_000 // 1_000_000)
            + round(PPM * (RTCP_INTERVAL_S + GOP_S)) + 2_000)
"""The documented bound (re-anchor threshold + drift over a report interval and a GOP) plus
2 ms for the sender reports' own rounding."""


@pytest.mark.slow
def test_a_fast_camera_clock_stays_within_the_drift_bound(tmp_path: Path) -> None:
    seconds = 24.0
    assert PPM * seconds > 2 * BOUND_US, "the test must run long enough to show the drift"
    with CameraSim(tmp_path / "sim", ["fast"], streams={"fast": f"clock_ppm={PPM}"},
                   clip_seconds=2) as sim:
        store = SegmentStore.open(tmp_path / "store", "server-a")
        camera = CameraConfig(id="fast", url=sim.rtsp_url("fast"))
        recorder = Recorder("server-a", [camera], store, RecordingSettings(segment_seconds=2.0))
        recorder.start()
        time.sleep(seconds)
        health = recorder.health()["fast"]
        stop_us = now_us()
        recorder.stop()
        sim.wait_logged("fast", stop_us)
        try:
            assert health.state is CameraState.RECORDING and health.consecutive_failures == 0, \
                health
            runs = sorted(store.list_runs("fast", 0, 2**62), key=lambda r: r.started_wall_us)
            print("\nruns:", [(r.run_id, r.end_reason) for r in runs])
            assert all(r.wall_source is WallSource.CAMERA for r in runs), runs
            # One connection, re-anchored along the way (each run ends at a keyframe).
            assert len(runs) >= 3, runs
            assert all("re-anchored" in (r.end_reason or "") for r in runs[:-1]), runs
            frames = store_frames(store, "fast", frame_us=BOUND_US)  # asserts the bound
            numbers = [f.tag.frame_no for f in frames]
            delivered = {r.frame for r in sim.frames("fast")
                         if r.delivered and numbers[0] <= r.frame <= numbers[-1]}
            assert not sorted(delivered - set(numbers)), "a re-anchor lost a frame"
            assert (frames[-1].tag.capture_wall_us - frames[0].tag.capture_wall_us
                    >= (seconds - 4) * 1e6)
            # Wall time never steps back from one frame to the next, across re-anchors too, and
            # playback serves every frame: a new run overlaps the last frame by under half of it.
            assert all(a.wall_us < b.wall_us for a, b in pairwise(frames))
            spans = segment_spans(all_segments(store, "fast"))
            assert all(s.serve is Serve.ALL for s in spans), [s for s in spans
                                                              if s.serve is not Serve.ALL]
            errors = [f.wall_us - f.tag.capture_wall_us for f in frames]
            print(f"stored wall time - capture time: {min(errors)} … {max(errors)} µs "
                  f"(bound {BOUND_US}; without re-anchoring the last frame would be "
                  f"{PPM * (numbers[-1] - numbers[0]) / 25:.0f} µs off)")
        finally:
            store.close()
