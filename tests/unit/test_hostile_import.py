"""A hostile client against a site recording server's import route (issue 11, item 4).

Real parts where they matter: the node's own app and auth middleware, a real SegmentStore on both
sides holding real fMP4 segments, the product's `ImportGate` reading claims through `EtcdSite` on
the fake etcd (tests/support/fake_site_state.py). Every refusal must leave the store exactly as it
was: no row, no file, nothing left in `incoming/`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from hotspare.api.app import create_app
from hotspare.api.fencing import ImportGate
from hotspare.sitestate import layout
from hotspare.sitestate.layout import FENCING_HEADER
from hotspare.sitestate.values import Claim
from hotspare.store.models import RunInfo, SegmentInfo
from hotspare.store.segment_store import SegmentStore
from hotspare.wire import META_HEADER, ImportMetaIn
from tests.support.api_node import CAMERA, SERVER, T0, TOKEN, record_run
from tests.support.fake_site_state import FakeSite

IMPORT_URL = f"/api/v1/cameras/{CAMERA}/segments/import"
OWN = {name: f"{name}-own-credential-0123456789abcdef" for name in ("spare-1", "spare-2", "rec-b")}
SPARES = {"spare-1", "spare-2"}


def _sha(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class LosesClaimAfter:
    """Reads claims from the fake etcd, and deletes the claim after `reads` reads: the claim is
    lost while the body streams, after the route's check and before the store's."""

    def __init__(self, site: FakeSite, server: str, reads: int) -> None:
        self.site = site
        self.server = server
        self.reads = reads

    def claim_of(self, server: str) -> Claim | None:
        claim = self.site.claim_of(server)
        self.reads -= 1
        if self.reads == 0:
            self.site.etcd.delete(layout.claim(self.server))
        return claim


@dataclass
class Rig:
    site: FakeSite
    store: SegmentStore  # the recording server's (rec-a)
    buffer: SegmentStore  # spare-1's buffer, recorded as rec-a
    run: RunInfo
    segments: list[SegmentInfo]
    client: TestClient
    token: int = 0  # the current fencing token of the claim on rec-a (0: no claim)

    def claim(self, spare: str = "spare-1") -> int:
        self.site.etcd.put_json(layout.claim(SERVER), {"spare": spare})
        self.token = self.site.etcd.kvs[layout.claim(SERVER)].create_revision
        return self.token

    def snapshot(self) -> tuple[list[int], list[str]]:
        rows = [s.segment_id for s in self.store.list_segments(CAMERA, 0, T0 + 3_600_000_000)]
        root = self.store.root
        files = sorted(str(p.relative_to(root)) for p in root.rglob("*.mp4"))
        incoming = root / "incoming"
        files += [str(p) for p in incoming.iterdir()] if incoming.exists() else []
        return rows, files


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    site = FakeSite()
    store = SegmentStore.open(tmp_path / "rec-a", SERVER)
    buffer = SegmentStore.open(tmp_path / "spare-1", "spare-1")
    run, segments = record_run(buffer, CAMERA, T0 + 20_000_000, 2, recorded_as=SERVER)
    identities = {_sha(token): name for name, token in OWN.items()}
    app = create_app(store, health=dict, token=TOKEN, server_name=SERVER,
                     known_cameras=lambda: {CAMERA}, clock=lambda: T0 + 60_000_000,
                     max_import_bytes=1 << 20, node_identities=lambda: identities)
    app.state.import_gate = ImportGate(site, SERVER, lambda: SPARES)
    try:
        with TestClient(app, base_url="http://node.test") as client:
            yield Rig(site, store, buffer, run, segments, client)
    finally:
        store.close()
        buffer.close()


def upload(rig: Rig, *, token: str = OWN["spare-1"], transport: str = "Bearer",
           fence: str | None = None, meta: ImportMetaIn | None = None,
           body: bytes | None = None) -> Response:
    segment = rig.segments[0]
    meta = meta or ImportMetaIn.of(segment, rig.run)
    body = rig.buffer.segment_file(segment).read_bytes() if body is None else body
    headers = {META_HEADER: meta.model_dump_json(), "Content-Type": "application/octet-stream"}
    params = {}
    if transport == "query":
        params["token"] = token
    else:
        headers["Authorization"] = f"{transport} {token}"
    if fence is not None:
        headers[FENCING_HEADER] = fence
    return rig.client.put(IMPORT_URL, content=body, headers=headers, params=params)


TRANSPORTS = ["Bearer", "bearer", "BEARER", "query"]


def test_the_claim_holder_imports_and_is_the_recorder(rig: Rig) -> None:
    token = rig.claim()
    for transport in TRANSPORTS:  # however the credential travels, the same node is known
        answer = upload(rig, transport=transport, fence=layout.fence(SERVER, token))
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"] in ("inserted", "duplicate")
    stored = rig.store.list_segments(CAMERA, 0, T0 + 3_600_000_000)
    assert [s.recorded_by for s in stored] == ["spare-1"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_stale_absent_or_foreign_fencing_is_refused_in_every_transport(
        rig: Rig, transport: str) -> None:
    token = rig.claim()
    before = rig.snapshot()
    cases = [
        (layout.fence(SERVER, token - 1), 409, "stale_fencing_token"),
        (layout.fence("rec-b", token), 409, "stale_fencing_token"),
        (f"{layout.claim(SERVER)}:not-a-number", 409, "stale_fencing_token"),
        (None, 409, "fencing_required"),
    ]
    for fence, status, error in cases:
        answer = upload(rig, transport=transport, fence=fence)
        assert (answer.status_code, answer.json()["error"]) == (status, error), (fence,
                                                                                answer.text)
        assert rig.snapshot() == before
    rig.site.etcd.delete(layout.claim(SERVER))  # the claim expired: its token is stale now
    answer = upload(rig, transport=transport, fence=layout.fence(SERVER, token))
    assert (answer.status_code, answer.json()["error"]) == (409, "stale_fencing_token")
    assert "gone" in answer.json()["detail"]
    assert rig.snapshot() == before


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_node_without_the_claim_cannot_import(rig: Rig, transport: str) -> None:
    token = rig.claim("spare-1")
    before = rig.snapshot()
    # spare-2 quotes spare-1's current token (a revision number is no secret)
    answer = upload(rig, token=OWN["spare-2"], transport=transport,
                    fence=layout.fence(SERVER, token))
    assert (answer.status_code, answer.json()["error"]) == (403, "not_claim_holder")
    assert "'spare-1'" in answer.json()["detail"] and "'spare-2'" in answer.json()["detail"]
    # the shared node token names no node: it may read, never import
    answer = upload(rig, token=TOKEN, transport=transport, fence=layout.fence(SERVER, token))
    assert (answer.status_code, answer.json()["error"]) == (403, "node_identity_required")
    rig.site.etcd.delete(layout.claim(SERVER))
    # no claim at all: a recording server has no buffer of rec-a's to re-insert
    answer = upload(rig, token=OWN["rec-b"], transport=transport)
    assert (answer.status_code, answer.json()["error"]) == (403, "not_claim_holder")
    assert rig.snapshot() == before


def test_a_leftover_buffer_is_taken_only_from_the_spare_that_recorded_it(rig: Rig) -> None:
    """Issue 11: a leftover re-insert (no claim) only from the spare whose takeover wrote
    `buffers/<server>/<spare>` under a claim, and only video it recorded itself."""
    token = rig.claim("spare-1")
    rig.site.record_buffer(SERVER, "spare-1", token)  # what spare-1's takeover writes, fenced
    rig.site.etcd.delete(layout.claim(SERVER))  # spare-1 restarted: its claim is long gone
    before = rig.snapshot()
    for transport in TRANSPORTS:
        # spare-2 is a spare of the site but never recorded rec-a: no record, nothing written
        answer = upload(rig, token=OWN["spare-2"], transport=transport)
        assert (answer.status_code, answer.json()["error"]) == (403, "no_buffer_record")
        assert "buffers/rec-a/spare-2" in answer.json()["detail"]
        # spare-1 has the record, but names another recorder than itself
        forged = ImportMetaIn.of(rig.segments[0], rig.run).model_copy(
            update={"recorded_by": "spare-2"})
        answer = upload(rig, transport=transport, meta=forged)
        assert (answer.status_code, answer.json()["error"]) == (403, "recorded_by_mismatch")
        assert rig.snapshot() == before
    answer = upload(rig)  # its buffer is not gone: spare-1 re-inserts it
    assert answer.status_code == 200 and answer.json()["status"] == "inserted", answer.text
    assert answer.json()["segment"]["recorded_by"] == "spare-1"


def test_a_leftover_upload_without_a_buffer_record_is_refused(rig: Rig) -> None:
    """Before issue 11's fix any spare of the site was taken while nobody held a claim."""
    before = rig.snapshot()
    for name in ("spare-1", "spare-2"):
        answer = upload(rig, token=OWN[name])
        assert (answer.status_code, answer.json()["error"]) == (403, "no_buffer_record")
    token = rig.claim("spare-1")
    rig.site.record_buffer(SERVER, "spare-1", token)
    rig.site.etcd.delete(layout.claim(SERVER))
    rig.site.forget_buffer(SERVER, "spare-1", None)  # re-inserted before: the grant is over
    answer = upload(rig)
    assert (answer.status_code, answer.json()["error"]) == (403, "no_buffer_record")
    assert rig.snapshot() == before


