"""What a node serves of its segments: the served-span rule (hotspare.store.served) applied to its
own store, and the bytes of a segment served up to a cut.

A segment's served span depends on its neighbours, also those outside the range a playlist or a
page lists (a segment starting just after `to` still cuts the last listed one's tail), so the rule
is applied to the listed segments plus the ones overlapping their edges.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

from fastapi import Request, Response
from fastapi.responses import FileResponse, StreamingResponse
from starlette.background import BackgroundTask

from hotspare.api.problems import ApiError
from hotspare.store import mp4
from hotspare.store.disk_errors import disk_read_advice
from hotspare.store.models import SegmentInfo
from hotspare.store.segment_store import SegmentStore
from hotspare.store.served import ServedSpan, segment_spans
from hotspare.store.served_file import ServedFile, served_file

_EDGE_ROWS = 64  # neighbours read at each edge; far more than can overlap one instant

log = logging.getLogger("hotspare.api.serving")


def segment_unreadable(segment: SegmentInfo, exc: OSError) -> ApiError:
    """503 for a segment the disk cannot give back (EIO on a bad sector, ...): a problem naming
    the segment and what to do, logged for the operator, instead of a traceback and a 500."""
    detail = (f"segment {segment.segment_id} ({segment.relpath}) of camera {segment.camera_id} "
              f"cannot be read from disk: {exc.strerror or exc}; {disk_read_advice(exc)}")
    log.warning("%s", detail)
    return ApiError(503, "segment_unreadable", detail)


def node_spans(store: SegmentStore,
               segments: Sequence[SegmentInfo]) -> list[ServedSpan[SegmentInfo]]:
    """The served span of each of `segments` (one camera's, from `store`), in their order."""
    if not segments:
        return []
    camera = segments[0].camera_id
    first = min(s.start_wall_us for s in segments)
    last_start = max(s.start_wall_us for s in segments)
    last_end = max(s.end_wall_us for s in segments)
    context = {s.segment_id: s for s in segments}
    for s in store.list_segments(camera, first, first + 1, limit=_EDGE_ROWS):
        context.setdefault(s.segment_id, s)
    if last_end > last_start + 1:
        for s in store.list_segments(camera, last_start + 1, last_end, limit=_EDGE_ROWS):
            context.setdefault(s.segment_id, s)
    ordered = sorted(context.values(), key=lambda s: (s.start_wall_us, s.segment_id))
    by_id = {span.segment.segment_id: span for span in segment_spans(ordered)}
    return [by_id[s.segment_id] for s in segments]


def served_parts(path: Path, segment: SegmentInfo, end_wall_us: int | None) -> ServedFile:
    """The served form of a segment: cut at `end_wall_us`, or the whole stored file (None)."""
    if end_wall_us is not None:
        return served_file(path, segment, end_wall_us)
    data = path.read_bytes()
    if len(data) < segment.init_bytes:
        raise mp4.Mp4Error(f"file is {len(data)} bytes, shorter than its init section")
    return ServedFile(data[: segment.init_bytes], data[segment.init_bytes :], segment.frame_count,
                      segment.duration_90k)


def bytes_response(data: bytes, request: Request, headers: dict[str, str]) -> Response:
    """`data` as video/mp4, honouring a single-range `Range` (as FileResponse does for files;
    several ranges get the whole body, which HTTP allows). The caller has checked the header."""
    headers = {**headers, "Accept-Ranges": "bytes"}
    http_range = request.headers.get("range")
    if http_range is not None:
        ranges = FileResponse._parse_range_header(http_range, len(data))
        if len(ranges) == 1:
            start, end = ranges[0]
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{len(data)}"
            return Response(data[start:end], status_code=206, media_type="video/mp4",
                            headers=headers)
    return Response(data, media_type="video/mp4", headers=headers)


_CHUNK = 256 * 1024


def stored_file_response(file: BinaryIO, request: Request, headers: dict[str, str]) -> Response:
    """A stored file sent from a descriptor the caller opened, which this response closes.

    Re-insert deletes a spare's copy once the server holds it, and retention deletes old video,
    both while a player may be fetching it: sending by path (FileResponse) then failed half-way
    with a 500 and a closed connection. An open descriptor keeps the data readable on POSIX until
    it is closed, and Windows refuses to delete an open file, so the answer stays whole.
    """
    size = os.fstat(file.fileno()).st_size
    headers = {**headers, "Accept-Ranges": "bytes"}
    http_range = request.headers.get("range")
    ranges = FileResponse._parse_range_header(http_range, size) if http_range else []
    if len(ranges) == 1:
        start, end = ranges[0]
        try:
            file.seek(start)
            data = file.read(end - start)
        finally:
            file.close()
        headers["Content-Range"] = f"bytes {start}-{start + len(data) - 1}/{size}"
        return Response(data, status_code=206, media_type="video/mp4", headers=headers)

    # The first block is read before answering, so a file the disk cannot give back is refused
    # with a problem (the caller's OSError) rather than a 200 cut short.
    try:
        first = file.read(min(_CHUNK, size))
    except BaseException:
        file.close()
        raise

    def chunks() -> Iterator[bytes]:
        left = size - len(first)
        yield first
        while left > 0:
            try:
                block = file.read(min(_CHUNK, left))
            except OSError as exc:  # headers are sent: all we can do is end it short and say so
                log.warning("%s: read failed after %d of %d bytes were sent: %s; %s",
                            getattr(file, "name", "a segment file"), size - left, size, exc,
                            disk_read_advice(exc))
                return
            if not block:
                return
            left -= len(block)
            yield block

    headers["Content-Length"] = str(size)
    return StreamingResponse(chunks(), media_type="video/mp4", headers=headers,
                             background=BackgroundTask(file.close))
