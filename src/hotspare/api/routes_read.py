"""Reading a camera's recordings: segments, runs, timeline, and the segment files themselves."""

from __future__ import annotations

import os
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import FileResponse
from starlette.responses import MalformedRangeHeader, RangeNotSatisfiable

from hotspare.api.auth import PRINCIPAL_KEY, Principal, grant_of
from hotspare.api.context import Ctx, NodeContext
from hotspare.api.grants import check_grant
from hotspare.api.params import (
    CameraParam,
    FromParam,
    LimitParam,
    MaxGapParam,
    RunAfterParam,
    SegmentAfterParam,
    SegmentIdParam,
    ToParam,
    check_range_length,
    run_after,
    segment_after,
)
from hotspare.api.problems import CAMERA_RESPONSES, COMMON_RESPONSES, ApiError
from hotspare.api.roles import Role
from hotspare.api.serving import (
    bytes_response,
    node_spans,
    segment_unreadable,
    served_parts,
    stored_file_response,
)
from hotspare.store import mp4
from hotspare.store.models import SegmentInfo
from hotspare.store.served import Serve, half_frame_us
from hotspare.wire import (
    MAX_LIST_CAMERA_ROWS,
    MAX_LIST_CAMERAS,
    MAX_LIST_RANGE_US,
    MAX_PAGE_ROWS,
    MAX_SEGMENT_RANGE_US,
    MAX_SUMMARY_RANGE_US,
    MAX_TIMELINE_RUNS,
    MAX_TIMELINE_SEGMENTS,
    Problem,
    RunList,
    RunOut,
    SegmentList,
    SegmentLists,
    SegmentOut,
    TimelineOut,
    run_cursor,
    segment_cursor,
)

router = APIRouter(tags=["recordings"], responses=COMMON_RESPONSES)

_SEGMENT_RESPONSES: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "no segment with that id on this node"},
}


def _limits(max_range_us: int, **more: int) -> dict[str, Any]:
    """The route's limits in the spec, where a client (or a fuzzer) can read them."""
    return {"x-hotspare-limits": {"max_range_us": max_range_us, **more}}


def _asked_by_node(request: Request) -> bool:
    principal = request.scope.get(PRINCIPAL_KEY)
    return isinstance(principal, Principal) and principal.role is Role.NODE


@router.get(
    "/cameras/{camera}/segments",
    response_model=SegmentList,
    responses=CAMERA_RESPONSES,
    summary="Segments of a camera overlapping a time range, a page at a time",
    description=f"At most {MAX_SEGMENT_RANGE_US // 3_600_000_000} h per request for user tokens "
    "(`400 range_too_large`); at most `limit` segments per page, continued with `after` = the "
    "answer's `next`.",
    openapi_extra=_limits(MAX_SEGMENT_RANGE_US, max_rows=MAX_PAGE_ROWS),
)
def list_segments(
    ctx: Ctx,
    request: Request,
    camera: CameraParam,
    from_: FromParam = None,
    to: ToParam = None,
    limit: LimitParam = MAX_PAGE_ROWS,
    after: SegmentAfterParam = None,
) -> SegmentList:
    camera = ctx.check_camera(camera)
    from_us, to_us = ctx.time_range(from_, to)
    # Nodes are exempt from the range cap: re-insert asks a server from a buffered segment to now,
    # which may be days after a long outage. A page costs its rows (SQL limit), whatever the range.
    if not _asked_by_node(request):
        check_range_length(from_us, to_us, MAX_SEGMENT_RANGE_US, "the segment list")
    return _segment_page(ctx, camera, from_us, to_us, limit, segment_after(after))