def test_a_forged_recorded_by_or_recorded_as_is_refused(rig: Rig) -> None:
    token = rig.claim()
    before = rig.snapshot()
    honest = ImportMetaIn.of(rig.segments[0], rig.run)
    for forged in (honest.model_copy(update={"recorded_by": "rec-b"}),
                   honest.model_copy(update={"recorded_by": "spare-2"}),
                   honest.model_copy(update={"recorded_as": "rec-b"})):
        answer = upload(rig, fence=layout.fence(SERVER, token), meta=forged)
        assert (answer.status_code, answer.json()["error"]) == (403, "recorded_by_mismatch")
        assert rig.snapshot() == before


def test_damaged_frames_are_refused_with_nothing_written(rig: Rig) -> None:
    token = rig.claim()
    before = rig.snapshot()
    good = rig.buffer.segment_file(rig.segments[0]).read_bytes()
    zeroed = good[:-100] + bytes(100)  # the box structure is intact, the last frame is not
    honest = ImportMetaIn.of(rig.segments[0], rig.run)
    meta = honest.model_copy(update={"sha256": hashlib.sha256(zeroed).hexdigest()})
    answer = upload(rig, fence=layout.fence(SERVER, token), meta=meta, body=zeroed)
    assert answer.status_code == 422, answer.text
    assert "frames are damaged" in answer.json()["detail"]
    assert rig.snapshot() == before


