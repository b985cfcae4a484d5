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
from hotspare.store.timeline import find_gaps
from hotspare.wire import GapOut, HeldRunOut, SiteTimelineOut, SourceOut

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


def merge_timeline(camera: str, server: str, from_us: int, to_us: int,
                   results: list[SourceResult], max_gap_us: int) -> SiteTimelineOut:
    """Runs from every answering node (each saying where it is held), and the gaps left between
    their union. The same stretch held twice (on the server after import and on the spare before
    its copy is deleted) is listed once, held by the server."""
    runs: list[HeldRunOut] = []
    seen: set[tuple[str, str, int, int]] = set()
    for result in results:
        if not result.ok or result.value is None:
            continue
        for run in result.value.runs:
            key = (run.run_id, run.recorded_by, run.start_wall_us, run.end_wall_us)
            if key in seen:
                continue
            seen.add(key)
            runs.append(HeldRunOut(**run.model_dump(), held_by=result.node,
                                   held_by_url=result.url))
    runs.sort(key=lambda r: (r.start_wall_us, r.end_wall_us))
    return SiteTimelineOut(
        camera_id=camera,
        server=server,
        from_wall_us=from_us,
        to_wall_us=to_us,
        runs=runs,
        gaps=[GapOut.of(g) for g in find_gaps(runs, from_us, to_us, max_gap_us)],
        sources=[r.describe() for r in results],
        partial=any(not r.ok for r in results),
    )


@dataclass(frozen=True)
class HeldSegment:
    """A segment and the node that serves its file."""

    segment: SegmentInfo
    node: str
    url: str


def merge_segments(results: list[SourceResult], prefer: str) -> list[HeldSegment]:
    """One playable sequence: each (run, seq) once — from `prefer` (the camera's own server,
    whose copy is acknowledged) when it has it — oldest first, and a segment wholly inside time
    already covered dropped (split-brain duplicates are allowed in stores, not in a playlist)."""
    best: dict[tuple[str, int], HeldSegment] = {}
    for result in results:
        if not result.ok or result.value is None:
            continue
        for out in result.value.segments:
            key = (out.run_id, out.seq)
            if key not in best or result.node == prefer:
                best[key] = HeldSegment(out.to_info(), result.node, result.url)
    chosen: list[HeldSegment] = []
    covered = -1
    for held in sorted(best.values(),
                       key=lambda h: (h.segment.start_wall_us, h.node != prefer)):
        if held.segment.end_wall_us <= covered:
            continue
        chosen.append(held)
        covered = max(covered, held.segment.end_wall_us)
    return chosen
