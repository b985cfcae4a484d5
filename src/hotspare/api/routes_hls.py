"""HLS playback (a past range) and live view (a sliding window) straight from stored segments,
each frame once (the node's served-span rule, hotspare.api.serving).

URIs in the playlists are relative, so they keep working behind a reverse proxy that mounts the
node under a prefix. When the playlist itself was fetched with `?token=`, the token is copied into
every URI, because a browser's HLS player fetches them without our Authorization header.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request, Response

from hotspare.api.auth import TOKEN_QUERY_PARAM, token_from_scope
from hotspare.api.context import Ctx
from hotspare.api.hls import PlaylistItem, cut_playlist, live_playlist, vod_playlist
from hotspare.api.params import CameraParam, FromParam, ToParam, check_range_length
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


def token_query(request: Request) -> str:
    """`token=…` when the playlist was fetched with one in its query (never a header's token)."""
    token, source = token_from_scope(request.scope)
    return f"{TOKEN_QUERY_PARAM}={quote(token, safe='')}" if token and source == "query" else ""


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
    camera = ctx.check_camera(camera)
    from_us, to_us = ctx.time_range(from_, to)
    check_range_length(from_us, to_us, MAX_SEGMENT_RANGE_US, "a playlist")
    found = ctx.store.list_segments(camera, from_us, to_us, limit=MAX_PLAYLIST_SEGMENTS + 1)
    segments, next_from = cut_playlist(
        found, lambda s: s.start_wall_us, MAX_PLAYLIST_SEGMENTS, from_us
    )
    response = _playlist(
        vod_playlist(_items(ctx.store, segments), token_query(request), next_from),
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
    camera = ctx.check_camera(camera)
    now = ctx.clock()
    window = ctx.store.latest_segments(
        camera, max(0, now - ctx.live_lookback_us), now, ctx.live_segments
    )
    text = live_playlist(camera, _items(ctx.store, window), token_query(request), ctx.sequencer,
                         default_target=4)
    return _playlist(text, cache="no-store")
