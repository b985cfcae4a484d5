"""Authentication cannot be turned against the node: a flood of wrong tokens is bounded in
cost, answered 429 past a per-address budget, and never starves the health route."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest
from fastapi import FastAPI

from hotspare.api import auth
from hotspare.api.app import create_app
from hotspare.api.auth_guard import FAILURE_BUDGET
from hotspare.api.tokens import hash_token, new_token
from hotspare.config.models import ApiUser
from hotspare.store.segment_store import SegmentStore

NODE_TOKEN = "node-credential-for-the-guard-test"
HEALTH = "/api/v1/health"


@pytest.fixture
def app_and_token(tmp_path: Path) -> Iterator[tuple[FastAPI, str]]:
    store = SegmentStore.open(tmp_path / "store", "rec-1")
    viewer = new_token("viewer-1")
    users = [ApiUser(name="viewer-1", role="viewer", token_hash=hash_token(viewer))]
    app = create_app(store, health=dict, token=NODE_TOKEN, server_name="rec-1",
                     known_cameras=set, users=users)
    yield app, viewer
    store.close()


def _client(app: FastAPI, address: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://node.test")


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_an_address_past_its_budget_gets_429_without_a_hash(
        app_and_token: tuple[FastAPI, str], monkeypatch: pytest.MonkeyPatch) -> None:
    app, viewer = app_and_token
    hashes = []
    real = auth.verify_token

    def counting(token: str, token_hash: str) -> bool:
        hashes.append(token)
        return real(token, token_hash)

    monkeypatch.setattr(auth, "verify_token", counting)

    async def scenario() -> None:
        async with _client(app, "192.0.2.7") as attacker, _client(app, "192.0.2.8") as other:
            for i in range(FAILURE_BUDGET):
                r = await attacker.get(HEALTH, headers=_bearer(f"viewer-1.wrong{i}"))
                assert r.status_code == 401
            assert len(hashes) == FAILURE_BUDGET
            r = await attacker.get(HEALTH, headers=_bearer("viewer-1.wrong-again"))
            assert r.status_code == 429
            assert r.json()["error"] == "too_many_failures"
            assert int(r.headers["Retry-After"]) >= 1
            assert len(hashes) == FAILURE_BUDGET  # no hash once the budget is spent
            # Unknown users spend the same budget (their answer must not tell names apart).
            r = await attacker.get(HEALTH, headers=_bearer("nobody.secret"))
            assert r.status_code == 429
            # The node credential is a constant-time compare, never budgeted: nodes keep working.
            assert (await attacker.get(HEALTH, headers=_bearer(NODE_TOKEN))).status_code == 200
            # Another address is not punished for the first one.
            assert (await other.get(HEALTH, headers=_bearer(viewer))).status_code == 200

    anyio.run(scenario)


def test_unknown_users_spend_budget_and_malformed_tokens_cost_nothing(
        app_and_token: tuple[FastAPI, str]) -> None:
    app, _ = app_and_token

    async def scenario() -> None:
        async with _client(app, "192.0.2.9") as c:
            for _ in range(3 * FAILURE_BUDGET):  # not user-shaped: refused without any cost
                r = await c.get(HEALTH, headers=_bearer("no-dot-here"))
                assert r.status_code == 401
            for i in range(FAILURE_BUDGET):
                r = await c.get(HEALTH, headers=_bearer(f"ghost-{i}.secret"))
                assert r.status_code == 401
            r = await c.get(HEALTH, headers=_bearer("ghost.secret"))
            assert r.status_code == 429

    anyio.run(scenario)


def test_a_flood_hashes_one_at_a_time_and_health_keeps_answering(
        app_and_token: tuple[FastAPI, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """100 wrong tokens for a real user from 100 addresses (so no budget helps): the hashes run
    one at a time (memory stays one scrypt's 16 MiB) and the health route answers throughout."""
    app, _ = app_and_token
    lock = threading.Lock()
    running = [0, 0]  # now, peak
    real = auth.verify_token

    def tracking(token: str, token_hash: str) -> bool:
        with lock:
            running[0] += 1
            running[1] = max(running[1], running[0])
        try:
            return real(token, token_hash)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(auth, "verify_token", tracking)
    health_codes: list[int] = []

    async def scenario() -> None:
        async def bad(i: int) -> None:
            async with _client(app, f"198.51.100.{i}") as c:
                r = await c.get(HEALTH, headers=_bearer(f"viewer-1.guess{i}"))
                assert r.status_code == 401

        async def probe() -> None:
            async with _client(app, "203.0.113.1") as c:
                for _ in range(10):
                    r = await c.get(HEALTH, headers=_bearer(NODE_TOKEN))
                    health_codes.append(r.status_code)
                    await anyio.sleep(0.05)

        async with anyio.create_task_group() as tg:
            for i in range(100):
                tg.start_soon(bad, i)
            tg.start_soon(probe)

    anyio.run(scenario)
    assert running[1] == 1
    assert health_codes == [200] * 10
