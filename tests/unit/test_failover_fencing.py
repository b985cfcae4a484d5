"""The original's fencing check on imports, with a stand-in for etcd."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import FastAPI
from fastapi.testclient import TestClient

from hotspare.failover.fencing import FencingMiddleware
from hotspare.failover.reinsert import FENCING_HEADER


@dataclass
class _Kv:
    create_revision: int


class _Etcd:
    def __init__(self, claims: dict[str, int]) -> None:
        self.claims = claims
        self.reads = 0

    def get(self, key: str) -> _Kv | None:
        self.reads += 1
        rev = self.claims.get(key)
        return None if rev is None else _Kv(rev)


def _client(etcd: _Etcd) -> TestClient:
    app = FastAPI()

    @app.put("/import")
    def accept() -> dict[str, str]:
        return {"status": "inserted"}

    app.add_middleware(FencingMiddleware, coord=etcd, server="rec-1", token="tok")
    return TestClient(app)


def put(client: TestClient, fence: str | None, token: str = "tok") -> int:
    headers = {"Authorization": f"Bearer {token}"}
    if fence is not None:
        headers[FENCING_HEADER] = fence
    return client.put("/import", content=b"data", headers=headers).status_code


def test_current_token_passes_stale_and_foreign_are_refused() -> None:
    etcd = _Etcd({"claims/rec-1": 42})
    client = _client(etcd)
    assert put(client, "claims/rec-1:42") == 200
    assert put(client, "claims/rec-1:41") == 409
    assert put(client, "claims/rec-2:42") == 409
    assert put(client, None) == 200  # a leftover buffer's re-insert carries no claim
    etcd.claims.clear()
    assert put(client, "claims/rec-1:42") == 409


def test_unauthenticated_requests_cost_no_etcd_read() -> None:
    etcd = _Etcd({"claims/rec-1": 42})
    client = _client(etcd)
    put(client, "claims/rec-1:1", token="wrong")
    assert etcd.reads == 0
