"""The original's fencing decision on imports (api/fencing.py `ImportGate`), against the one fake
site state; the same decisions over HTTP, in every transport, are in test_hostile_import.py."""

from __future__ import annotations

import pytest

from hotspare.api.auth import Principal
from hotspare.api.fencing import ImportGate, ImportRefused
from hotspare.api.roles import Role
from hotspare.coordination.errors import FencingError
from hotspare.sitestate import layout
from tests.support.fake_site_state import FakeSite

SPARE_1 = Principal("spare-1", Role.NODE, node="spare-1")


def _claimed() -> tuple[FakeSite, ImportGate, int]:
    site = FakeSite()
    site.etcd.put_json(layout.claim("rec-1"), {"spare": "spare-1"})
    kv = site.etcd.kvs[layout.claim("rec-1")]
    return site, ImportGate(site, "rec-1", lambda: {"spare-1", "spare-2"}), kv.create_revision


def _refusal(gate: ImportGate, principal: Principal | None, fence: str | None) -> tuple[int, str]:
    with pytest.raises(ImportRefused) as refused:
        gate.admit(principal, fence)
    return refused.value.status, refused.value.error


def test_current_token_of_the_holder_passes_stale_and_foreign_are_refused() -> None:
    site, gate, token = _claimed()
    assert gate.admit(SPARE_1, layout.fence("rec-1", token)).node == "spare-1"
    assert _refusal(gate, SPARE_1, layout.fence("rec-1", token - 1)) == (409,
                                                                          "stale_fencing_token")
    assert _refusal(gate, SPARE_1, layout.fence("rec-2", token)) == (409, "stale_fencing_token")
    assert _refusal(gate, SPARE_1, None) == (409, "fencing_required")
    other = Principal("spare-2", Role.NODE, node="spare-2")
    assert _refusal(gate, other, layout.fence("rec-1", token)) == (403, "not_claim_holder")
    shared = Principal("node", Role.NODE)
    assert _refusal(gate, shared, layout.fence("rec-1", token)) == (403,
                                                                     "node_identity_required")
    site.record_buffer("rec-1", "spare-1", token)  # what spare-1's takeover writes, fenced
    site.etcd.delete(layout.claim("rec-1"))
    assert _refusal(gate, SPARE_1, layout.fence("rec-1", token)) == (409, "stale_fencing_token")
    # a leftover buffer's re-insert (no claim left anywhere) comes only from the spare that
    # recorded this server under an earlier claim
    assert gate.admit(SPARE_1, None).fencing is None
    assert _refusal(gate, other, None) == (403, "no_buffer_record")
    rec = Principal("rec-2", Role.NODE, node="rec-2")
    assert _refusal(gate, rec, None) == (403, "not_claim_holder")


def test_a_buffer_record_is_written_only_under_a_claim_and_ends_the_leftover_grant() -> None:
    site, gate, token = _claimed()
    spare_2 = Principal("spare-2", Role.NODE, node="spare-2")
    with pytest.raises(FencingError):  # spare-2 holds no claim: it cannot record a buffer
        site.record_buffer("rec-1", "spare-2", token + 1)
    site.record_buffer("rec-1", "spare-1", token)
    site.etcd.delete(layout.claim("rec-1"))
    with pytest.raises(FencingError):  # nor after the claim is gone, with its old token
        site.record_buffer("rec-1", "spare-2", token)
    assert _refusal(gate, spare_2, None) == (403, "no_buffer_record")
    assert gate.admit(SPARE_1, None).node == "spare-1"
    site.forget_buffer("rec-1", "spare-1", None)  # its buffer is re-inserted: the grant ends
    assert _refusal(gate, SPARE_1, None) == (403, "no_buffer_record")
    assert site.buffer_record("rec-1", "spare-1") is None


def test_etcd_unreachable_is_a_retryable_503_not_a_stale_token() -> None:
    """The bug this guards: a 409 here made the spare stand down and keep its claim."""
    site, gate, token = _claimed()
    site.etcd.down = True
    with pytest.raises(ImportRefused) as refused:
        gate.admit(SPARE_1, layout.fence("rec-1", token))
    assert (refused.value.status, refused.value.error) == (503, "fencing_unavailable")
    assert refused.value.headers == {"Retry-After": "1"}
    assert "rec-1" in refused.value.detail and "retried" in refused.value.detail
    assert _refusal(gate, SPARE_1, None) == (503, "fencing_unavailable")
    site.etcd.down = False
    assert gate.admit(SPARE_1, layout.fence("rec-1", token)).node == "spare-1"


def test_recheck_sees_a_claim_lost_after_admission() -> None:
    site, gate, token = _claimed()
    admission = gate.admit(SPARE_1, layout.fence("rec-1", token))
    admission.recheck()
    site.etcd.delete(layout.claim("rec-1"))
    with pytest.raises(ImportRefused) as refused:
        admission.recheck()
    assert refused.value.error == "stale_fencing_token"
