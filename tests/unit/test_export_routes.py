"""The export routes: refusals that name the field, and a job from start to download (its
source faked: reading a real site is tests/e2e/test_export.py's job)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from hotspare.api.problems import install_problem_handlers
from hotspare.api.site_routes import SiteApi
from hotspare.export.jobs import ExportJobs
from hotspare.export.routes import export_router, signing_key
from hotspare.export.verify import verify
from hotspare.signing_keys import generate_keypair, read_public_key
from hotspare.site.pool import LicenceMerge
from hotspare.sitestate.applied import AppliedSite
from tests.support.site_api import FakeCoord, site_config
from tests.unit.test_export_frames import T0, _FakeSource

PREFIX = "/api/v1/site"


def _client(tmp_path: Path, key: Path | None, source: Any = None) -> TestClient:
    applied = AppliedSite(site_config(), 1, LicenceMerge((), (), ()))
    api = SiteApi(FakeCoord({}), lambda: applied, "token-0123456789abcdef",  # type: ignore[arg-type]
                  clock=lambda: T0 + 10_000_000)
    jobs = ExportJobs(tmp_path / "exports", signing_key(key),
                      lambda: source or _FakeSource([]))
    app = FastAPI()
    install_problem_handlers(app)
    app.include_router(export_router(api, jobs, "rec-1"), prefix="/api/v1")
    return TestClient(app)


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    private, public, _ = generate_keypair(tmp_path / "keys", "export-signing")
    return private, public


@pytest.mark.parametrize(("params", "status", "error"), [
    ({"to": str(T0)}, 400, "missing_range"),
    ({"from": str(T0), "to": str(T0 - 1)}, 400, "bad_range"),
    ({"from": str(T0), "to": str(T0)}, 400, "bad_range"),
    ({"from": str(T0 - 25 * 3_600_000_000), "to": str(T0)}, 400, "range_too_large"),
    ({"from": "yesterday", "to": str(T0)}, 400, "bad_time"),
])
def test_bad_ranges_are_refused_naming_the_reason(tmp_path: Path, keys: tuple[Path, Path],
                                                  params: dict[str, str], status: int,
                                                  error: str) -> None:
    with _client(tmp_path, keys[0]) as client:
        answer = client.post(f"{PREFIX}/cameras/cam-1/exports", params=params)
    assert (answer.status_code, answer.json()["error"]) == (status, error), answer.text
    assert not (tmp_path / "exports").exists()


def test_unknown_camera_and_missing_key(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    span = {"from": str(T0), "to": str(T0 + 1_000_000)}
    with _client(tmp_path, keys[0]) as client:
        answer = client.post(f"{PREFIX}/cameras/no-such/exports", params=span)
        assert (answer.status_code, answer.json()["error"]) == (404, "unknown_camera")
        assert client.get(f"{PREFIX}/exports/{'0' * 32}").status_code == 404
    with _client(tmp_path, None) as client:
        answer = client.post(f"{PREFIX}/cameras/cam-1/exports", params=span)
        assert (answer.status_code, answer.json()["error"]) == (503, "export_not_configured")
        assert "export keygen" in answer.json()["detail"]


def _wait_done(client: TestClient, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        status: dict[str, Any] = client.get(f"{PREFIX}/exports/{job_id}").json()
        if status["state"] != "running" or time.monotonic() > deadline:
            return status
        time.sleep(0.05)


def test_a_job_runs_reports_progress_and_serves_a_verifiable_export(
        tmp_path: Path, keys: tuple[Path, Path]) -> None:
    with _client(tmp_path, keys[0]) as client:
        started = client.post(f"{PREFIX}/cameras/cam-1/exports",
                              params={"from": str(T0), "to": str(T0 + 3_000_000)})
        assert started.status_code == 202, started.text
        job = started.json()["job_id"]
        status = _wait_done(client, job)
        assert status["state"] == "done", status
        assert (status["pieces_done"], status["pieces_total"], status["frames_done"]) == (2, 3, 50)
        assert status["bytes_done"] > 0
        clip = client.get(f"{PREFIX}/exports/{job}/clip.mp4")
        manifest = client.get(f"{PREFIX}/exports/{job}/manifest.json")
    assert clip.status_code == manifest.status_code == 200
    (tmp_path / "c.mp4").write_bytes(clip.content)
    (tmp_path / "m.json").write_bytes(manifest.content)
    checked = verify(tmp_path / "c.mp4", tmp_path / "m.json", read_public_key(keys[1]).key)
    assert checked["exported_by"] == "rec-1" and checked["site_id"] == "t"
    assert json.loads(manifest.content)["gaps"][0]["cause"] == "node_unreachable"


def test_a_failed_job_says_why_and_leaves_no_clip(tmp_path: Path,
                                                  keys: tuple[Path, Path]) -> None:
    empty = _FakeSource([])
    empty.files = {}
    with _client(tmp_path, keys[0], empty) as client:
        job = client.post(f"{PREFIX}/cameras/cam-1/exports",
                          params={"from": str(T0), "to": str(T0 + 3_000_000)}).json()["job_id"]
        status = _wait_done(client, job)
        assert (status["state"], status["error"]) == ("failed", "no_video"), status
        answer = client.get(f"{PREFIX}/exports/{job}/clip.mp4")
        assert (answer.status_code, answer.json()["error"]) == (409, "export_failed")
    assert list((tmp_path / "exports").rglob("*.mp4*")) == []


def _node_toml(tmp_path: Path, key_line: str) -> Path:
    path = tmp_path / "node.toml"
    path.write_text(f"""name = "rec-1"
data_dir = "data"
[api]
token = "token-0123456789abcdef"
[site]
id = "s"
etcd_endpoints = ["https://127.0.0.1:2379"]
{key_line}
""", encoding="utf-8")
    return path


def test_the_key_file_is_read_beside_node_toml_and_checked(tmp_path: Path,
                                                          keys: tuple[Path, Path]) -> None:
    from hotspare.config.load import ConfigError, load_node_config

    config = load_node_config(_node_toml(tmp_path, 'export_signing_key_file = '
                                                   '"keys/export-signing.key"'))
    assert config.site is not None and config.site.export_signing_key_file == keys[0]
    with pytest.raises(ConfigError, match=r"(?s)export_signing_key_file.*not an unencrypted"):
        load_node_config(_node_toml(tmp_path, 'export_signing_key_file = '
                                              '"keys/export-signing.pub"'))
