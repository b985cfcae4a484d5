"""Schemathesis against the node API's own OpenAPI document, in process (ASGI, no network).

The API promises that bad input never causes a 500 and that answers match the spec (docs/api.md,
"Errors"). Hand-written tests only try the inputs their author thought of; this fuzzes every
operation from the spec with a fixed seed, so a failure reproduces and the run stays bounded.

The store holds real fMP4 segments (test_api_support's `record_run`), so generated requests reach
the store, the MP4 parsing and the HLS builder rather than stopping at "unknown camera".
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import Case, GenerationMode
from schemathesis.checks import CheckFunction, not_a_server_error
from schemathesis.schemas import APIOperation, BaseSchema
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from test_api_support import AUTH, CAMERA, SERVER, T0, TOKEN, record_run

from hotspare.api.app import create_app
from hotspare.api.schemas import META_HEADER, ImportMetaIn
from hotspare.store.segment_store import SegmentStore

# HOTSPARE_FUZZ_EXAMPLES=500 runs a longer search locally; CI keeps the bounded default.
MAX_EXAMPLES = int(os.environ.get("HOTSPARE_FUZZ_EXAMPLES", "40"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


OPERATIONS = [
    ("GET", "/api/v1/health"),
    ("GET", "/api/v1/cameras/{camera}/segments"),
    ("GET", "/api/v1/cameras/{camera}/runs"),
    ("GET", "/api/v1/cameras/{camera}/timeline"),
    ("GET", "/api/v1/segments/{segment_id}"),
    ("GET", "/api/v1/segments/{segment_id}/file"),
    ("GET", "/api/v1/cameras/{camera}/playback.m3u8"),
    ("GET", "/api/v1/cameras/{camera}/live.m3u8"),
    ("PUT", "/api/v1/cameras/{camera}/segments/import"),
    ("GET", "/metrics"),
]


@dataclass
class ImportSource:
    """Segments a sender (a spare) really recorded for cam-2, so imports reach the importer."""

    metas: list[dict[str, Any]]
    bodies: list[bytes]


@pytest.fixture
def node_schema(tmp_path: Path) -> Iterator[BaseSchema]:
    """A standalone node over a store with two runs of real segments, loaded through its spec."""
    store = SegmentStore.open(tmp_path / "store", SERVER)
    record_run(store, CAMERA, T0, 3)
    record_run(store, CAMERA, T0 + 5_000_000, 2, end=False)
    app = create_app(
        store,
        health=lambda: {CAMERA: {"state": "recording", "last_frame_wall_us": T0,
                                 "last_commit_wall_us": T0, "run_id": 1, "error": None}},
        token=TOKEN,
        server_name=SERVER,
        known_cameras=lambda: {CAMERA, "cam-2"},
        clock=lambda: T0 + 60_000_000,
        max_import_bytes=1 << 20,
    )
    yield schemathesis.openapi.from_asgi("/openapi.json", app, headers=AUTH)
    store.close()


@pytest.fixture
def import_source(tmp_path: Path) -> Iterator[ImportSource]:
    sender = SegmentStore.open(tmp_path / "sender", "spare-1")
    # shade: not byte-identical to the node's own cam-1 files (see docs/api.md, "Fuzzing").
    run, segments = record_run(sender, "cam-2", T0 + 20_000_000, 3, recorded_as=SERVER, shade=1)
    yield ImportSource(
        [ImportMetaIn.of(seg, run).model_dump() for seg in segments],
        [sender.segment_file(seg).read_bytes() for seg in segments],
    )
    sender.close()


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


def test_operations_list_covers_the_spec(node_schema: BaseSchema) -> None:
    """A new route must be added to OPERATIONS, or it would silently go unfuzzed."""
    spec = {(method.upper(), path) for path, item in node_schema.raw_schema["paths"].items()
            for method in item}
    assert spec == set(OPERATIONS)


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_node_api_fuzz(
    node_schema: BaseSchema, import_source: ImportSource, method: str, path: str
) -> None:
    fuzz(node_schema[path][method], source=import_source)


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_node_api_fuzz_with_a_wrong_token(node_schema: BaseSchema, method: str, path: str) -> None:
    """The auth middleware answers before routing: its 401 must be documented and well-shaped."""
    fuzz(node_schema[path][method], max_examples=5,
         headers={"Authorization": "Bearer not-the-token"})

