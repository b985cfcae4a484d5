"""One camera's video across the site: timelines and segment lists merged from every holder.

A camera's video can sit on several nodes at once: its own recording server, the spare covering
it, and a spare whose buffer is still being re-inserted. The master asks each of them (in
parallel, with a short timeout, through `NodeClient`) and merges. A node that does not answer
makes the result *partial* — said per source — rather than failing the whole request: during a
takeover the camera's own server is down by definition, and that is exactly when operators look.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

from hotspare.client.node_client import NodeApiError, NodeClient
from hotspare.store.models import SegmentInfo
from hotspare.store.served import Serve, ServedSpan, served_spans
from hotspare.store.timeline import find_gaps
from hotspare.wire import MAX_PAGE_ROWS, GapOut, HeldRunOut, SegmentOut, SiteTimelineOut, SourceOut

NODE_TIMEOUT_SECONDS = 1.5
DEFAULT_MAX_GAP_US = 250_000  # as the HLS playlists: shorter holes are clock jitter, not gaps

_T = TypeVar("_T")
ClientFactory = Callable[[str], NodeClient]


@dataclass(frozen=True)
class SourceResult:
    node: str
    url: str
    ok: bool
    error: str | None
    value: Any = None

    def describe(self) -> SourceOut:
        return SourceOut(node=self.node, url=self.url, ok=self.ok, error=self.error)


def ask_all(holders: Mapping[str, str], call: Callable[[NodeClient], _T],
            client: ClientFactory) -> list[SourceResult]:
    """`call` against every holder in parallel; a refusal or a dead node becomes an error entry.

    An `unknown_camera` answer is success with nothing in it: a spare that never held the camera
    (or has re-inserted all of it) simply has no video of it.
    """

    def one(item: tuple[str, str]) -> SourceResult:
        node, url = item
        try:
            with client(url) as api:
                return SourceResult(node, url, True, None, call(api))
        except NodeApiError as exc:
            if exc.error == "unknown_camera":
                return SourceResult(node, url, True, None, None)
            return SourceResult(node, url, False, f"{exc.error}: {exc.detail}")
        except httpx.HTTPError as exc:
            return SourceResult(node, url, False, f"unreachable: {type(exc).__name__}: {exc}")
        except ValueError as exc:  # an answer that is not what the node API declares
            return SourceResult(node, url, False, f"bad answer: {exc}"[:500])

    if not holders:
        return []
    with ThreadPoolExecutor(max_workers=min(8, len(holders))) as pool:
        return list(pool.map(one, holders.items()))


@dataclass(frozen=True)
class SegmentPages:
    """What one node gave of a segment range: its segments, and where it stopped if it had more
    than the master asked for (the merge is then only complete before that time)."""

    segments: list[SegmentOut]
    unread_from: int | None


def segment_pages(client: NodeClient, camera: str, from_us: int, to_us: int,
                  cap: int) -> SegmentPages:
    """A node's segments of [from, to), page after page, until `cap` of them: each page is bounded
    by the node, and the master holds at most `cap` (plus a page) per node, whatever the range."""
    got: list[SegmentOut] = []
    after: str | None = None
    while True:
        page = client.list_segments(camera, from_us, to_us, min(MAX_PAGE_ROWS, cap + 1 - len(got)),
                                    after)
        got += page.segments
        if page.next is None:
            return SegmentPages(got, None)
        if len(got) > cap:
            return SegmentPages(got[:cap], got[cap].start_wall_us)
        after = page.next


def unread_from(results: list[SourceResult]) -> int | None:
    """The earliest time from which some node left segments unread (None: every node gave all)."""
    cuts = [r.value.unread_from for r in results
            if r.ok and isinstance(r.value, SegmentPages) and r.value.unread_from is not None]
    return min(cuts) if cuts else None


def merge_timeline(camera: str, server: str, from_us: int, to_us: int,
                   results: list[SourceResult], max_gap_us: int,
                   max_runs: int | None = None) -> SiteTimelineOut:
    """Runs from every answering node (each saying where it is held), and the gaps left between
    their union. The same stretch held twice (on the server after import and on the spare before
    its copy is deleted) is listed once, held by the server.

    A node whose answer was cut covers only [from, its next_from): the merge ends at the earliest
    such time, and at the first run past `max_runs`, and says where to continue."""
    end = to_us
    for result in results:
        if result.ok and result.value is not None and result.value.next_from_wall_us is not None:
            end = min(end, result.value.next_from_wall_us)
    runs: list[HeldRunOut] = []
    seen: set[tuple[str, str, int, int]] = set()
    for result in results:
        if not result.ok or result.value is None:
            continue
        for run in result.value.runs:
            if run.start_wall_us >= end:
                continue
            key = (run.run_id, run.recorded_by, run.start_wall_us, run.end_wall_us)
            if key in seen:
                continue
            seen.add(key)
            fields = run.model_dump()
            fields["end_wall_us"] = min(run.end_wall_us, end)
            runs.append(HeldRunOut(**fields, held_by=result.node, held_by_url=result.url))
    runs.sort(key=lambda r: (r.start_wall_us, r.end_wall_us))
    if max_runs is not None and len(runs) > max_runs:
        end = min(end, runs[max_runs].start_wall_us)
        runs = [r.model_copy(update={"end_wall_us": min(r.end_wall_us, end)})
                for r in runs if r.start_wall_us < end]
    truncated = end < to_us
    if truncated and end <= from_us:  # a continuation always moves forward
        end = from_us + 1
    return SiteTimelineOut(
        camera_id=camera,
        server=server,
        from_wall_us=from_us,
        to_wall_us=to_us,
        runs=runs,
        gaps=[GapOut.of(g) for g in find_gaps(runs, from_us, end, max_gap_us)],
        sources=[r.describe() for r in results],
        partial=any(not r.ok for r in results),
        truncated=truncated,
        next_from_wall_us=end if truncated else None,
    )


@dataclass(frozen=True)
class HeldSegment:
    """A segment and the node that serves its file."""

    segment: SegmentInfo
    node: str
    url: str


def unique_segments(results: list[SourceResult], prefer: str) -> list[HeldSegment]:
    """Each (run, seq) once — from `prefer` (the camera's own server, whose copy is
    acknowledged) when it has it — oldest first."""
    best: dict[tuple[str, int], HeldSegment] = {}
    for result in results:
        if not result.ok or result.value is None:
            continue
        for out in result.value.segments:  # a SegmentList or SegmentPages: both hold these
            key = (out.run_id, out.seq)
            if key not in best or result.node == prefer:
                best[key] = HeldSegment(out.to_info(), result.node, result.url)
    return sorted(best.values(), key=lambda h: (h.segment.start_wall_us, h.node != prefer))


def served_segments(results: list[SourceResult], prefer: str) -> list[ServedSpan[HeldSegment]]:
    """What the site serves of a camera's segments on every node, oldest first: each
    (run, seq) once (`unique_segments`), then each frame once (hotspare.store.served: an
    overlapped tail cut, a segment inside others left out), so that the node holding the earlier
    of two overlapping segments is asked for it cut."""
    return [span for span in served_spans(unique_segments(results, prefer), _segment_of)
            if span.serve is not Serve.NOTHING]


def _segment_of(held: HeldSegment) -> SegmentInfo:
    return held.segment


def merge_segments(results: list[SourceResult], prefer: str) -> list[HeldSegment]:
    """One playable sequence of whole segments: each (run, seq) once, oldest first, and a segment
    wholly inside time already covered dropped (split-brain duplicates are allowed in stores, not
    in a playlist). Overlapping tails are not cut here: `served_segments` does that."""
    chosen: list[HeldSegment] = []
    covered = -1
    for held in unique_segments(results, prefer):
        if held.segment.end_wall_us <= covered:
            continue
        chosen.append(held)
        covered = max(covered, held.segment.end_wall_us)
    return chosen
