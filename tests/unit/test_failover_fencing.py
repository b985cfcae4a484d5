"""The original's fencing check on imports (api/fencing.py), against the one fake site state."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient
from httpx import Response

from hotspare.api.fencing import FencingMiddleware
from hotspare.sitestate import layout
from hotspare.sitestate.layout import FENCING_HEADER
from tests.support.fake_site_state import FakeSite


def _client(site: FakeSite) -> TestClient:
    app = FastAPI()

    @app.put("/import")
    def accept() -> dict[str, str]:
        return {"status": "inserted"}

    app.add_middleware(FencingMiddleware, claims=site, server="rec-1", token="tok")
    return TestClient(app)


def put(client: TestClient, fence: str | None, token: str = "tok") -> Response:
    headers = {"Authorization": f"Bearer {token}"}
    if fence is not None:
        headers[FENCING_HEADER] = fence
    return client.put("/import", content=b"data", headers=headers)


def _claimed() -> tuple[FakeSite, int]:
    site = FakeSite()
    site.etcd.put_json(layout.claim("rec-1"), {"spare": "spare-1"})
    kv = site.etcd.kvs[layout.claim("rec-1")]
    return site, kv.create_revision


def test_current_token_passes_stale_and_foreign_are_refused() -> None:
    site, token = _claimed()
    client = _client(site)
    assert put(client, layout.fence("rec-1", token)).status_code == 200
    stale = put(client, layout.fence("rec-1", token - 1))
    assert stale.status_code == 409 and stale.json()["error"] == "stale_fencing_token"
    assert put(client, layout.fence("rec-2", token)).status_code == 409
    assert put(client, None).status_code == 200  # a leftover buffer's re-insert carries no claim
    site.etcd.delete(layout.claim("rec-1"))
    assert put(client, layout.fence("rec-1", token)).status_code == 409


def test_etcd_unreachable_is_a_retryable_503_not_a_stale_token() -> None:
    """The bug this guards: a 409 here made the spare stand down and keep its claim."""
    site, token = _claimed()
    client = _client(site)
    site.etcd.down = True
    answer = put(client, layout.fence("rec-1", token))
    assert answer.status_code == 503
    assert answer.json()["error"] == "fencing_unavailable"
    assert answer.headers["retry-after"] == "1"
    assert "rec-1" in answer.json()["detail"] and "retried" in answer.json()["detail"]
    site.etcd.down = False
    assert put(client, layout.fence("rec-1", token)).status_code == 200


def test_unauthenticated_requests_cost_no_etcd_read() -> None:
    site, _token = _claimed()
    client = _client(site)
    put(client, layout.fence("rec-1", 1), token="wrong")
    assert site.etcd.reads == 0
