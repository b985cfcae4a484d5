"""Protection changes: when one is an event, how it is worded, and the live route's auth."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from hotspare.api.app import API_PREFIX, create_app
from hotspare.api.routes_protection import protection_router
from hotspare.site.eligibility import Reason
from hotspare.site.protection_change import ADVICE, ServerProtectionState, describe_change
from hotspare.store.segment_store import SegmentStore

OK = ServerProtectionState(True, (), ())
BIG = ServerProtectionState(
    False, ("too_many_cameras",), ("rec-2 has 25 cameras; the most any licensed spare may take "
                                   "is 20",))
BIG_AND_DOWN = ServerProtectionState(
    False, ("too_many_cameras", "no_free_spare"), ("rec-2 has 25 cameras; …", "spare-a (down)"))


def test_every_reason_has_advice() -> None:
    assert set(ADVICE) == set(Reason)


def test_first_sight_announces_only_unprotected() -> None:
    assert describe_change("rec-1", None, OK) is None
    change = describe_change("rec-2", None, BIG)
    assert change is not None
    assert change.message.startswith("rec-2 is UNPROTECTED: rec-2 has 25 cameras")
    assert "To do: move cameras" in change.message
    assert change.data["reasons"] == ["too_many_cameras"] and change.data["was_protected"] is None


def test_same_codes_with_other_details_is_no_change() -> None:
    moved = ServerProtectionState(False, ("too_many_cameras",), ("rec-2 has 26 cameras; …",))
    assert describe_change("rec-2", BIG, moved) is None


def test_transitions_are_worded_for_the_operator() -> None:
    lost = describe_change("rec-1", OK, BIG_AND_DOWN)
    assert lost is not None and "now UNPROTECTED (was protected)" in lost.message
    assert "start the spares that are down" in lost.message
    changed = describe_change("rec-1", BIG_AND_DOWN, BIG)
    assert changed is not None and "still UNPROTECTED" in changed.message
    assert "no longer: no_free_spare" in changed.message
    back = describe_change("rec-1", BIG, OK)
    assert back is not None and back.message == "rec-1 is protected again (resolved: " \
                                                "too_many_cameras)"
    assert back.data["previous_reasons"] == ["too_many_cameras"]


def test_state_round_trips_through_json() -> None:
    assert ServerProtectionState.from_json(BIG_AND_DOWN.to_json()) == BIG_AND_DOWN


def test_protection_route_needs_the_token_and_reports_etcd_trouble(tmp_path: Path) -> None:
    from hotspare.coordination.errors import EtcdUnavailableError

    answers: list[Any] = [{"servers": []}]

    def source() -> dict[str, Any]:
        answer = answers[0]
        if isinstance(answer, Exception):
            raise answer
        return dict(answer)

    store = SegmentStore.open(tmp_path / "store", "rec-1")
    try:
        app = create_app(store, dict, "tok-123", "rec-1", set)
        app.include_router(protection_router(source), prefix=API_PREFIX)
        client = TestClient(app)
        url = f"{API_PREFIX}/site/protection"
        assert client.get(url).status_code == 401
        assert client.get(url, headers={"Authorization": "Bearer nope"}).status_code == 401
        auth = {"Authorization": "Bearer tok-123"}
        assert client.get(url, headers=auth).json() == {"servers": []}
        answers[0] = LookupError("this node has no site configuration yet")
        bad = client.get(url, headers=auth)
        assert bad.status_code == 503 and bad.json()["error"] == "no_site_configuration"
        answers[0] = EtcdUnavailableError(["127.0.0.1:1"], 1.0, "refused")
        bad = client.get(url, headers=auth)
        assert bad.status_code == 503 and bad.json()["error"] == "etcd_unavailable"
        spec = client.get("/openapi.json", headers=auth).json()
        assert spec["paths"][url]["get"]["security"]
    finally:
        store.close()