def test_a_claim_lost_while_the_body_streams_is_caught_in_the_index_transaction(
        rig: Rig) -> None:
    token = rig.claim()
    before = rig.snapshot()
    gate = rig.client.app.state.import_gate  # type: ignore[attr-defined]
    gate.claims = LosesClaimAfter(rig.site, SERVER, reads=1)  # gone after the route's check
    answer = upload(rig, fence=layout.fence(SERVER, token))
    assert (answer.status_code, answer.json()["error"]) == (409, "stale_fencing_token")
    assert "nothing was written" in answer.json()["detail"]
    assert rig.snapshot() == before


def test_etcd_unreachable_is_a_retryable_503_and_nothing_is_written(rig: Rig) -> None:
    token = rig.claim()
    before = rig.snapshot()
    rig.site.etcd.down = True
    for fence in (layout.fence(SERVER, token), None):
        answer = upload(rig, fence=fence)
        assert (answer.status_code, answer.json()["error"]) == (503, "fencing_unavailable")
        assert answer.headers["retry-after"] == "1"
    assert rig.snapshot() == before
    rig.site.etcd.down = False
    assert upload(rig, fence=layout.fence(SERVER, token)).status_code == 200


def test_wrong_credentials_cost_no_etcd_read(rig: Rig) -> None:
    token = rig.claim()
    reads = rig.site.etcd.reads
    for transport in TRANSPORTS:
        answer = upload(rig, token="not-a-credential-of-this-site", transport=transport,
                        fence=layout.fence(SERVER, token))
        assert answer.status_code == 401
    assert rig.site.etcd.reads == reads


def test_runtime_keys_naming_another_url_are_ignored_and_reported(
        caplog: pytest.LogCaptureFixture) -> None:
    """Issue 11, item 3: whoever writes etcd must not be able to point the master's requests
    (and the credential they carry) at a listener of their own."""
    from hotspare.api.site_state import SiteSnapshot, endpoints_view, holders, owner_of
    from hotspare.sitestate.values import Owner, ReinsertProgress, SpareRecord
    from tests.support.site_api import REC2, SPARE, site_config

    config = site_config()
    evil = "http://listener.evil:9999"
    snap = SiteSnapshot(
        claims={"rec-2": Claim("spare-1", evil, 1, 0, 7)},
        owners={"rec-2": Owner("spare-1", evil, 7)},
        spares={"spare-1": SpareRecord("covering", evil, "rec-2")},
        reinsert={"rec-2": {"spare-1": ReinsertProgress("spare-1", evil, 0)}},
    )
    with caplog.at_level("WARNING", logger="hotspare.api.site_state"):
        assert owner_of("rec-2", config, snap) == ("spare-1", SPARE)
        assert holders("rec-2", config, snap) == {"rec-2": REC2, "spare-1": SPARE}
        assert evil not in str(endpoints_view(config, snap))
    assert "listener.evil" in caplog.text and "ignored" in caplog.text
    # a claim by a node the site does not list gives no URL at all: the server's own is used
    stranger = SiteSnapshot(claims={"rec-2": Claim("intruder", evil, 1, 0, 8)})
    assert owner_of("rec-2", config, stranger) == ("rec-2", REC2)
