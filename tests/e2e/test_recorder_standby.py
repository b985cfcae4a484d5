"""Hot standby at the recorder level, against real RTSP: a second recorder holds a pre-buffer and,
activated with the first one's commit watermark, writes every frame the first did not commit.

The first recorder stops (its end stands for a crash); the watermark handed over is deliberately
older than its last commit, as a server's published watermark lags its commits. After importing
the standby's segments into the first store with the re-insert importer, each camera's frames must
be contiguous and stored once.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import pytest

from hotspare.config.models import CameraConfig, RecordingSettings
from hotspare.recorder import CameraState, Recorder
from hotspare.recorder.prebuffer import StandbySettings
from hotspare.recorder.worker import CameraWorker
from hotspare.store.importer import ImportMeta
from hotspare.store.models import SegmentInfo
from hotspare.store.segment_store import SegmentStore
from tests.support.camsim import CameraSim, now_us
from tests.support.frames import store_frames

pytestmark = pytest.mark.slow

FRAME_US = 40_000


@pytest.mark.parametrize("spill", [False, True], ids=["memory", "spilled"])
def test_standby_activated_from_a_lagging_watermark_fills_the_gap_exactly(tmp_path: Path,
                                                                          spill: bool) -> None:
    """`spilled`: a memory cap far below the horizon (~0.2 s of this 1 Mbit/s stream), so most of
    the pre-buffer goes through spill files and back."""
    with CameraSim(tmp_path / "sim", cameras=2) as sim:
        settings = RecordingSettings(segment_seconds=1.0)
        cameras = [CameraConfig(id=c, url=sim.rtsp_url(c)) for c in sim.camera_ids]
        original = SegmentStore.open(tmp_path / "original", "server-a")
        buffer = SegmentStore.open(tmp_path / "buffer", "spare-1")
        committed: list[SegmentInfo] = []
        recorder = Recorder("server-a", cameras, original, settings, committed.append)
        standby = {
            c.id: CameraWorker(c, "server-a", buffer, settings, standby=StandbySettings(
                horizon_s=6.0, max_bytes=25_000 if spill else 8 << 20,
                max_spill_bytes=8 << 20 if spill else 0, spill_dir=tmp_path / "spill" / c.id))
            for c in cameras}
        try:
            recorder.start()
            for worker in standby.values():
                worker.start()
            time.sleep(5.0)
            assert {w.health().state for w in standby.values()} == {CameraState.STANDBY}
            assert not buffer.list_segments(cameras[0].id, 0, 2**62), "standby wrote segments"
            seconds = [w.standby_info()[0] for w in standby.values()]
            assert all(s >= 3.0 for s in seconds), seconds
            if spill:
                assert all(list((tmp_path / "spill" / c.id).iterdir()) for c in cameras)
            # The watermark a server would have published a while before it died.
            lagging = {c.id: max(s.end_wall_us for s in committed if s.camera_id == c.id)
                       for c in cameras}
            time.sleep(1.5)
            recorder.stop()  # "crash": everything after `lagging` is owed to the standby
            taken_over = Recorder("server-a", cameras, buffer, settings, standby=standby,
                                  watermarks=lagging)
            taken_over.start()
            time.sleep(3.0)
            for cid, worker in standby.items():
                act = worker.activation
                assert act is not None and act.covered, (cid, act)
                assert act.first_wall_us is not None and act.first_wall_us <= lagging[cid]
                assert worker.health().state is CameraState.RECORDING
                if spill:
                    assert not list((tmp_path / "spill" / cid).iterdir()), "spill files left"
            end_us = now_us()
            taken_over.stop()
            for c in sim.camera_ids:
                sim.wait_logged(c, end_us)
            for camera in cameras:
                segments = buffer.list_segments(camera.id, 0, 2**62)
                assert segments, camera.id
                for seg in sorted(segments, key=lambda s: s.start_wall_us):
                    run = buffer.get_run(seg.run_id)
                    assert run is not None
                    original.import_segment(ImportMeta.from_segment(seg, run),
                                            buffer.segment_file(seg), imported_from="spare-1")
                frames = store_frames(original, camera.id, frame_us=FRAME_US)
                numbers = [f.tag.frame_no for f in frames]
                gaps = [(a, b) for a, b in itertools.pairwise(numbers) if b != a + 1]
                assert not gaps, f"{camera.id}: frames missing between {gaps}"
                delivered = {r.frame for r in sim.frames(camera.id)
                             if r.delivered and numbers[0] <= r.frame <= numbers[-1]}
                assert delivered <= set(numbers), sorted(delivered - set(numbers))[:10]
                assert frames[-1].tag.capture_wall_us >= end_us - 1_000_000
        finally:
            recorder.stop()
            for worker in standby.values():
                worker.request_stop()
            for worker in standby.values():
                worker.join(10.0)
            original.close()
            buffer.close()