def _segment_page(ctx: NodeContext, camera: str, from_us: int, to_us: int, limit: int,
                  after: tuple[int, int] | None = None) -> SegmentList:
    segments = ctx.store.list_segments(camera, from_us, to_us, limit=limit + 1, after=after)
    page = segments[:limit]
    more = len(segments) > limit
    return SegmentList(
        camera_id=camera,
        from_wall_us=from_us,
        to_wall_us=to_us,
        segments=[SegmentOut.of(s) for s in page],
        truncated=more,
        next=segment_cursor(page[-1].start_wall_us, page[-1].segment_id) if more else None,
    )


CamerasQuery = Annotated[
    list[str] | None,
    Query(description=f"a camera id; repeat for each camera (at most {MAX_LIST_CAMERAS})"),
]
ListLimitParam = Annotated[
    int,
    Query(ge=1, le=MAX_LIST_CAMERA_ROWS,
          description=f"at most this many segments per camera (at most {MAX_LIST_CAMERA_ROWS})"),
]


@router.get(
    "/segments",
    response_model=SegmentLists,
    responses=CAMERA_RESPONSES,
    summary="Segments of several cameras overlapping one short time range",
    description=f"One request for up to {MAX_LIST_CAMERAS} cameras (`?camera=a&camera=b`), each "
    f"answered as `GET /cameras/{{camera}}/segments` would, at most `limit` segments per camera; "
    f"the range at most {MAX_LIST_RANGE_US // 60_000_000} min for every credential "
    "(`400 range_too_large`). A spare's gap repair lists a server's pre-buffered cameras with it "
    "once a second (docs/failover.md, *Gap repair*).",
    openapi_extra=_limits(MAX_LIST_RANGE_US, max_rows=MAX_LIST_CAMERA_ROWS,
                          max_cameras=MAX_LIST_CAMERAS),
)
def list_cameras_segments(
    ctx: Ctx,
    camera: CamerasQuery = None,
    from_: FromParam = None,
    to: ToParam = None,
    limit: ListLimitParam = MAX_LIST_CAMERA_ROWS,
) -> SegmentLists:
    asked = list(dict.fromkeys(camera or ()))  # a camera named twice is listed once
    if not asked:
        raise ApiError(400, "no_camera", "`camera` is missing: name at least one camera "
                       "(`?camera=a&camera=b`)")
    if len(asked) > MAX_LIST_CAMERAS:
        raise ApiError(400, "too_many_cameras",
                       f"`camera` names {len(asked)} cameras; at most {MAX_LIST_CAMERAS} per "
                       "request: split them over several requests")
    cameras = [ctx.check_camera(c) for c in asked]  # every one before any is read
    from_us, to_us = ctx.time_range(from_, to)
    check_range_length(from_us, to_us, MAX_LIST_RANGE_US, "the multi-camera segment list")
    return SegmentLists(from_wall_us=from_us, to_wall_us=to_us, cameras=[
        _segment_page(ctx, name, from_us, to_us, limit) for name in cameras])


@router.get(
    "/cameras/{camera}/runs",
    response_model=RunList,
    responses=CAMERA_RESPONSES,
    summary="Runs (camera connections) of a camera overlapping a time range, a page at a time",
    description=f"At most {MAX_SUMMARY_RANGE_US // 86_400_000_000} d per request "
    "(`400 range_too_large`); at most `limit` runs per page, continued with `after` = the "
    "answer's `next`.",
    openapi_extra=_limits(MAX_SUMMARY_RANGE_US, max_rows=MAX_PAGE_ROWS),
)
def list_runs(
    ctx: Ctx,
    camera: CameraParam,
    from_: FromParam = None,
    to: ToParam = None,
    limit: LimitParam = MAX_PAGE_ROWS,
    after: RunAfterParam = None,
) -> RunList:
    camera = ctx.check_camera(camera)
    from_us, to_us = ctx.time_range(from_, to)
    check_range_length(from_us, to_us, MAX_SUMMARY_RANGE_US, "the run list")
    runs = ctx.store.list_runs(camera, from_us, to_us, limit=limit + 1, after=run_after(after))
    page = runs[:limit]
    more = len(runs) > limit
    return RunList(
        camera_id=camera,
        from_wall_us=from_us,
        to_wall_us=to_us,
        runs=[RunOut.of(r) for r in page],
        truncated=more,
        next=run_cursor(page[-1].started_wall_us, page[-1].run_id) if more else None,
    )


