"""Schemathesis over a site node's own routes with each role (issue 11, "done means"): the site
routes, the protection route, the evidence-export routes, and the web UI's paths.

The app is the one `test_api_roles` assembles as `hotspare.node.site_node` does (the other nodes
unreachable, so site reads answer partially without a network). Each operation is fuzzed as a
viewer, an operator, an admin (real scrypt-hashed users) and with the node credential: never a
5xx nor an undocumented status, and a role below the route's gets exactly 403 (so the role sent
is really the one checked). test_api_fuzz_roles does the same for the node routes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import CheckContext
from schemathesis.core.transport import Response
from schemathesis.schemas import BaseSchema

from hotspare.api.app import API_PREFIX
from hotspare.api.roles import ROUTE_ROLES, Role
from hotspare.api.tokens import hash_token, new_token
from hotspare.config.models import ApiUser
from hotspare.store.segment_store import SegmentStore
from tests.support.api_fuzz import CHECKS, fuzz
from tests.support.api_node import AUTH, CAMERA, T0, TOKEN, record_run
from tests.unit.test_api_roles import BASE, build_site_app

ROLES = [Role.VIEWER, Role.OPERATOR, Role.ADMIN, Role.NODE]
EXAMPLES_PER_ROLE = 5  # x operations x roles; each user request costs one scrypt verification


def _site_operations() -> list[tuple[str, str]]:
    """Every site operation a site node serves, from ROUTE_ROLES (test_api_roles checks that it
    lists every route of this app)."""
    return sorted((method, path.removeprefix(API_PREFIX)) for method, path in ROUTE_ROLES
                  if path.startswith(API_PREFIX + "/site/"))


OPERATIONS = _site_operations()


@pytest.fixture(scope="module")
def tokens() -> dict[Role, str]:
    found = {role: new_token(f"{role.value}-1") for role in ROLES if role is not Role.NODE}
    return {**found, Role.NODE: TOKEN}


@pytest.fixture(scope="module")
def site_app(tmp_path_factory: pytest.TempPathFactory,
             tokens: dict[Role, str]) -> Iterator[FastAPI]:
    store = SegmentStore.open(tmp_path_factory.mktemp("site-fuzz") / "store", "rec-1")
    record_run(store, CAMERA, T0, 3)
    users = [ApiUser(name=f"{role.value}-1", role=role.value, token_hash=hash_token(token))
             for role, token in tokens.items() if role is not Role.NODE]
    yield build_site_app(store, users)
    store.close()


@pytest.fixture(scope="module")
def site_schema(site_app: FastAPI) -> BaseSchema:
    return schemathesis.openapi.from_asgi("/openapi.json", site_app, headers=AUTH)


def test_the_fuzzed_operations_are_every_site_route_of_the_spec(site_schema: BaseSchema,
                                                                 site_app: FastAPI) -> None:
    with TestClient(site_app, base_url=BASE) as client:
        spec = client.get("/openapi.json", headers=AUTH).json()
    found = {(method.upper(), path.removeprefix(API_PREFIX)) for path, item in spec["paths"].items()
             if path.startswith(API_PREFIX + "/site/") for method in item}
    assert found == set(OPERATIONS)
    assert ("GET", "/site/protection") in found
    assert ("POST", "/site/cameras/{camera}/exports") in found


@pytest.mark.parametrize("role", ROLES, ids=[r.value for r in ROLES])
@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_site_api_fuzz_with_each_role(site_schema: BaseSchema, tokens: dict[Role, str],
                                      role: Role, method: str, path: str) -> None:
    statuses: list[int] = []

    def record(_ctx: CheckContext, response: Response, _case: schemathesis.Case) -> None:
        statuses.append(response.status_code)

    fuzz(site_schema[API_PREFIX + path][method], cameras=(CAMERA, "cam-m", "cam-1"),
         max_examples=EXAMPLES_PER_ROLE, headers={"Authorization": f"Bearer {tokens[role]}"},
         checks=[*CHECKS, record])
    assert statuses
    if not role.allows(ROUTE_ROLES[(method, API_PREFIX + path)]):
        assert set(statuses) == {403}, statuses
    else:
        assert 403 not in statuses, statuses


UI_SEGMENT = st.one_of(
    st.sampled_from(["", ".", "..", "index.html", "app.js", "style.css", "vendor", "hls.min.js",
                     "%2e%2e", "%00", "..%2f..%2fetc%2fpasswd", "a" * 300]),
    st.text(st.characters(min_codepoint=33, max_codepoint=0x2FF, exclude_characters="/?#"),
            max_size=12),
)


@pytest.mark.parametrize("role", [None, *ROLES], ids=["anonymous", *[r.value for r in ROLES]])
def test_ui_paths_never_fail_and_never_leak_a_traceback(
        site_app: FastAPI, tokens: dict[Role, str], role: Role | None,
        caplog: pytest.LogCaptureFixture) -> None:
    """The UI's files need no role (they hold no site data): any path under /ui answers the
    page, a file, a redirect or 404/405, for anyone, and logs no traceback."""
    headers = {} if role is None else {"Authorization": f"Bearer {tokens[role]}"}
    with TestClient(site_app, base_url=BASE, follow_redirects=False,
                    raise_server_exceptions=False) as client:

        @given(segments=st.lists(UI_SEGMENT, max_size=4),
               method=st.sampled_from(["GET", "HEAD", "POST", "DELETE"]))
        @settings(max_examples=40, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def probe(segments: list[str], method: str) -> None:
            path = "/ui" + ("/" + "/".join(segments) if segments else "")
            answer = client.request(method, path, headers=headers)
            assert answer.status_code in (200, 307, 400, 404, 405), (method, path,
                                                                    answer.status_code)
            assert "Traceback" not in answer.text

        probe()
        page = client.get("/ui/", headers=headers)
        assert page.status_code == 200 and "<html" in page.text.lower()
    assert not [r for r in caplog.records if r.exc_info], [r.getMessage() for r in caplog.records]
    assert not re.search(r"Traceback", caplog.text)

