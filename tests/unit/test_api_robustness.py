"""Hostile values for every declared parameter never produce a 500, and errors keep one shape.

A cheap stand-in for the schemathesis run planned later: it reads the OpenAPI spec, so new routes
and parameters are covered without editing this file.
"""

from __future__ import annotations

import itertools
from urllib.parse import quote

from tests.support.api_node import AUTH, CAMERA, Node

NASTY = [
    "",
    "0",
    "-1",
    "9" * 30,
    "1e400",
    "../x",
    "a/b",
    "\x00",
    "Ω",
    "null",
    "true",
    "2025-13-45T99:00Z",
    "2025-11-25T21:00:00",
    "-10m",
    " ",
    "%2e%2e",
    "{}",
]


def _fill(path: str, overrides: dict[str, str]) -> str:
    for name in ("camera", "segment_id"):
        default = CAMERA if name == "camera" else "1"
        path = path.replace("{" + name + "}", quote(overrides.get(name, default), safe=""))
    return path


def test_no_parameter_value_causes_a_server_error(node: Node) -> None:
    spec = node.client.get("/openapi.json", headers=AUTH).json()
    checked = 0
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            params = op.get("parameters", [])
            for param, value in itertools.product(params, NASTY):
                where, name = param["in"], param["name"]
                query: dict[str, str] = {}
                headers = dict(AUTH)
                overrides: dict[str, str] = {}
                if where == "query":
                    query[name] = value
                elif where == "path":
                    overrides[name] = value
                elif where == "header":
                    try:
                        value.encode("latin-1")
                    except UnicodeEncodeError:
                        continue
                    if value.strip() != value or "\x00" in value:
                        continue
                    headers[name] = value
                response = node.client.request(
                    method.upper(),
                    _fill(path, overrides),
                    params=query,
                    headers=headers,
                    content=b"x" * 10,
                )
                checked += 1
                assert response.status_code < 500, (method, path, name, value, response.text)
                if response.status_code >= 400:
                    assert set(response.json()) == {"error", "detail"}, (method, path, name)
    assert checked > 100
