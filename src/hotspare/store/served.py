"""Which frames of each stored segment a user is served, so that every frame reaches them once.

A camera's segments can overlap in wall time: the failed server's last segment and the spare's
first (the spare starts on a keyframe before the server's last durable frame, more so in gapless
mode), the spare's last and the server's first after handback, split-brain copies. The index says
which frames are duplicates (`head_skip_frames`, `tail_skip_frames`), but a player or a download
gets bytes, so the bytes served must leave the duplicates out.

The rule: the later of two overlapping segments always starts on a keyframe and decodes on its
own, so an overlap is resolved by cutting the EARLIER segment's tail at the later one's start. A
tail cut never breaks decoding (frames only refer back); a head cut would leave P-frames without
their keyframe. A segment wholly inside time already served is not served at all. An imported
segment's `tail_skip_frames` is a cut too; its `head_skip_frames` are served, and the earlier
segment holding the same frames is cut instead, which keeps every served piece starting on a
keyframe. Times within half a frame are the same time: anchors are rounded to the microsecond and
refined by RTCP, so the same frame seen by two servers can differ by a few µs.

Pure: the node applies it to its own segments, the site API to the segments of every node that
holds the camera (docs/design.md, decision 13).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, TypeVar

from hotspare.store.models import SegmentInfo, ticks_to_us

_T = TypeVar("_T")


class Serve(StrEnum):
    ALL = "all"
    BEFORE = "before"  # the frames starting before `end_wall_us`
    NOTHING = "nothing"


@dataclass(frozen=True)
class ServedSpan(Generic[_T]):
    """What of one item (a segment, or a segment and the node holding it) is served."""

    item: _T
    segment: SegmentInfo
    serve: Serve
    end_wall_us: int  # end of the served time (the segment's end when `serve` is ALL)

    @property
    def duration_us(self) -> int:
        return max(0, self.end_wall_us - self.segment.start_wall_us)


def half_frame_us(segment: SegmentInfo) -> int:
    """Half the segment's mean frame length: the tolerance for "the same time"."""
    if segment.frame_count <= 0:
        return 0
    return ticks_to_us(segment.duration_90k) // segment.frame_count // 2


def _own_end(segment: SegmentInfo) -> int:
    """Where the segment's frames end before any neighbour is looked at: a tail the importer
    found already stored elsewhere is not served."""
    if segment.tail_skip_frames > 0:
        return segment.recorded_end_wall_us
    return segment.end_wall_us


def served_spans(items: Sequence[_T],
                 segment_of: Callable[[_T], SegmentInfo]) -> list[ServedSpan[_T]]:
    """Per item (same order as given; `segment_of` gives its segment), what is served: all, the
    frames before a wall time, or nothing. `items` are one camera's segments, from one node or
    merged across nodes, each (run, seq) at most once."""
    segments = [segment_of(i) for i in items]
    ends = [_own_end(s) for s in segments]
    nothing = [ends[k] - s.start_wall_us <= half_frame_us(s) for k, s in enumerate(segments)]
    # Earliest start first; of equal starts the longest first, so the shorter lies inside it.
    order = sorted(range(len(items)),
                   key=lambda k: (segments[k].start_wall_us, -ends[k], segments[k].segment_id))
    open_: list[int] = []  # served so far whose served end may still reach past a later start
    covered = -1
    for k in order:
        if nothing[k]:
            continue
        seg = segments[k]
        if ends[k] <= covered + half_frame_us(seg):
            nothing[k] = True  # wholly inside time already served
            continue
        still_open: list[int] = []
        for j in open_:
            if ends[j] - seg.start_wall_us > half_frame_us(segments[j]):
                ends[j] = seg.start_wall_us
                if ends[j] - segments[j].start_wall_us <= half_frame_us(segments[j]):
                    nothing[j] = True
                    continue
            if ends[j] > seg.start_wall_us:
                still_open.append(j)
        open_ = [*still_open, k]
        covered = max(covered, ends[k])
    out: list[ServedSpan[_T]] = []
    for k, (item, seg) in enumerate(zip(items, segments, strict=True)):
        if nothing[k]:
            out.append(ServedSpan(item, seg, Serve.NOTHING, seg.start_wall_us))
        elif ends[k] < seg.end_wall_us:
            out.append(ServedSpan(item, seg, Serve.BEFORE, ends[k]))
        else:
            out.append(ServedSpan(item, seg, Serve.ALL, seg.end_wall_us))
    return out


def served_only(items: Sequence[_T],
                segment_of: Callable[[_T], SegmentInfo]) -> list[ServedSpan[_T]]:
    """`served_spans` without the items served not at all."""
    return [s for s in served_spans(items, segment_of) if s.serve is not Serve.NOTHING]


def frames_before(frame_walls_us: Sequence[int], end_wall_us: int, half_frame: int) -> int:
    """How many of a segment's frames (wall start times, ascending) start before `end_wall_us`,
    a frame starting within half a frame of it counting as the later segment's first frame."""
    return bisect.bisect_left(frame_walls_us, end_wall_us - half_frame)


def segment_spans(segments: Sequence[SegmentInfo]) -> list[ServedSpan[SegmentInfo]]:
    """`served_spans` of bare segments (one node's own)."""
    return served_spans(segments, _itself)


def _itself(segment: SegmentInfo) -> SegmentInfo:
    return segment
