"""Opening a camera probes no more than its first frame, and still learns what the recorder needs.

FFmpeg's stream probe (`avformat_find_stream_info`, inside `av.open`) used to read an RTSP
camera's stream up to its 32 KB cap, several frames, because it waits for a first timestamp
that an RTSP demuxer's first packet lacks (`max_ts_probe`, recorder/source.py). That delayed
every open, e.g. each of the 64 sessions a spare opens at a takeover's claim
(bench/README.md, *Session open*). Ending the probe any earlier (a smaller cap) would lose the
video's parameters behind a first audio packet: whether it has B-frames decides how the
recorder times its first packets.
"""

from __future__ import annotations

from pathlib import Path

import av.logging

from hotspare.camerasim.launcher import CameraSim
from hotspare.config.models import CameraConfig, RecordingSettings
from hotspare.recorder.health import CameraState
from hotspare.recorder.rtp_loss import enable_ffmpeg_log
from hotspare.recorder.source import CameraSource
from hotspare.recorder.worker import CameraWorker
from hotspare.store.segment_store import SegmentStore
from tests.support.camsim import now_us
from tests.support.site import wait_for

STREAMS = {"video-only": "", "bframes-aac": "bframes=2,audio=aac"}


def test_the_probe_ends_at_the_first_frame_with_every_parameter_known(tmp_path: Path) -> None:
    with CameraSim(tmp_path / "sim", list(STREAMS), streams=STREAMS, width=640, height=360,
                   clip_seconds=2) as sim:
        enable_ffmpeg_log()
        for camera_id in sim.camera_ids:
            camera = CameraConfig(id=camera_id, url=sim.rtsp_url(camera_id))
            source = CameraSource.from_config(camera)
            av.logging.set_level(av.logging.DEBUG)  # the probe says why it stopped at DEBUG only
            try:
                with av.logging.Capture(local=True) as logs:
                    container = source.open(10.0)
            finally:
                av.logging.set_level(av.logging.WARNING)  # as `enable_ffmpeg_log` left it
            try:
                said = [message.strip() for _, _, message in logs]
                # Pictures the probe decoded, one slice each from this simulator's encoder.
                slices = [m for m in said
                          if m.startswith(("nal_unit_type: 5(", "nal_unit_type: 1("))]
                assert len(slices) == 1, (camera_id, slices)
                if camera_id == "video-only":
                    assert "All info found" in said, (camera_id, said[-12:])
                # With audio, "All info found" also needs an audio packet: when the first
                # keyframe alone fills `probesize` before one arrives, the probe ends at the
                # cap instead, as soon and after the same single picture (2 in 80 opens here).
                video = container.streams.video[0].codec_context
                assert (video.width, video.height) == (640, 360), camera_id
                assert video.has_b_frames == (camera_id == "bframes-aac"), camera_id
                if camera_id == "bframes-aac":
                    (audio,) = container.streams.audio
                    assert audio.codec_context.sample_rate > 0
            finally:
                container.close()


def test_a_worker_times_its_session_open_and_first_frames(tmp_path: Path) -> None:
    """What a takeover's `recording` event reports per camera opened at the claim
    (`failover.early_sessions.session_steps`): the steps in order, the first keyframe's time
    set before the camera shows as recording (a reader that waits for that sees it)."""
    with CameraSim(tmp_path / "sim", ["cam"], width=320, height=240, clip_seconds=2) as sim:
        store = SegmentStore.open(tmp_path / "store", "server-a")
        worker = CameraWorker(CameraConfig(id="cam", url=sim.rtsp_url("cam")), "server-a",
                              store, RecordingSettings(segment_seconds=2.0))
        before = now_us()
        worker.start()
        try:
            wait_for("camera recording",
                     lambda: worker.health().state is CameraState.RECORDING, 20)
            steps = worker.session_steps
            assert steps is not None and steps.first_keyframe_us is not None, steps
            assert steps.opened_us is not None and steps.first_packet_us is not None, steps
            assert (before <= steps.open_started_us <= steps.opened_us <= steps.first_packet_us
                    <= steps.first_keyframe_us <= now_us()), steps
        finally:
            worker.request_stop()
            assert worker.join(15.0)
            store.close()
