"""HLS playback (a past range) and live view (a sliding window) straight from stored segments,
each frame once (the node's served-span rule, hotspare.api.serving).

URIs in the playlists are relative, so they keep working behind a reverse proxy that mounts the
node under a prefix. When the playlist itself was fetched with a credential in its URL (`?token=`,
or a playback grant), every URI carries a playback grant for the camera and the playlist's range
(hotspare.api.playback_urls), because a browser's HLS player fetches them without our
Authorization header; the caller's token itself is never written into a playlist. Asked under a
grant, a playlist must lie inside it.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from hotspare.api.auth import grant_of
from hotspare.api.context import Ctx
from hotspare.api.grants import check_grant, check_grant_covers
from hotspare.api.hls import PlaylistItem, cut_playlist, live_playlist, vod_playlist
from hotspare.api.params import CameraParam, FromParam, ToParam, check_range_length
from hotspare.api.playback_urls import grant_query
from hotspare.api.problems import CAMERA_RESPONSES, COMMON_RESPONSES
from hotspare.api.serving import node_spans
from hotspare.store.models import SegmentInfo
from hotspare.store.segment_store import SegmentStore
from hotspare.store.served import Serve
from hotspare.wire import MAX_PLAYLIST_SEGMENTS, MAX_SEGMENT_RANGE_US, NEXT_FROM_HEADER

router = APIRouter(tags=["playback"], responses=COMMON_RESPONSES)

MPEGURL = "application/vnd.apple.mpegurl"
_PLAYLIST_RESPONSES: dict[int | str, dict[str, Any]] = {
    **CAMERA_RESPONSES,
    200: {"content": {MPEGURL: {"schema": {"type": "string"}}}, "description": "an HLS playlist"},
}
# Playlists are built against the relative position of /api/v1/cameras/{camera}/<name>.m3u8.
_SEGMENT_BASE = "../../segments"


def _items(store: SegmentStore, segments: list[SegmentInfo]) -> list[PlaylistItem]:
    """The segments as served: each frame once, a segment inside others left out."""
    return [PlaylistItem(span.segment, f"{_SEGMENT_BASE}/{span.segment.segment_id}/file",
                         span.end_wall_us if span.serve is Serve.BEFORE else None)
            for span in node_spans(store, segments) if span.serve is not Serve.NOTHING]


def _playlist(text: str, *, cache: str) -> Response:
    return Response(text, media_type=MPEGURL, headers={"Cache-Control": cache})


@router.get(
    "/cameras/{camera}/playback.m3u8",
    response_class=Response,
    responses=_PLAYLIST_RESPONSES,
    summary="HLS VOD playlist of a time range",
    description=f"At most {MAX_SEGMENT_RANGE_US // 3_600_000_000} h per request "
    f"(`400 range_too_large`) and {MAX_PLAYLIST_SEGMENTS} segments per playlist: a range holding "
    f"more ends there, with ENDLIST, and names where the rest starts in the `{NEXT_FROM_HEADER}` "
    "header (µs; ask again with `from` = it).",
    openapi_extra={
        "x-hotspare-limits": {
            "max_range_us": MAX_SEGMENT_RANGE_US,
            "max_segments": MAX_PLAYLIST_SEGMENTS,
        }
    },
)
def playback(
    ctx: Ctx, request: Request, camera: CameraParam, from_: FromParam = None, to: ToParam = None
) -> Response:
    from_us, to_us = ctx.time_range(from_, to)
    check_range_length(from_us, to_us, MAX_SEGMENT_RANGE_US, "a playlist")
    # Before the camera check, so a grant does not learn which cameras a node holds.
    check_grant_covers(grant_of(request.scope), camera, from_us, to_us, what="the playlist")
    camera = ctx.check_camera(camera)
    found = ctx.store.list_segments(camera, from_us, to_us, limit=MAX_PLAYLIST_SEGMENTS + 1)
    segments, next_from = cut_playlist(
        found, lambda s: s.start_wall_us, MAX_PLAYLIST_SEGMENTS, from_us
    )
    response = _playlist(
        vod_playlist(_items(ctx.store, segments),
                     grant_query(request, camera, from_us, to_us, extra_us=to_us - from_us),
                     next_from),
        cache="no-cache",
    )
    if next_from is not None:
        response.headers[NEXT_FROM_HEADER] = str(next_from)
    return response


@router.get(
    "/cameras/{camera}/live.m3u8",
    response_class=Response,
    responses=_PLAYLIST_RESPONSES,
    summary="HLS live playlist: the latest segments",
)
def live(ctx: Ctx, request: Request, camera: CameraParam) -> Response:
    now = ctx.clock()
    check_grant(grant_of(request.scope), camera, now, now, what="now")
    camera = ctx.check_camera(camera)
    since = max(0, now - ctx.live_lookback_us)
    window = ctx.store.latest_segments(camera, since, now, ctx.live_segments)
    text = live_playlist(camera, _items(ctx.store, window),
                         grant_query(request, camera, since, now), ctx.sequencer,
                         default_target=4)
    return _playlist(text, cache="no-store")
