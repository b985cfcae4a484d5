"""Schemathesis over the node API with each user role, not only the node credential.

A viewer asking for an import, an operator asking for metrics: every such answer must be the
documented 401/403 (or the data the role may see), never a 500 and never an undocumented status.
The users are real (scrypt-hashed tokens in the node's `[api] users`); the store holds real
segments, as in test_api_fuzz.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from schemathesis.checks import CheckContext
from schemathesis.core.transport import Response
from schemathesis.schemas import BaseSchema

from hotspare.api.app import create_app
from hotspare.api.roles import ROUTE_ROLES, Role
from hotspare.api.tokens import hash_token, new_token
from hotspare.config.models import ApiUser
from hotspare.store.segment_store import SegmentStore
from tests.support.api_fuzz import CHECKS, fuzz
from tests.support.api_node import AUTH, CAMERA, SERVER, T0, TOKEN, record_run
from tests.unit.test_api_fuzz import OPERATIONS

ROLES = [Role.VIEWER, Role.OPERATOR, Role.ADMIN]
EXAMPLES_PER_ROLE = 5  # x operations x roles; each request costs one scrypt verification


@pytest.fixture(scope="module")
def tokens() -> dict[Role, str]:
    return {role: new_token(f"{role.value}-1") for role in ROLES}


@pytest.fixture
def role_schema(tmp_path: Path, tokens: dict[Role, str]) -> Iterator[BaseSchema]:
    store = SegmentStore.open(tmp_path / "store", SERVER)
    record_run(store, CAMERA, T0, 3)
    users = [ApiUser(name=f"{role.value}-1", role=role.value, token_hash=hash_token(token))
             for role, token in tokens.items()]
    app = create_app(
        store,
        health=lambda: {CAMERA: {"state": "recording", "last_frame_wall_us": T0,
                                 "last_commit_wall_us": T0, "run_id": 1, "error": None}},
        token=TOKEN, server_name=SERVER, known_cameras=lambda: {CAMERA, "cam-2"},
        clock=lambda: T0 + 60_000_000, max_import_bytes=1 << 20, users=users)
    yield schemathesis.openapi.from_asgi("/openapi.json", app, headers=AUTH)
    store.close()


@pytest.mark.parametrize("role", ROLES, ids=[r.value for r in ROLES])
@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_node_api_fuzz_with_each_role(role_schema: BaseSchema, tokens: dict[Role, str],
                                      role: Role, method: str, path: str) -> None:
    statuses: list[int] = []

    def record(_ctx: CheckContext, response: Response, _case: schemathesis.Case) -> None:
        statuses.append(response.status_code)

    fuzz(role_schema[path][method], max_examples=EXAMPLES_PER_ROLE,
         headers={"Authorization": f"Bearer {tokens[role]}"}, checks=[*CHECKS, record])
    assert statuses
    if not role.allows(ROUTE_ROLES[(method, path)]):  # the role is really what was sent
        assert set(statuses) == {403}, statuses
    else:
        assert 403 not in statuses, statuses
