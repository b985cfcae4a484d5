"""Schemathesis against the node API's own OpenAPI document, in process (ASGI, no network).

The API promises that bad input never causes a 500 and that answers match the spec (docs/api.md,
"Errors"). Hand-written tests only try the inputs their author thought of; this fuzzes every
operation from the spec with a fixed seed, so a failure reproduces and the run stays bounded.

The store holds real fMP4 segments (`tests.support.api_node.record_run`) and the cases are steered
onto them (`tests.support.api_fuzz`), so generated requests reach the store, the MP4 parsing and
the HLS builder rather than stopping at "unknown camera".
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from schemathesis.schemas import BaseSchema

from hotspare.api.app import create_app
from hotspare.store.segment_store import SegmentStore
from hotspare.wire import ImportMetaIn
from tests.support.api_fuzz import ImportSource, fuzz
from tests.support.api_node import AUTH, CAMERA, SERVER, T0, TOKEN, record_run

OPERATIONS = [
    ("GET", "/api/v1/health"),
    ("GET", "/api/v1/cameras/{camera}/segments"),
    ("GET", "/api/v1/cameras/{camera}/runs"),
    ("GET", "/api/v1/cameras/{camera}/timeline"),
    ("GET", "/api/v1/segments"),
    ("GET", "/api/v1/segments/{segment_id}"),
    ("GET", "/api/v1/segments/{segment_id}/file"),
    ("GET", "/api/v1/cameras/{camera}/playback.m3u8"),
    ("GET", "/api/v1/cameras/{camera}/live.m3u8"),
    ("PUT", "/api/v1/cameras/{camera}/segments/import"),
    ("GET", "/metrics"),
]


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

