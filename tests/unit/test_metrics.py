"""`/metrics` speaks Prometheus' text format, shows live camera states, and needs the token."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from hotspare.api.app import create_app
from hotspare.metrics import EVENTS
from hotspare.store.segment_store import SegmentStore

NOW_US = 1_700_000_000_000_000


def test_metrics_show_camera_states_and_ages(tmp_path: Path) -> None:
    store = SegmentStore.open(tmp_path / "store", "rec-1")
    health = {
        "cam-1": {"state": "recording", "last_frame_wall_us": NOW_US - 40_000},
        "cam-2": {"state": "failing", "last_frame_wall_us": NOW_US - 12_000_000},
        "cam-3": {"state": "connecting", "last_frame_wall_us": None},
    }
    app = create_app(store, lambda: health, "tok", "rec-1", lambda: set(health),
                     clock=lambda: NOW_US)
    EVENTS.labels("claimed").inc()
    try:
        with TestClient(app) as client:
            assert client.get("/metrics").status_code == 401
            answer = client.get("/metrics", headers={"Authorization": "Bearer tok"})
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/plain")
        text = answer.text
        assert 'hotspare_cameras{state="recording"} 1.0' in text
        assert 'hotspare_cameras{state="failing"} 1.0' in text
        assert 'hotspare_cameras{state="connecting"} 1.0' in text
        assert 'hotspare_camera_last_frame_age_seconds{camera="cam-2"} 12.0' in text
        assert 'camera="cam-3"' not in text.split("hotspare_camera_last_frame_age_seconds")[-1]
        assert 'hotspare_events_total{kind="claimed"}' in text
        assert "# TYPE hotspare_segment_commit_seconds histogram" in text
    finally:
        store.close()
