"""`python -m bench.scale --quick` (bench/scale, issue 14 item 2 at CI size: 4 gapless cameras,
one SIGKILL of their server) runs end to end and its result says what the full run must: no
gapless frame missing, none twice, the spare's standing and covering cost measured, and the
stream the simulator was asked for actually received."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.etcd import require_etcd_binary

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_scale_quick_run_loses_no_gapless_frame(tmp_path: Path) -> None:
    require_etcd_binary()
    out = tmp_path / "scale.json"
    run = subprocess.run([sys.executable, "-m", "bench.scale", "--quick", "--out", str(out)],
                         cwd=REPO, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-3000:]
    data = json.loads(out.read_text())
    assert data["benchmark"] == "scale" and data["quick"] is True
    assert data["envelope"]["git"]["commit"] and data["envelope"]["load"]["load1_peak"] >= 0
    assert data["error"] is None
    (trial,) = data["trials"]["gapless"]
    assert set(trial["missing_takeover_frames"]) == {f"rec-1-c{i}" for i in range(1, 5)}
    assert all(n == 0 for n in trial["missing_takeover_frames"].values()), trial
    assert all(n == 0 for n in trial["frames_twice"].values()), trial
    assert data["verdict"] == {"gapless_missing_0": True, "gapless_claim_within_1s": True,
                               "gapless_no_frame_twice": True}
    assert 0 < trial["crash_to_claim_s"] < 10 and trial["restart_to_done_s"] > 0, trial
    assert trial["cover"]["spare_cpu_cores"] > 0 and trial["cover"]["spare_rss_mb"] > 0
    cost = data["standing_cost_gapless"]
    assert cost["gapless_cameras"] == 4 and cost["spare_rss_mb_with_standby"] > 0
    # Each standby session received about the configured 300 kbit/s (CBR clip, loop included).
    assert 0.7 < data["stream"]["received_of_configured"] < 1.3, data["stream"]
    assert "/tmp/" not in out.read_text() and str(REPO) not in out.read_text()
