"""Fuzzing one API operation with schemathesis, steered onto real data, for the API fuzz tests.

`fuzz` runs one operation's generated cases with a fixed seed (so a failure replays). Most cases
are steered onto the store's real cameras, segment ids and times (`tests.support.api_node`'s
`record_run` layout), and imports onto a sender's real segments (`ImportSource`), so generated
requests reach the store, the MP4 parsing and the HLS builder rather than stopping at
"unknown camera". Used by test_api_fuzz (the node API) and test_site_api_fuzz (the site API).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import Case, GenerationMode
from schemathesis.checks import CheckFunction, not_a_server_error
from schemathesis.schemas import APIOperation
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from hotspare.wire import META_HEADER
from tests.support.api_node import AUTH, CAMERA, T0

# HOTSPARE_FUZZ_EXAMPLES=500 runs a longer search locally; CI keeps the bounded default.
MAX_EXAMPLES = int(os.environ.get("HOTSPARE_FUZZ_EXAMPLES", "40"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@dataclass
class ImportSource:
    """Segments a sender (a spare) really recorded for cam-2, so imports reach the importer."""

    metas: list[dict[str, Any]]
    bodies: list[bytes]


# Generated camera ids almost never name a recorded camera, and generated times almost never fall
# on T0, so most cases are steered onto the store's real cameras, segments and times; the others
# keep what schemathesis generated.
TIMES = st.one_of(
    st.integers(T0 - 2_000_000, T0 + 10_000_000).map(str),
    st.integers(-(1 << 70), 1 << 70).map(str),
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30),
                 timezones=st.just(UTC)).map(lambda d: d.isoformat()),
    st.just("2025-11-25T21:00:00.200+01:00"),
    st.sampled_from(["²", "٣", "１２３", " 1 ", "-5", "1e6", "0x10"]),  # '²'.isdigit() is True
)
RANGES = st.one_of(
    st.tuples(st.integers(0, 1 << 16), st.integers(0, 1 << 16)).map(
        lambda r: f"bytes={r[0]}-{r[1]}"
    ),
    st.integers(0, 1 << 16).map(lambda n: f"bytes={n}-"),
    st.integers(0, 1 << 16).map(lambda n: f"bytes=-{n}"),
    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=20).map(
        lambda t: "bytes=" + t
    ),
    st.just("bytes=0-9,20-29"),
    st.just("items=0-9"),
)


META_FIELDS = ["seq", "start_wall_us", "start_media_90k", "duration_90k", "frame_count",
               "init_bytes", "anchor_wall_us", "bytes"]


@st.composite
def import_payload(draw: st.DrawFn, source: ImportSource) -> tuple[dict[str, Any], bytes]:
    """A real segment's metadata and file, then maybe one field nudged or the body cut/flipped."""
    i = draw(st.integers(0, len(source.metas) - 1))
    meta, body = dict(source.metas[i]), source.bodies[i]
    if draw(st.booleans()):
        name = draw(st.sampled_from(META_FIELDS))
        meta[name] = max(0, meta[name] + draw(st.integers(-3, 3)) * draw(
            st.sampled_from([1, 10, 3600, 90_000, 1_000_000])))
    if draw(st.booleans()):
        meta["run_id"] = draw(st.sampled_from([meta["run_id"], "other-run", "r"]))
        meta["sha256"] = draw(st.sampled_from([meta["sha256"], hashlib.sha256(b"").hexdigest()]))
    cut = draw(st.sampled_from([None, 0, 8, meta["init_bytes"], len(body) - 1]))
    if cut is not None:
        body = body[:cut]
    if draw(st.booleans()):
        at = draw(st.integers(0, max(0, len(body) - 1)))
        body = body[:at] + bytes([body[at] ^ 0xFF]) + body[at + 1:] if body else body
    return meta, body


@st.composite
def steered(
    draw: st.DrawFn,
    operation: APIOperation,
    cameras: tuple[str, ...] = (CAMERA, "cam-2"),
    source: ImportSource | None = None,
) -> Case:
    """A generated case, with some of its values replaced by ones that reach real data."""
    # Negative cases (values outside the declared types and bounds) must answer 4xx, never 5xx.
    case: Case = draw(st.one_of(operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
                                operation.as_strategy(generation_mode=GenerationMode.NEGATIVE)))
    path = case.path_parameters if case.path_parameters is not None else {}
    query = case.query if case.query is not None else {}
    if "camera" in path and draw(st.integers(0, 3)) > 0:  # most checks come after the camera's
        path["camera"] = draw(st.sampled_from(cameras))
    if "segment_id" in path and draw(st.booleans()):
        path["segment_id"] = draw(st.integers(1, 6))
    declared = {p.get("name") for p in operation.definition.raw.get("parameters", [])}
    for name in ("from", "to"):
        if name in declared and draw(st.booleans()):
            query[name] = draw(TIMES)
    if "after" in declared and draw(st.booleans()):  # a cursor inside the recordings: paging
        query["after"] = f"{draw(st.integers(T0 - 1_000_000, T0 + 6_000_000))}:" + draw(
            st.sampled_from(["1", "3", "6", "0", "r0"]))
        if "limit" in declared and draw(st.booleans()):
            query["limit"] = draw(st.integers(1, 3))
    case.query = query
    if operation.path.endswith("/file") and draw(st.booleans()):
        case.headers = {**(case.headers or {}), "Range": draw(RANGES)}
    if source is not None and operation.path.endswith("/import") and draw(st.booleans()):
        meta, case.body = draw(import_payload(source))
        path["camera"] = "cam-2"
        case.headers = {**(case.headers or {}), META_HEADER: json.dumps(meta)}
        case.media_type = "application/octet-stream"
    return case


def fuzz(operation: APIOperation, cameras: tuple[str, ...] = (CAMERA, "cam-2"),
         max_examples: int = MAX_EXAMPLES, checks: list[CheckFunction] = CHECKS,
         source: ImportSource | None = None, headers: dict[str, str] = AUTH) -> None:
    """Run one operation's generated cases; the seed is fixed (derandomize) so failures replay."""

    @given(case=steered(operation, cameras, source))
    @settings(max_examples=max_examples, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck), print_blob=False)
    def run(case: Case) -> None:
        case.call_and_validate(headers=headers, checks=checks)

    run()
