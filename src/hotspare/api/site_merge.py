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

from hotspare.api.schemas import SegmentOut
from hotspare.client.node_client import NodeApiError, NodeClient
from hotspare.store.models import SegmentInfo

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

    def describe(self) -> dict[str, Any]:
        return {"node": self.node, "url": self.url, "ok": self.ok, "error": self.error}


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
                   results: list[SourceResult], max_gap_us: int) -> dict[str, Any]:
    """Runs from every answering node (each saying where it is held), and the gaps left between
    their union. The same stretch held twice (on the server after import and on the spare before
    its copy is deleted) is listed once, held by the server."""
    runs: list[dict[str, Any]] = []
    seen: set[tuple[str, str, int, int]] = set()
    for result in results:
        if not result.ok or result.value is None:
            continue
        for run in result.value.runs:
            key = (run.run_id, run.recorded_by, run.start_wall_us, run.end_wall_us)
            if key in seen:
                continue
            seen.add(key)
            runs.append({**run.model_dump(), "held_by": result.node, "held_by_url": result.url})
    runs.sort(key=lambda r: (r["start_wall_us"], r["end_wall_us"]))
    return {
        "camera_id": camera,
        "server": server,
        "from_wall_us": from_us,
        "to_wall_us": to_us,
        "runs": runs,
        "gaps": gaps_between(runs, from_us, to_us, max_gap_us),
        "sources": [r.describe() for r in results],
        "partial": any(not r.ok for r in results),
    }


def gaps_between(runs: list[dict[str, Any]], from_us: int, to_us: int,
                 max_gap_us: int) -> list[dict[str, int]]:
    """Stretches of [from, to) that no run covers, longer than `max_gap_us`."""
    gaps = []
    cursor = from_us
    for run in sorted(runs, key=lambda r: r["start_wall_us"]):
        start, end = max(run["start_wall_us"], from_us), min(run["end_wall_us"], to_us)
        if end <= start:
            continue
        if start - cursor > max_gap_us:
            gaps.append({"start_wall_us": cursor, "end_wall_us": start,
                         "length_us": start - cursor})
        cursor = max(cursor, end)
    if to_us - cursor > max_gap_us:
        gaps.append({"start_wall_us": cursor, "end_wall_us": to_us, "length_us": to_us - cursor})
    return gaps


@dataclass(frozen=True)
class HeldSegment:
    """A segment and the node that serves its file."""

    segment: SegmentInfo
    node: str
    url: str


def _info(out: SegmentOut) -> SegmentInfo:
    """The store's value type, so the node's own playlist writer can be reused unchanged."""
    return SegmentInfo(
        segment_id=out.segment_id, camera_id=out.camera_id, run_id=out.run_id, seq=out.seq,
        recorded_by=out.recorded_by, recorded_as=out.recorded_as,
        start_wall_us=out.start_wall_us, start_media_90k=out.start_media_90k,
        duration_90k=out.duration_90k, frame_count=out.frame_count,
        head_skip_frames=out.head_skip_frames, bytes=out.bytes, init_bytes=out.init_bytes,
        sha256=out.sha256, relpath="", reinsert_pending=out.reinsert_pending,
        imported_from=out.imported_from, tail_skip_frames=out.tail_skip_frames,
    )


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
                best[key] = HeldSegment(_info(out), result.node, result.url)
    chosen: list[HeldSegment] = []
    covered = -1
    for held in sorted(best.values(),
                       key=lambda h: (h.segment.start_wall_us, h.node != prefer)):
        if held.segment.end_wall_us <= covered:
            continue
        chosen.append(held)
        covered = max(covered, held.segment.end_wall_us)
    return chosen
