"""Schemathesis against the master's site routes, in process over the `site` fixture
(tests.support.site_api).

The site API answers from etcd (a FakeCoord here) and from the node APIs it asks (real node apps
over real stores, called in process); rec-2 is covered by spare-1. Each operation is fuzzed with
etcd up, with etcd down and with a node unreachable: a site in trouble must answer the documented
503 or a partial answer, never a 500.
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from schemathesis.checks import CheckContext, CheckFunction
from schemathesis.core.transport import Response

from hotspare.api.app import API_PREFIX
from tests.support.api_fuzz import CHECKS, fuzz
from tests.support.api_node import AUTH
from tests.support.site_api import REC2, Site

SITE_OPERATIONS = [
    ("GET", "/site/servers"),
    ("GET", "/site/cameras"),
    ("GET", "/site/endpoints"),
    ("GET", "/site/events"),
    ("GET", "/site/cameras/{camera}/timeline"),
    ("GET", "/site/cameras/{camera}/playback.m3u8"),
    ("GET", "/site/cameras/{camera}/live.m3u8"),
]
# HOTSPARE_FUZZ_EXAMPLES=500 runs a longer search locally; CI keeps the bounded default.
MAX_EXAMPLES = int(os.environ.get("HOTSPARE_FUZZ_EXAMPLES", "25"))


def only_documented_503(_ctx: CheckContext, response: Response, case: schemathesis.Case) -> None:
    """With etcd down the site routes answer 503 `etcd_unavailable` by design (documented in the
    spec, which status_code_conformance checks); any other 5xx is a bug."""
    status = response.status_code
    assert status < 500 or status == 503, f"{case.operation.label} answered {status}"


ETCD_DOWN_CHECKS: list[CheckFunction] = [
    only_documented_503, *(c for c in CHECKS if c.__name__ != "not_a_server_error")]


def test_site_operations_list_covers_the_spec(site: Site) -> None:
    """A new site route must be added to SITE_OPERATIONS, or it would silently go unfuzzed."""
    spec = site.master.get("/openapi.json", headers=AUTH).json()
    found = {(method.upper(), path.removeprefix(API_PREFIX)) for path, item in spec["paths"].items()
             if path.startswith(API_PREFIX + "/site/") for method in item}
    assert found == set(SITE_OPERATIONS)


@pytest.mark.parametrize("trouble", ["none", "etcd-down", "rec-2-unreachable"])
@pytest.mark.parametrize(("method", "path"), SITE_OPERATIONS,
                         ids=[f"{m} {p}" for m, p in SITE_OPERATIONS])
def test_site_api_fuzz(site: Site, method: str, path: str, trouble: str) -> None:
    etcd_down = trouble == "etcd-down"
    site.coord.down = etcd_down
    if trouble == "rec-2-unreachable":
        site.unreachable.add(REC2)
    schema = schemathesis.openapi.from_asgi("/openapi.json", site.master.app, headers=AUTH)
    fuzz(schema[API_PREFIX + path][method], cameras=("cam-1", "cam-m"), max_examples=MAX_EXAMPLES,
         checks=ETCD_DOWN_CHECKS if etcd_down else CHECKS)
