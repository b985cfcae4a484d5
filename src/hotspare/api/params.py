"""Query and path parameters shared by routes, declared with types and bounds.

Declaring them in one place keeps the OpenAPI spec exact, which is what lets a fuzzer
(schemathesis) find inputs that crash a route rather than inputs the spec never allowed.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query

from hotspare.api.problems import ApiError
from hotspare.wire import (
    MAX_PAGE_ROWS,
    RANGE_TOO_LARGE,
    RUN_CURSOR_PATTERN,
    SEGMENT_CURSOR_PATTERN,
    describe_us,
)

_TIME_DOC = (
    "microseconds since the Unix epoch (UTC), e.g. `1764104400000000`, or ISO-8601 with a "
    "zone, e.g. `2026-11-25T21:00:00Z`"
)

FromParam = Annotated[
    str | None,
    Query(
        alias="from",
        min_length=1,
        max_length=40,
        description=f"start of the range: {_TIME_DOC}; default: one hour before `to`",
    ),
]
ToParam = Annotated[
    str | None,
    Query(
        alias="to",
        min_length=1,
        max_length=40,
        description=f"end of the range: {_TIME_DOC}; default: now",
    ),
]
CameraParam = Annotated[
    str,
    Path(
        min_length=1,
        max_length=100,
        description="camera id: lower-case letters, digits, '-' and '_' (at most 63)",
    ),
]
SegmentIdParam = Annotated[int, Path(ge=1, le=2**63 - 1, description="segment id on this node")]
LimitParam = Annotated[
    int,
    Query(ge=1, le=MAX_PAGE_ROWS, description=f"at most this many items (at most {MAX_PAGE_ROWS})"),
]
SegmentAfterParam = Annotated[
    str | None,
    Query(
        max_length=40,
        pattern=SEGMENT_CURSOR_PATTERN,
        description="the `next` of the previous page (same `from`, `to`): continue after it",
    ),
]
RunAfterParam = Annotated[
    str | None,
    Query(
        max_length=90,
        pattern=RUN_CURSOR_PATTERN,
        description="the `next` of the previous page (same `from`, `to`): continue after it",
    ),
]
_INT64 = 2**63 - 1


def segment_after(text: str | None) -> tuple[int, int] | None:
    """`after` of a segment page: the previous page's last (start_wall_us, segment_id)."""
    if text is None:
        return None
    start, _, segment_id = text.partition(":")
    return min(int(start), _INT64), min(int(segment_id), _INT64)


def run_after(text: str | None) -> tuple[int, str] | None:
    """`after` of a run page: the previous page's last (started_wall_us, run_id)."""
    if text is None:
        return None
    start, _, run_id = text.partition(":")
    return min(int(start), _INT64), run_id


def check_range_length(from_us: int, to_us: int, max_us: int, what: str) -> None:
    """Refuse a range longer than `what` allows, saying the limit and how to ask instead."""
    if to_us - from_us <= max_us:
        return
    raise ApiError(
        400,
        RANGE_TOO_LARGE,
        f"the range asked is {describe_us(to_us - from_us)} long; {what} answers at most "
        f"{describe_us(max_us)} per request: ask consecutive ranges with `from` and `to`",
    )
MaxGapParam = Annotated[
    int | None,
    Query(
        ge=0,
        le=86_400_000_000,
        description="holes shorter than this (µs) are not gaps; default: about one frame",
    ),
]
