"""Site configuration changes reach running nodes live; an ineligible server is refused with a
reason; `hotspare events` shows the story."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from hotspare.cli.main import main as cli_main
from tests.support.site import TOKEN, FailoverSite, wait_for


def _health_cameras(site: FailoverSite, name: str) -> list[str]:
    answer = httpx.get(f"http://127.0.0.1:{site.nodes[name].port}/api/v1/health",
                       headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5).json()
    return sorted(c["camera_id"] for c in answer["cameras"])


def test_live_config_and_refused_takeover(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    with FailoverSite(tmp_path, servers={"rec-1": 2}, spares=["spare-1"]) as site:
        assert site.etcd is not None
        site.start_all()
        assert _health_cameras(site, "rec-1") == ["rec-1-c1", "rec-1-c2"]

        def drop_camera_add_grabber(doc: dict[str, Any]) -> None:
            server = doc["recording_servers"][0]
            server["cameras"] = server["cameras"][:1]
            server["frame_grabber_inputs"] = 1

        site.reapply(drop_camera_add_grabber)
        wait_for("rec-1 records one camera", lambda: _health_cameras(site, "rec-1")
                 == ["rec-1-c1"], 15)
        time.sleep(1.0)
        site.node("rec-1").kill()
        refused = site.wait_event("refused", "rec-1", timeout=15)
        assert "frame_grabber" in refused.data["reasons"], refused
        time.sleep(2.0)
        assert site.claim("rec-1") is None
        capsys.readouterr()
        code = cli_main(["events", "--etcd", site.etcd.endpoints[0], "--site", site.site_id,
                         *site.etcd.cli_args()])
        out = capsys.readouterr().out
        assert code == 0 and "refused" in out and "frame-grabber" in out, out
        print(out)
