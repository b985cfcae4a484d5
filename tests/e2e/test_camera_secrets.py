"""Camera passwords out of etcd's clear text (issue 11, item 5), with real etcd (TLS), real nodes
and the simulated cameras.

`hotspare site apply` seals every camera password with the site secret; etcd's `config/site`,
every API answer and every log hold only the sealed form. A node holding the secret opens it at
the RTSP connect and records; a node without it reports, per camera, what to do. (The simulated
cameras ask for no RTSP authentication, so the first half proves the connect URL is built with
the opened password without failing, not that the camera checked it.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from hotspare.site_secret import SITE_SECRET_FILE
from hotspare.sitestate import applied, layout
from tests.support.site import FailoverSite, wait_for

PASSWORD = "Cam-Pa55-never-in-etcd"


def _with_passwords(doc: dict[str, Any]) -> None:
    for server in doc["recording_servers"]:
        for camera in server["cameras"]:
            camera["username"] = "viewer"
            camera["password"] = PASSWORD


def test_camera_passwords_are_sealed_in_etcd_and_opened_only_by_nodes_with_the_secret(
        tmp_path: Path) -> None:
    with FailoverSite(tmp_path, servers={"rec-1": 1, "rec-2": 1}, spares=[]) as site:
        assert site.coord is not None
        site.reapply(_with_passwords)
        (tmp_path / "rec-2" / SITE_SECRET_FILE).unlink()  # rec-2 was never given the secret
        site.start("rec-1")
        site.start("rec-2")

        raw = site.coord.get(layout.SITE_CONFIG)
        assert raw is not None
        stored = applied.document_text(raw.value)
        stored = stored.decode() if isinstance(stored, bytes) else stored
        assert PASSWORD not in stored
        assert stored.count("sealed:v1:") == 2

        # rec-1 holds the secret: it opens the password at the connect and records
        wait_for("rec-1 recording its camera", lambda: site.alive("rec-1"), 30)

        # rec-2 does not: its camera reports why and what to do, without the password
        rec2 = site.node("rec-2")
        assert rec2.url is not None

        def failing() -> dict[str, Any] | None:
            answer = httpx.get(f"{rec2.url}/api/v1/health",
                               headers={"Authorization": f"Bearer {rec2.token}"}, timeout=10)
            camera = answer.json()["cameras"][0]
            return camera if camera["state"] == "failing" and camera["error"] else None

        camera = wait_for("rec-2's camera to report the missing secret", failing, 30)
        print(camera["error"])
        assert "rec-2-c1" in camera["error"] and "site secret" in camera["error"]
        assert SITE_SECRET_FILE in camera["error"] and PASSWORD not in camera["error"]
        assert not site.alive("rec-2")

        # no answer of the master's site API or of a node's API carries the password
        master = site.node("rec-1")
        assert master.url is not None
        texts = []
        for url, node in [(f"{master.url}/api/v1/site/{what}", master)
                          for what in ("cameras", "servers", "endpoints", "events")] + [
                (f"{n.url}{what}", n) for n in (master, rec2)
                for what in ("/api/v1/health", "/metrics", "/openapi.json")]:
            answer = httpx.get(url, headers={"Authorization": f"Bearer {node.token}"}, timeout=10)
            assert answer.status_code == 200, (url, answer.text)
            texts.append(answer.text)
        assert all(PASSWORD not in text for text in texts)
        assert any("rec-2-c1" in text for text in texts)
        for name in ("rec-1", "rec-2"):
            site.node(name).stop()
            log = (tmp_path / name / "node.log").read_text(encoding="utf-8", errors="replace")
            assert PASSWORD not in log
