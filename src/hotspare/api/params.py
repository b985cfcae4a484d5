"""Query and path parameters shared by routes, declared with types and bounds.

Declaring them in one place keeps the OpenAPI spec exact, which is what lets a fuzzer
(schemathesis) find inputs that crash a route rather than inputs the spec never allowed.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query

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
LimitParam = Annotated[int, Query(ge=1, le=100_000, description="at most this many items")]
MaxGapParam = Annotated[
    int | None,
    Query(
        ge=0,
        le=86_400_000_000,
        description="holes shorter than this (µs) are not gaps; default: about one frame",
    ),
]
