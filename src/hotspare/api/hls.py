"""HLS playlists over stored segments, without remuxing anything.

Each stored segment is a standalone fragmented MP4: its first `init_bytes` bytes are the init
section and the rest is media. So one file serves as both the `EXT-X-MAP` (a byte range from 0) and
the media segment (the byte range after it); players fetch ranges of the very file the store wrote
(`?raw=1`, so the ranges stay those of the stored file). A segment whose tail a later segment
serves (hotspare.store.served) is listed cut: its media URI asks the node for the fragments up to
the cut (`?end_us=…&part=media`), its EXT-X-MAP stays the stored init section (the cut form keeps
it byte for byte), and EXTINF is the served duration. Media time restarts at every run, so a new
run, and any hole in time, is marked as a discontinuity.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from hotspare.store.models import TICKS_PER_SECOND, SegmentInfo
from hotspare.timefmt import format_wall_us

HLS_VERSION = 7  # fMP4 media segments need >= 7
# Wall-clock slack between adjacent segments of one run before we call it a gap: the anchor may be
# refined by RTCP after commit, so neighbouring segments don't always touch to the microsecond.
GAP_TOLERANCE_US = 250_000


def needs_discontinuity(previous: SegmentInfo | None, current: SegmentInfo) -> bool:
    if previous is None:
        return False
    if previous.run_id != current.run_id:
        return True
    if current.start_media_90k != previous.start_media_90k + previous.duration_90k:
        return True
    return abs(current.start_wall_us - previous.end_wall_us) > GAP_TOLERANCE_US


@dataclass(frozen=True)
class PlaylistItem:
    """One segment as a playlist lists it."""

    segment: SegmentInfo
    file_url: str  # the segment's `/file` URL (absolute or relative), without a query
    end_wall_us: int | None = None  # serve the frames before this (a cut); None: the whole file

    @property
    def duration_s(self) -> float:
        if self.end_wall_us is None:
            return self.segment.duration_90k / TICKS_PER_SECOND
        return max(0, self.end_wall_us - self.segment.start_wall_us) / 1_000_000


def _with_query(url: str, *parts: str) -> str:
    query = "&".join(p for p in parts if p)
    return f"{url}?{query}" if query else url


def _segment_lines(item: PlaylistItem, query: str, discontinuity: bool) -> list[str]:
    """`query`: what every URI carries besides its own parameters (a `grant=`, or nothing)."""
    segment = item.segment
    raw = _with_query(item.file_url, "raw=1", query)
    lines = ["#EXT-X-DISCONTINUITY"] if discontinuity else []
    lines += [
        f'#EXT-X-MAP:URI="{raw}",BYTERANGE="{segment.init_bytes}@0"',
        f"#EXT-X-PROGRAM-DATE-TIME:{format_wall_us(segment.start_wall_us)}",
        f"#EXTINF:{item.duration_s:.3f},",
    ]
    if item.end_wall_us is None:
        lines += [f"#EXT-X-BYTERANGE:{segment.bytes - segment.init_bytes}@{segment.init_bytes}",
                  raw]
    else:
        lines.append(_with_query(item.file_url, f"end_us={item.end_wall_us}", "part=media",
                                 query))
    return lines


def _target_duration(items: Sequence[PlaylistItem], default: int) -> int:
    if not items:
        return default
    return max(1, math.ceil(max(i.duration_s for i in items)))


_T = TypeVar("_T")


def cut_playlist(items: Sequence[_T], start_of: Callable[[_T], int], cap: int,
                 from_wall_us: int) -> tuple[list[_T], int | None]:
    """At most `cap` of `items` (sorted by start), cut at a wall time: those starting before the
    first left out, and that time, from which the next playlist continues (None: nothing cut).

    Cutting at a time rather than at a count keeps the continuation exact: the next playlist
    asked `from` there holds every segment starting there or later, and none twice.
    """
    if len(items) <= cap:
        return list(items), None
    cut = max(start_of(items[cap]), from_wall_us + 1)  # a continuation always moves forward
    return [i for i in items[: cap + 1] if start_of(i) < cut], cut


def vod_playlist(items: Sequence[PlaylistItem], query: str = "",
                 next_from_wall_us: int | None = None) -> str:
    """A complete playlist for a past time range; `items` sorted by wall time, each served
    once (hotspare.store.served decided which and how far).

    A playlist cut at the segment cap still ends with ENDLIST (a valid VOD playlist a player
    plays to its end); a comment says where the rest starts, for people reading it, and the
    route sends the same time in the `Hotspare-Next-From` header for programs.
    """
    lines = [
        "#EXTM3U",
        f"#EXT-X-VERSION:{HLS_VERSION}",
        f"#EXT-X-TARGETDURATION:{_target_duration(items, 1)}",
        "#EXT-X-MEDIA-SEQUENCE:0",
        "#EXT-X-PLAYLIST-TYPE:VOD",
        "#EXT-X-INDEPENDENT-SEGMENTS",
    ]
    previous: SegmentInfo | None = None
    for item in items:
        lines += _segment_lines(item, query, needs_discontinuity(previous, item.segment))
        previous = item.segment
    if next_from_wall_us is not None:
        lines.append(f"# cut at {len(items)} segments: the rest from "
                     f"from={next_from_wall_us} ({format_wall_us(next_from_wall_us)})")
    lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class _Numbers:
    media_sequence: int
    discontinuity_sequence: int


class LiveSequencer:
    """Stable media-sequence and discontinuity-sequence numbers for a camera's sliding window.

    HLS wants each segment to keep its number across playlist reloads and numbers to rise by one
    per segment. Segment ids are shared by all cameras, so they skip; this assigns consecutive
    numbers per camera as segments first appear, in memory. After a restart numbering starts again
    from the first segment's wall second, which lies above the old numbers while segments are longer
    than a second, so players see a forward jump rather than a rewind.
    """

    def __init__(self, keep: int = 64) -> None:
        self._keep = keep
        self._lock = threading.Lock()
        self._numbers: dict[str, dict[int, _Numbers]] = {}
        self._last: dict[str, tuple[SegmentInfo, _Numbers]] = {}

    def number(self, camera_id: str, window: Sequence[SegmentInfo]) -> list[_Numbers]:
        with self._lock:
            known = self._numbers.setdefault(camera_id, {})
            result: list[_Numbers] = []
            for segment in window:
                numbers = known.get(segment.segment_id)
                if numbers is None:
                    last = self._last.get(camera_id)
                    if last is None or segment.segment_id < last[0].segment_id:
                        numbers = _Numbers(segment.start_wall_us // 1_000_000, 0)
                    else:
                        previous, previous_numbers = last
                        jump = 1 if needs_discontinuity(previous, segment) else 0
                        numbers = _Numbers(
                            previous_numbers.media_sequence + 1,
                            previous_numbers.discontinuity_sequence + jump,
                        )
                    known[segment.segment_id] = numbers
                    last = self._last.get(camera_id)
                    if last is None or segment.segment_id > last[0].segment_id:
                        self._last[camera_id] = (segment, numbers)
                result.append(numbers)
            for old in sorted(known)[: max(0, len(known) - self._keep)]:
                del known[old]
            return result


def live_playlist(
    camera_id: str,
    window: Sequence[PlaylistItem],
    query: str,
    sequencer: LiveSequencer,
    default_target: int,
) -> str:
    """The latest segments, no ENDLIST: players reload it about once per target duration."""
    numbers = sequencer.number(camera_id, [i.segment for i in window])
    first = numbers[0] if numbers else _Numbers(0, 0)
    lines = [
        "#EXTM3U",
        f"#EXT-X-VERSION:{HLS_VERSION}",
        f"#EXT-X-TARGETDURATION:{_target_duration(window, default_target)}",
        f"#EXT-X-MEDIA-SEQUENCE:{first.media_sequence}",
        f"#EXT-X-DISCONTINUITY-SEQUENCE:{first.discontinuity_sequence}",
        "#EXT-X-INDEPENDENT-SEGMENTS",
    ]
    previous: SegmentInfo | None = None
    for item in window:
        lines += _segment_lines(item, query, needs_discontinuity(previous, item.segment))
        previous = item.segment
    return "\n".join(lines) + "\n"
