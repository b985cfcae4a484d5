"""One camera's recorded time as spans (who recorded what) and gaps (what is missing).

Built from segments' *recorded* intervals (skipped head/tail frames of imported segments excluded),
so a timeline merged from several servers' stores — the master's job — can use the same types.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from hotspare.store.models import SegmentInfo


@dataclass(frozen=True)
class TimelineSpan:
    """Consecutive segments of one run with no gap longer than the tolerance between them."""

    run_id: str
    recorded_by: str
    recorded_as: str
    start_wall_us: int
    end_wall_us: int
    segment_count: int
    frame_count: int  # recorded frames (skipped frames not counted)


@dataclass(frozen=True)
class Gap:
    """Wall time in the asked range with no recorded video from any span."""

    start_wall_us: int
    end_wall_us: int

    @property
    def duration_us(self) -> int:
        return self.end_wall_us - self.start_wall_us


@dataclass(frozen=True)
class Timeline:
    camera_id: str
    from_wall_us: int
    to_wall_us: int
    max_gap_us: int
    spans: list[TimelineSpan] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)
    # Set when the range held more than one answer may summarise: spans and gaps then describe
    # [from, next_from) only, and the caller asks again from here.
    next_from_wall_us: int | None = None

    @property
    def recorded_us(self) -> int:
        end = self.to_wall_us if self.next_from_wall_us is None else self.next_from_wall_us
        return end - self.from_wall_us - sum(g.duration_us for g in self.gaps)


def build_spans(segments: Iterable[SegmentInfo], max_gap_us: int) -> list[TimelineSpan]:
    by_run: dict[str, list[SegmentInfo]] = {}
    for s in segments:
        if s.recorded_frames > 0:
            by_run.setdefault(s.run_id, []).append(s)
    spans: list[TimelineSpan] = []
    for segs in by_run.values():
        segs.sort(key=lambda s: (s.recorded_start_wall_us, s.seq))
        cur: list[SegmentInfo] = []
        end = 0
        for s in segs:
            if cur and s.recorded_start_wall_us - end > max_gap_us:
                spans.append(_span(cur, end))
                cur = []
            end = max(end, s.recorded_end_wall_us) if cur else s.recorded_end_wall_us
            cur.append(s)
        if cur:
            spans.append(_span(cur, end))
    spans.sort(key=lambda sp: (sp.start_wall_us, sp.recorded_by, sp.run_id))
    return spans


def _span(segs: list[SegmentInfo], end: int) -> TimelineSpan:
    first = segs[0]
    return TimelineSpan(first.run_id, first.recorded_by, first.recorded_as,
                        first.recorded_start_wall_us, end, len(segs),
                        sum(s.recorded_frames for s in segs))


# The few columns of a segment a timeline needs, read straight from the index as a tuple:
# (run_id, recorded_by, recorded_as, recorded start, recorded end, recorded frames, ...), times
# without skipped head/tail frames. Holding every segment's full row for a week of video is what
# made a long timeline cost gigabytes; a tuple per row, not an object, keeps the pass quick.
SpanRow = tuple[Any, ...]


def spans_from_rows(rows: Iterable[SpanRow], max_gap_us: int) -> list[TimelineSpan]:
    """`build_spans` over rows in wall-time order, one pass, holding only the open span of each
    run: memory grows with the spans found, not with the segments read."""
    open_: dict[str, list[Any]] = {}  # run -> [start, end, segments, frames, by, as]
    spans: list[TimelineSpan] = []
    for row in rows:
        run_id, start, end, frames = row[0], row[3], row[4], row[5]
        if frames <= 0:
            continue
        cur = open_.get(run_id)
        if cur is not None and start - cur[1] > max_gap_us:
            spans.append(TimelineSpan(run_id, cur[4], cur[5], cur[0], cur[1], cur[2], cur[3]))
            cur = None
        if cur is None:
            open_[run_id] = [start, end, 1, frames, row[1], row[2]]
        else:
            if end > cur[1]:
                cur[1] = end
            cur[2] += 1
            cur[3] += frames
    for run_id, cur in open_.items():
        spans.append(TimelineSpan(run_id, cur[4], cur[5], cur[0], cur[1], cur[2], cur[3]))
    spans.sort(key=lambda sp: (sp.start_wall_us, sp.recorded_by, sp.run_id))
    return spans


def clip_timeline(spans: Iterable[TimelineSpan], camera_id: str, from_wall_us: int,
                  to_wall_us: int, max_gap_us: int, *, max_spans: int | None = None,
                  cut_wall_us: int | None = None) -> Timeline:
    """Spans clipped to [from, to) and the gaps between them; cut at `cut_wall_us` (rows left
    unread from there) and, past `max_spans` spans, at the first span left out, so that an answer
    is always a complete picture of [from, next_from)."""
    end = to_wall_us if cut_wall_us is None else min(to_wall_us, cut_wall_us)
    inside = [sp for sp in spans if sp.end_wall_us > from_wall_us and sp.start_wall_us < end]
    if max_spans is not None and len(inside) > max_spans:
        end = min(end, inside[max_spans].start_wall_us)
        inside = [sp for sp in inside if sp.start_wall_us < end]
    truncated = end < to_wall_us
    if truncated and end <= from_wall_us:  # never hand back a cursor that does not move
        end = from_wall_us + 1
    clipped = [
        TimelineSpan(sp.run_id, sp.recorded_by, sp.recorded_as, max(sp.start_wall_us, from_wall_us),
                     min(sp.end_wall_us, end), sp.segment_count, sp.frame_count)
        for sp in inside if sp.start_wall_us < end
    ]
    return Timeline(camera_id, from_wall_us, to_wall_us, max_gap_us, clipped,
                    find_gaps(clipped, from_wall_us, end, max_gap_us),
                    end if truncated else None)


class Stretch(Protocol):
    """Anything covering wall time: a span here, or a run of another node's timeline (the master
    merges those with this same function)."""

    @property
    def start_wall_us(self) -> int: ...
    @property
    def end_wall_us(self) -> int: ...


def find_gaps(spans: Iterable[Stretch], from_wall_us: int, to_wall_us: int,
              max_gap_us: int) -> list[Gap]:
    """Holes longer than `max_gap_us` in the union of spans, clipped to [from, to)."""
    gaps: list[Gap] = []
    covered_to = from_wall_us
    for sp in sorted(spans, key=lambda sp: sp.start_wall_us):
        if sp.start_wall_us - covered_to > max_gap_us:
            gaps.append(Gap(covered_to, min(sp.start_wall_us, to_wall_us)))
        covered_to = max(covered_to, sp.end_wall_us)
        if covered_to >= to_wall_us:
            break
    if to_wall_us - covered_to > max_gap_us:
        gaps.append(Gap(covered_to, to_wall_us))
    return [g for g in gaps if g.end_wall_us > g.start_wall_us]


def build_timeline(segments: Iterable[SegmentInfo], camera_id: str, from_wall_us: int,
                   to_wall_us: int, max_gap_us: int) -> Timeline:
    """Spans clipped to the asked range, and the gaps between them (including at either end)."""
    spans = [
        TimelineSpan(sp.run_id, sp.recorded_by, sp.recorded_as, max(sp.start_wall_us, from_wall_us),
                     min(sp.end_wall_us, to_wall_us), sp.segment_count, sp.frame_count)
        for sp in build_spans(segments, max_gap_us)
        if sp.end_wall_us > from_wall_us and sp.start_wall_us < to_wall_us
    ]
    return Timeline(camera_id, from_wall_us, to_wall_us, max_gap_us, spans,
                    find_gaps(spans, from_wall_us, to_wall_us, max_gap_us))
