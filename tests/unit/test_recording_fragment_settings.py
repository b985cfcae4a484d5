"""`[recording] flush_every_frame` and `fragment_seconds` reach the segment writer: they are the
node settings the recording benchmark's variants use (docs/recorder.md measures the trade), so
the benchmark varies configuration, not the product's code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import av
import pytest
from pydantic import ValidationError

import hotspare.recorder.worker as worker_module
from hotspare.config.models import CameraConfig, RecordingSettings
from hotspare.recorder.segment_writer import SegmentWriter
from hotspare.recorder.worker import STOPPED, CameraWorker, _Run
from hotspare.store import mp4
from hotspare.store.segment_store import SegmentStore
from tests.support.clips import make_h264_file

FRAME_90K = 3600  # 25 fps


def write_segment(clip: Path, out: Path, frames: int, **settings: Any) -> mp4.Mp4Info:
    with av.open(str(clip)) as src:
        stream = src.streams.video[0]
        packets = [p for p in src.demux(stream) if p.size][:frames]
        writer = SegmentWriter(out, stream, 0, **settings)
        for i, packet in enumerate(packets):
            writer.write(packet, i * FRAME_90K, i * FRAME_90K)
        writer.close(frames * FRAME_90K)
    return mp4.parse_path(out)


def test_defaults_bound_a_crash_to_one_frame() -> None:
    settings = RecordingSettings()
    assert settings.flush_every_frame is True and settings.fragment_seconds == 0.0


@pytest.mark.parametrize("value", [-0.1, 2.5])
def test_fragment_seconds_is_bounded(value: float) -> None:
    with pytest.raises(ValidationError, match="fragment_seconds"):
        RecordingSettings(fragment_seconds=value)


def test_fragment_seconds_groups_frames_into_fewer_fragments(tmp_path: Path) -> None:
    clip = make_h264_file(tmp_path / "clip.mp4", frames=40, gop=10)
    per_frame = write_segment(clip, tmp_path / "a.mp4", 20)
    grouped = write_segment(clip, tmp_path / "b.mp4", 20, fragment_seconds=0.2)
    unflushed = write_segment(clip, tmp_path / "c.mp4", 20, flush_every_frame=False)
    assert per_frame.frame_count == grouped.frame_count == unflushed.frame_count == 20
    assert len(per_frame.fragments) == 20 and len(unflushed.fragments) == 20
    assert 3 <= len(grouped.fragments) <= 6  # 200 ms = 5 frames, cut where FFmpeg may


def test_the_worker_passes_the_settings_to_its_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[dict[str, Any]] = []

    class Spy(SegmentWriter):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            seen.append(kwargs)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(worker_module, "SegmentWriter", Spy)
    clip = make_h264_file(tmp_path / "clip.mp4", frames=20, gop=10)
    settings = RecordingSettings(flush_every_frame=False, fragment_seconds=0.4)
    camera = CameraConfig(id="cam-1", url="rtsp://127.0.0.1:1/none")
    with SegmentStore.open(tmp_path / "store", "server-a") as store:
        worker = CameraWorker(camera, "server-a", store, settings)
        with av.open(str(clip)) as src:
            run = _Run(worker, src)
            for packet in src.demux(src.streams.video[0]):
                if packet.size:
                    run.on_packet(packet)
            run.finish(STOPPED)
        worker._committer.close(10)
    assert seen and all(
        k["flush_every_frame"] is False and k["fragment_seconds"] == 0.4 for k in seen
    ), seen
