"""Probing the web UI for pages that do not exist costs a 404, never a 500 or a traceback."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hotspare.api.app import create_app
from hotspare.store.segment_store import SegmentStore
from hotspare.web.ui import mount_web_ui


@pytest.mark.parametrize("path", ["/ui/missing", "/ui/admin/.env", "/ui/x/y/z.js",
                                  "/ui/%2e%2e/pyproject.toml"])
def test_missing_ui_paths_answer_404_without_a_token_or_a_traceback(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, path: str) -> None:
    store = SegmentStore.open(tmp_path / "store", "rec-1")
    app = create_app(store, health=dict, token="node-token-for-ui-tests", server_name="rec-1",
                     known_cameras=set)
    mount_web_ui(app)
    try:
        with caplog.at_level(logging.WARNING), \
                TestClient(app, raise_server_exceptions=False) as client:
            response = client.get(path)
        assert response.status_code == 404, response.text
        assert "Traceback" not in caplog.text
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert client.get("/ui/").status_code == 200
    finally:
        store.close()


def test_favicon_answers_without_a_token(tmp_path: Path) -> None:
    """Browsers fetch /favicon.ico on their own, without the token: a 401 there showed in every
    browser console as if the login had failed."""
    store = SegmentStore.open(tmp_path / "store", "rec-1")
    app = create_app(store, health=dict, token="node-token-for-ui-tests", server_name="rec-1",
                     known_cameras=set)
    mount_web_ui(app)
    try:
        with TestClient(app) as client:
            for path in ("/favicon.ico", "/ui/favicon.svg"):
                response = client.get(path)
                assert response.status_code == 200, path
                assert response.headers["content-type"].startswith("image/svg+xml")
                assert response.content.startswith(b"<svg")
            assert client.get("/api/v1/status").status_code == 401  # the rest still needs it
    finally:
        store.close()


def test_cross_origin_pages_can_read_the_playlist_continuation_header() -> None:
    """The master's UI pages through long playlists with `Hotspare-Next-From`; on another origin
    a browser hides every header the answer does not expose."""
    from fastapi import FastAPI
    from fastapi.responses import PlainTextResponse

    from hotspare.api.site_cors import allow_site_cors
    from hotspare.wire import NEXT_FROM_HEADER

    app = FastAPI()

    @app.get("/p")
    def playlist() -> PlainTextResponse:
        return PlainTextResponse("#EXTM3U", headers={NEXT_FROM_HEADER: "1"})

    allow_site_cors(app)
    with TestClient(app) as client:
        response = client.get("/p", headers={"Origin": "https://other.example"})
    exposed = {h.strip().lower() for h in
               response.headers["access-control-expose-headers"].split(",")}
    assert NEXT_FROM_HEADER.lower() in exposed
