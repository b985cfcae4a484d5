"""Read the simulated cameras' frame tags out of stored segments: name every frame kept or lost."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import av

from hotspare.camerasim.sei import FrameTag, find_tags
from hotspare.store.models import SegmentInfo
from hotspare.store.segment_store import SegmentStore


@dataclass(frozen=True)
class StoredFrame:
    tag: FrameTag
    wall_us: int  # where the store puts this frame: segment start_wall_us + packet offset
    keyframe: bool
    segment_id: int


@dataclass(frozen=True)
class OddSample:
    """A stored sample not carrying exactly one frame's tag. Two or more (`merged`): access units
    joined under one time, as FFmpeg's RTP depacketiser and parser made them after lost packets
    before the recorder left such frames out (docs/recorder.md, *Packet loss*); none: a frame
    that lost its tag. Accounting that must not stop at one (the chaos soak) collects them; a
    merged sample counts as its first frame, an untagged one as none."""

    path: Path
    index: int
    tags: tuple[FrameTag, ...]

    @property
    def merged(self) -> bool:
        return len(self.tags) > 1


# A segment's codec parameters are in its own moov: probing packets (FFmpeg decodes some) adds
# nothing and cost 2.5x the CPU of reading a 1 s 1080p segment (bench/scale reads thousands).
_NO_PROBE = {"analyzeduration": "0", "probesize": "32"}


def _packets(path: Path, segment: SegmentInfo) -> list[tuple[list[FrameTag], int, bool]]:
    """(SEI tags, wall µs, keyframe) of every packet of one segment file (demux, no decode)."""
    out: list[tuple[list[FrameTag], int, bool]] = []
    with av.open(str(path), options=_NO_PROBE) as container:
        stream = container.streams.video[0]
        assert stream.time_base is not None
        for packet in container.demux(stream):
            if not packet.size:
                continue
            assert packet.pts is not None
            media_90k = int(packet.pts * stream.time_base * 90_000)
            offset_us = (media_90k - segment.start_media_90k) * 1_000_000 // 90_000
            out.append((find_tags(bytes(packet)), segment.start_wall_us + offset_us,
                        packet.is_keyframe))
    return out


def _frames(path: Path, segment: SegmentInfo, packets: list[tuple[list[FrameTag], int, bool]],
            odd: list[OddSample] | None = None) -> list[StoredFrame]:
    out: list[StoredFrame] = []
    for index, (tags, wall_us, keyframe) in enumerate(packets):
        if len(tags) != 1 and odd is not None:
            odd.append(OddSample(path, index, tuple(tags)))
            if not tags:
                continue
        else:
            assert len(tags) == 1, f"{path}: packet {index} carries {len(tags)} tags"
        out.append(StoredFrame(tags[0], wall_us, keyframe, segment.segment_id))
    return out


def frames_in_file(path: Path, segment: SegmentInfo,
                   odd: list[OddSample] | None = None) -> list[StoredFrame]:
    """Demux (no decode) one segment file and read each packet's SEI tag (each must carry one;
    with `odd`, a packet that does not is added there instead of failing)."""
    return _frames(path, segment, _packets(path, segment), odd)


def stored_frames(store: SegmentStore, segment: SegmentInfo) -> list[StoredFrame]:
    """Every frame in one indexed segment's file, skipped duplicates included."""
    return frames_in_file(store.segment_file(segment), segment)


def all_segments(store: SegmentStore, camera_id: str) -> list[SegmentInfo]:
    return sorted(store.list_segments(camera_id, 0, 2**62), key=lambda s: (s.start_wall_us, s.seq))


def counted_frames(store: SegmentStore, segment: SegmentInfo, *, partial_join_ok: bool = False,
                   odd: list[OddSample] | None = None) -> list[StoredFrame]:
    """The frames a segment contributes to the timeline (skipped duplicate head/tail excluded).

    `partial_join_ok`: the first packet of a run (seq 0) may carry no tag. The camera sim can
    hand a client that joins a stream already playing a partial first access unit without its SEI
    NAL (tests/e2e/test_camerasim.py allows one per join); such a packet names no frame and is
    left out. Everywhere else every packet must carry exactly one tag (`odd`: as in
    `frames_in_file`).
    """
    path = store.segment_file(segment)
    packets = _packets(path, segment)
    packets = packets[segment.head_skip_frames : len(packets) - segment.tail_skip_frames]
    if (partial_join_ok and segment.seq == 0 and segment.head_skip_frames == 0 and packets
            and not packets[0][0]):
        packets = packets[1:]
    return _frames(path, segment, packets, odd)


def store_frames(store: SegmentStore, camera_id: str, *, frame_us: int) -> list[StoredFrame]:
    """Every counted frame of a camera, checked: keyframe starts, counts, once only, true time."""
    frames: list[StoredFrame] = []
    for segment in all_segments(store, camera_id):
        path = store.segment_file(segment)
        packets = _packets(path, segment)
        assert packets, f"segment {segment.relpath} is empty"
        assert packets[0][2], f"segment {segment.relpath} does not start on a keyframe"
        assert segment.frame_count == len(packets), (segment.relpath, segment.frame_count,
                                                     len(packets))
        if segment.seq == 0 and not packets[0][0]:
            packets = packets[1:]  # a join's partial first access unit (see counted_frames)
        _frames(path, segment, packets)  # every other packet carries exactly one tag
        frames.extend(counted_frames(store, segment, partial_join_ok=True))
    counts = Counter(f.tag.frame_no for f in frames)
    twice = sorted(n for n, c in counts.items() if c > 1)
    assert not twice, f"{camera_id}: frames stored twice: {twice[:10]}"
    assert all(f.tag.camera_id == camera_id for f in frames)
    for frame in frames:
        assert abs(frame.wall_us - frame.tag.capture_wall_us) <= frame_us, (camera_id, frame)
    return sorted(frames, key=lambda f: f.tag.frame_no)
