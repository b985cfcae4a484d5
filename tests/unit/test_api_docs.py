"""`/docs` renders on a site with no internet: swagger-ui's files come from the node itself (the
project's npm lockfile), behind the same token as the page, and a `?token=` reaches them too."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hotspare.api.app import create_app
from hotspare.store.segment_store import SegmentStore
from hotspare.web.ui import SWAGGER_UI_DIR, swagger_ui_routes

AUTH = {"Authorization": "Bearer tok"}
_REFERENCES = re.compile(r'<(?:script|link)\b[^>]*?\b(?:src|href)="([^"]+)"')


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    store = SegmentStore.open(tmp_path / "store", "rec-1")
    try:
        with TestClient(create_app(store, dict, "tok", "rec-1", set)) as test_client:
            yield test_client
    finally:
        store.close()


def _references(html: str) -> list[str]:
    return _REFERENCES.findall(html)


def test_docs_page_loads_nothing_from_another_site(client: TestClient) -> None:
    page = client.get("/docs", headers=AUTH)
    assert page.status_code == 200
    urls = _references(page.text)
    assert len(urls) == 3, urls  # the stylesheet, the icon, the script
    assert not [u for u in urls if re.match(r"(https?:)?//", u)], urls
    assert "cdn" not in page.text.lower()
    for url in urls:
        served = client.get("/" + url, headers=AUTH)
        assert served.status_code == 200, url
        assert served.content == (SWAGGER_UI_DIR / Path(url).name).read_bytes()
    assert client.get("/docs/swagger-ui-bundle.js",
                      headers=AUTH).headers["content-type"].startswith("text/javascript")
    assert client.get("/docs/swagger-ui.css", headers=AUTH).headers["content-type"].startswith(
        "text/css")


def test_files_need_the_token_and_a_query_token_is_passed_on(client: TestClient) -> None:
    assert client.get("/docs/swagger-ui-bundle.js").status_code == 401
    page = client.get("/docs", params={"token": "tok"})
    assert page.status_code == 200
    urls = _references(page.text)
    assert urls and all(u.endswith("?token=tok") for u in urls), urls
    for url in urls:  # as a browser would fetch them: no header, the page's query token
        assert client.get("/" + url).status_code == 200, url
    assert "openapi.json?token=tok" in page.text


def test_a_missing_install_says_how_to_fix_it(tmp_path: Path) -> None:
    from starlette.applications import Starlette

    app = Starlette(routes=swagger_ui_routes("/docs", folder=tmp_path / "absent"))
    with TestClient(app) as bare:
        answer = bare.get("/docs/swagger-ui-bundle.js")
    assert answer.status_code == 404
    assert "swagger-ui-dist is not installed (run scripts/setup)" in answer.text
