"""Reading a camera's recordings: segments, runs, timeline, and the segment files themselves."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse
from starlette.responses import MalformedRangeHeader, RangeNotSatisfiable

from hotspare.api.context import Ctx, NodeContext
from hotspare.api.params import (
    CameraParam,
    FromParam,
    LimitParam,
    MaxGapParam,
    SegmentIdParam,
    ToParam,
)
from hotspare.api.problems import CAMERA_RESPONSES, COMMON_RESPONSES, ApiError
from hotspare.store.models import SegmentInfo
from hotspare.wire import Problem, RunList, RunOut, SegmentList, SegmentOut, TimelineOut

router = APIRouter(tags=["recordings"], responses=COMMON_RESPONSES)

_SEGMENT_RESPONSES: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "no segment with that id on this node"},
}


@router.get(
    "/cameras/{camera}/segments",
    response_model=SegmentList,
    responses=CAMERA_RESPONSES,
    summary="Segments of a camera overlapping a time range",
)
def list_segments(
    ctx: Ctx,
    camera: CameraParam,
    from_: FromParam = None,
    to: ToParam = None,
    limit: LimitParam = 10_000,
) -> SegmentList:
    camera = ctx.check_camera(camera)
    from_us, to_us = ctx.time_range(from_, to)
    segments = ctx.store.list_segments(camera, from_us, to_us)
    return SegmentList(
        camera_id=camera,
        from_wall_us=from_us,
        to_wall_us=to_us,
        segments=[SegmentOut.of(s) for s in segments[:limit]],
        truncated=len(segments) > limit,
    )


@router.get(
    "/cameras/{camera}/runs",
    response_model=RunList,
    responses=CAMERA_RESPONSES,
    summary="Runs (camera connections) of a camera overlapping a time range",
)
def list_runs(
    ctx: Ctx, camera: CameraParam, from_: FromParam = None, to: ToParam = None
) -> RunList:
    camera = ctx.check_camera(camera)
    from_us, to_us = ctx.time_range(from_, to)
    runs = ctx.store.list_runs(camera, from_us, to_us)
    return RunList(
        camera_id=camera, from_wall_us=from_us, to_wall_us=to_us, runs=[RunOut.of(r) for r in runs]
    )


@router.get(
    "/cameras/{camera}/timeline",
    response_model=TimelineOut,
    responses=CAMERA_RESPONSES,
    summary="Recorded stretches and gaps of a camera, and who recorded each",
)
def timeline(
    ctx: Ctx,
    camera: CameraParam,
    from_: FromParam = None,
    to: ToParam = None,
    max_gap_us: MaxGapParam = None,
) -> TimelineOut:
    camera = ctx.check_camera(camera)
    from_us, to_us = ctx.time_range(from_, to)
    if max_gap_us is None:
        result = ctx.store.timeline(camera, from_us, to_us)
    else:
        result = ctx.store.timeline(camera, from_us, to_us, max_gap_us=max_gap_us)
    return TimelineOut.of(result)


def check_range(http_range: str, file_size: int) -> None:
    """Refuse a bad `Range` with our Problem body before FileResponse sees it.

    FileResponse answers a malformed range with a text/plain 400 and an unsatisfiable one with an
    empty text/plain 416 — neither in the documented error shape (found by fuzzing). Parsing with
    FileResponse's own parser keeps what we accept identical to what it then serves.
    """
    try:
        FileResponse._parse_range_header(http_range, file_size)
    except MalformedRangeHeader as exc:
        raise ApiError(
            400,
            "bad_range_header",
            f"Range header {http_range[:60]!r} is malformed ({exc.content}); "
            "send e.g. `Range: bytes=0-1023`",
        ) from exc
    except RangeNotSatisfiable as exc:
        raise ApiError(
            416,
            "range_not_satisfiable",
            f"Range header {http_range[:60]!r} starts outside the file ({file_size} bytes)",
            headers={"Content-Range": f"bytes */{file_size}"},
        ) from exc


def find_segment(ctx: NodeContext, segment_id: int) -> SegmentInfo:
    segment = ctx.store.get_segment(segment_id)
    if segment is None:
        raise ApiError(
            404,
            "unknown_segment",
            f"no segment {segment_id} on node {ctx.server_name!r}; it may have been "
            "removed by retention, or the id belongs to another node",
        )
    return segment


@router.get(
    "/segments/{segment_id}",
    response_model=SegmentOut,
    responses=_SEGMENT_RESPONSES,
    summary="One segment's index row",
)
def get_segment(ctx: Ctx, segment_id: SegmentIdParam) -> SegmentOut:
    return SegmentOut.of(find_segment(ctx, segment_id))


@router.get(
    "/segments/{segment_id}/file",
    response_class=FileResponse,
    responses={
        **_SEGMENT_RESPONSES,
        200: {
            "content": {"video/mp4": {"schema": {"type": "string", "format": "binary"}}},
            "description": "the whole file",
        },
        206: {
            "content": {
                "video/mp4": {"schema": {"type": "string", "format": "binary"}},
                "multipart/byteranges": {"schema": {"type": "string", "format": "binary"}},
            },
            "description": "the byte range asked for with `Range: bytes=a-b`; several ranges "
            "(`bytes=a-b,c-d`) come as `multipart/byteranges`",
        },
        400: {"model": Problem, "description": "the `Range` header is malformed"},
        416: {"model": Problem, "description": "the range lies outside the file"},
    },
    summary="The segment's fMP4 file; supports Range requests",
)
def get_segment_file(ctx: Ctx, segment_id: SegmentIdParam, request: Request) -> FileResponse:
    segment = find_segment(ctx, segment_id)
    path = ctx.store.segment_file(segment)
    if not path.is_file():
        raise ApiError(
            404,
            "file_missing",
            f"segment {segment_id} is indexed but its file {segment.relpath} is missing; "
            "restart the node so it reconciles its store",
        )
    http_range = request.headers.get("range")
    if http_range is not None:
        check_range(http_range, path.stat().st_size)
    return FileResponse(
        path,
        media_type="video/mp4",
        filename=f"{segment.camera_id}-{segment.run_id}-{segment.seq:06d}.mp4",
        content_disposition_type="inline",
        headers={"X-Segment-SHA256": segment.sha256, "Cache-Control": "private, max-age=86400"},
    )
