"""`SegmentWriter` skips re-labelling packets (stream, time_base) when the camera's stream is
already stream 0 in 1/90000, as an RTSP video stream is. Both paths must write the same file: the
media times the recorder gives, not the source's timestamps."""

from __future__ import annotations

from pathlib import Path

import av
import pytest

from hotspare.recorder.segment_writer import TIME_BASE_90K, SegmentWriter
from hotspare.store import mp4
from tests.support.clips import make_h264_file

FRAME_90K = 3600  # 25 fps
START_90K = 900_000  # 10 s into the run: the file must not start at 0


def _as_mpegts(clip: Path, out: Path) -> Path:
    """The clip remuxed into MPEG-TS, whose streams count in 1/90000 like RTP video."""
    with av.open(str(clip)) as src, av.open(str(out), "w", format="mpegts") as dst:
        stream = dst.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.size:
                packet.stream = stream
                dst.mux(packet)
    return out


@pytest.mark.parametrize("container", ["mp4", "mpegts"])
def test_written_times_are_the_media_times_whatever_the_source_time_base(
    tmp_path: Path, container: str
) -> None:
    clip = make_h264_file(tmp_path / "clip.mp4", frames=20, gop=10)
    if container == "mpegts":
        clip = _as_mpegts(clip, tmp_path / "clip.ts")
    out = tmp_path / "seg.mp4"
    with av.open(str(clip)) as src:
        stream = src.streams.video[0]
        assert (stream.time_base == TIME_BASE_90K) == (container == "mpegts")
        packets = [p for p in src.demux(stream) if p.size][:10]
        writer = SegmentWriter(out, stream, START_90K)
        for i, packet in enumerate(packets):
            media = START_90K + i * FRAME_90K
            writer.write(packet, media, media, FRAME_90K)
        writer.close(START_90K + 10 * FRAME_90K)
    info = mp4.parse_path(out)
    assert info.frame_count == 10
    assert info.start_media_90k == START_90K
    assert info.frame_durations_90k() == [FRAME_90K] * 10


def test_packets_rebuilt_from_bytes_are_relabelled(tmp_path: Path) -> None:
    """The pre-buffer's spill rebuilds packets from bytes: no stream, no time base. Written through
    a writer whose camera stream needs no re-labelling, they still get exactly the media times."""
    clip = _as_mpegts(make_h264_file(tmp_path / "clip.mp4", frames=20, gop=10), tmp_path / "c.ts")
    out = tmp_path / "seg.mp4"
    with av.open(str(clip)) as src:
        stream = src.streams.video[0]
        writer = SegmentWriter(out, stream, START_90K)
        demuxed = [p for p in src.demux(stream) if p.size][:10]
        for i, original in enumerate(demuxed):
            packet = av.packet.Packet(bytes(original))
            packet.is_keyframe = original.is_keyframe
            media = START_90K + i * FRAME_90K
            writer.write(packet, media, media, FRAME_90K)
        writer.close(START_90K + 10 * FRAME_90K)
    info = mp4.parse_path(out)
    assert info.frame_count == 10
    assert info.start_media_90k == START_90K
    assert info.frame_durations_90k() == [FRAME_90K] * 10