@router.get(
    "/cameras/{camera}/timeline",
    response_model=TimelineOut,
    responses=CAMERA_RESPONSES,
    summary="Recorded stretches and gaps of a camera, and who recorded each",
    description=f"At most {MAX_SUMMARY_RANGE_US // 86_400_000_000} d per request "
    f"(`400 range_too_large`). A range holding more than {MAX_TIMELINE_SEGMENTS} segments or "
    f"{MAX_TIMELINE_RUNS} runs is answered up to `next_from_wall_us` (`truncated`): ask again "
    "from there.",
    openapi_extra=_limits(
        MAX_SUMMARY_RANGE_US, max_segments=MAX_TIMELINE_SEGMENTS, max_runs=MAX_TIMELINE_RUNS
    ),
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
    check_range_length(from_us, to_us, MAX_SUMMARY_RANGE_US, "the timeline")
    caps = {"max_segments": MAX_TIMELINE_SEGMENTS, "max_spans": MAX_TIMELINE_RUNS}
    if max_gap_us is None:
        result = ctx.store.timeline(camera, from_us, to_us, **caps)
    else:
        result = ctx.store.timeline(camera, from_us, to_us, max_gap_us=max_gap_us, **caps)
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


RawParam = Annotated[bool, Query(description=(
    "the stored file byte for byte, whatever is served of it (the store's own copies and "
    "re-insert use this; its SHA-256 is the index's)"))]
EndParam = Annotated[int | None, Query(ge=0, le=2**62, description=(
    "serve only the frames starting before this wall time (µs since the epoch, UTC), the frame "
    "within half a frame of it excluded; playlists name such cuts"))]
PartParam = Annotated[Literal["all", "init", "media"], Query(description=(
    "`init`: only the init section (for an EXT-X-MAP), `media`: only the fragments after it"))]


@router.get(
    "/segments/{segment_id}/file",
    response_class=FileResponse,
    responses={
        **_SEGMENT_RESPONSES,
        200: {
            "content": {"video/mp4": {"schema": {"type": "string", "format": "binary"}}},
            "description": "the frames served of the segment (the whole file unless a later "
            "segment overlaps its tail), or the stored file with `raw=1`",
        },
        206: {
            "content": {
                "video/mp4": {"schema": {"type": "string", "format": "binary"}},
                "multipart/byteranges": {"schema": {"type": "string", "format": "binary"}},
            },
            "description": "the byte range asked for with `Range: bytes=a-b`; several ranges "
            "(`bytes=a-b,c-d`) of a stored file come as `multipart/byteranges`",
        },
        400: {"model": Problem, "description": "the `Range` header or the query is malformed"},
        409: {"model": Problem, "description": "every frame of the segment is served by other "
              "segments (it lies inside them): nothing of it is served; `raw=1` gives the file"},
        416: {"model": Problem, "description": "the range lies outside the file"},
        503: {"model": Problem, "description": "the disk cannot give the file back "
              "(`segment_unreadable`: an I/O error, with what to do)"},
    },
    summary="The segment's fMP4 file as served (each frame once); supports Range requests",
    description="By default the frames this node serves of the segment: a later segment that "
    "overlaps its tail (a spare's first segment after a takeover, a server's first after "
    "handback) serves those frames, so they are cut here (docs/design.md, decision 13). "
    "`end_us` asks for an explicit cut (what playlists list), `raw=1` for the stored bytes.",
)
def get_segment_file(ctx: Ctx, segment_id: SegmentIdParam, request: Request,
                     raw: RawParam = False, end_us: EndParam = None,
                     part: PartParam = "all") -> Response:
    segment = find_segment(ctx, segment_id)
    check_grant(grant_of(request.scope), segment.camera_id, segment.start_wall_us,
                segment.end_wall_us, what=f"segment {segment_id}")
    path = ctx.store.segment_file(segment)
    if raw and (end_us is not None or part != "all"):
        raise ApiError(400, "bad_query", "`raw=1` serves the stored file whole: leave out "
                       "`end_us` and `part`")
    end = None if raw else _served_end(ctx, segment, end_us)
    name = f"{segment.camera_id}-{segment.run_id}-{segment.seq:06d}"
    http_range = request.headers.get("range")
    if end is None and part == "all":
        try:
            file = path.open("rb")
        except FileNotFoundError:
            raise _file_gone(ctx, segment) from None
        except OSError as exc:
            raise segment_unreadable(segment, exc) from exc
        try:
            if http_range is not None:
                check_range(http_range, os.fstat(file.fileno()).st_size)
        except BaseException:
            file.close()
            raise
        try:
            return stored_file_response(file, request, {
                "Content-Disposition": f'inline; filename="{name}.mp4"',
                "X-Segment-SHA256": segment.sha256,
                "Cache-Control": "private, max-age=86400",
            })
        except OSError as exc:
            raise segment_unreadable(segment, exc) from exc
    try:
        served = served_parts(path, segment, end)
    except FileNotFoundError:
        raise _file_gone(ctx, segment) from None
    except OSError as exc:
        raise segment_unreadable(segment, exc) from exc
    except mp4.Mp4Error as exc:
        raise ApiError(500, "cannot_serve_segment",
                       f"segment {segment_id} ({segment.relpath}) cannot be served cut at "
                       f"{end}: {exc}; `raw=1` gives the stored file") from exc
    data = {"all": served.data, "init": served.init, "media": served.media}[part]
    if http_range is not None:
        check_range(http_range, len(data))
    suffix = "" if end is None else f"-{served.frames}frames"
    return bytes_response(data, request, {
        "Content-Disposition": f'inline; filename="{name}{suffix}.mp4"',
        "Cache-Control": "private, no-cache",
        "Hotspare-Served-Frames": str(served.frames),
    })


def _file_gone(ctx: NodeContext, segment: SegmentInfo) -> ApiError:
    """404 for a row whose file is not there: deleted since the row was read (re-insert moved a
    spare's copy to the server, retention removed it), or missing from the store."""
    if ctx.store.get_segment(segment.segment_id) is None:
        return ApiError(404, "unknown_segment",
                        f"segment {segment.segment_id} was removed from node "
                        f"{ctx.server_name!r} just now (re-inserted elsewhere or deleted by "
                        "retention); ask the playlist again")
    return ApiError(404, "file_missing",
                    f"segment {segment.segment_id} is indexed but its file {segment.relpath} is "
                    "missing; restart the node so it reconciles its store")


def _served_end(ctx: NodeContext, segment: SegmentInfo, end_us: int | None) -> int | None:
    """Where the served frames of `segment` end (None: the whole file): `end_us` when given,
    otherwise the node's served-span rule."""
    if end_us is None:
        span = node_spans(ctx.store, [segment])[0]
        if span.serve is Serve.NOTHING:
            raise ApiError(409, "not_served",
                           f"every frame of segment {segment.segment_id} is served by other "
                           f"segments of camera {segment.camera_id!r} (it lies inside them); "
                           "`raw=1` gives the stored file")
        return span.end_wall_us if span.serve is Serve.BEFORE else None
    if end_us - segment.start_wall_us <= half_frame_us(segment):
        raise ApiError(400, "nothing_served",
                       f"`end_us` {end_us} is not after segment {segment.segment_id}'s first "
                       f"frame (at {segment.start_wall_us}): no frame would be served")
    return None if end_us >= segment.end_wall_us else end_us
