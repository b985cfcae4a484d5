"""`python -m bench.site_scale --quick` runs end to end and its result says what it measured: a
3-member etcd carrying a simulated site of 10 servers and 500 cameras, one killed server claimed
by a spare, every node on a new configuration, and the master's site API answering."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.etcd import require_etcd_binary

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_site_scale_quick_run_measures_the_site(tmp_path: Path) -> None:
    require_etcd_binary()
    out = tmp_path / "site-scale.json"
    run = subprocess.run([sys.executable, "-m", "bench.site_scale", "--quick", "--out", str(out)],
                         cwd=REPO, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    data = json.loads(out.read_text())
    assert data["benchmark"] == "site-scale" and data["quick"] is True
    assert data["envelope"]["git"]["commit"] and data["envelope"]["load"]["load1_peak"] >= 0
    site = data["sites"][0]
    # One process for the 10 servers, one per spare.
    assert site["size"] == {"servers": 10, "cameras": 500, "spares": 2, "node_processes": 3}
    # Who used the CPU, so that a starved host can be told from a slow product.
    cpu = site["cpu_cores"]
    assert cpu["server_processes"] > 0 and cpu["spares_processes"] > 0 and cpu["etcd"] > 0
    assert 0 < site["host_busy_fraction"] <= 1
    assert 0 <= site["crash"]["host_busy_fraction"] <= 1
    # Two idle spares: each probes every server.
    assert site["spare_detection_round"]["servers_probed_max"] == 10
    etcd = site["etcd"]
    assert len(etcd["members"]) == 3 and etcd["total"]["requests_per_s"] > 0
    assert etcd["total"]["watchers"] >= 10  # every node watches its configuration at least
    # Each node starts from its own member (by its name), not all from the first one listed.
    watchers = [member["watchers"] for member in etcd["members"].values()]
    assert max(watchers) < sum(watchers), watchers
    trial = site["crash"]["trials"][0]
    assert trial["spare"] in ("spare-01", "spare-02"), trial
    assert 0 < trial["crash_to_claim_s"] < 10, trial
    assert trial["revive_to_claim_released_s"] is not None, "the spare never handed back"
    assert trial["probe_watch"] is True
    # Both spares probe every server, so both saw the killed server close its connection.
    assert trial["closes_seen_by_probe_watches"] >= 1, trial
    # The baseline's trial, with the spares' probe watch off (turned off and on again in them).
    (baseline,) = site["crash"]["probe_watch_off"]["trials"]
    assert baseline["probe_watch"] is False and baseline["server"] != trial["server"]
    assert baseline["closes_seen_by_probe_watches"] == 0, baseline
    assert 0 < baseline["crash_to_claim_s"] < 10, baseline
    config = site["config_change"]
    assert config["every_node_s"] is not None, config["nodes"]["lagging"]
    assert config["spares"]["converged"] == 2 and config["spares"]["lagging"] == []
    assert 0 < config["spares"]["p50_s"] <= config["spares"]["max_s"] == config["every_spare_s"]
    for name in ("status", "cameras", "protection", "timeline"):
        assert site["master_api"][name]["n"] > 0, name
    assert site["master_api_failures"] == []
    # The snapshot every node reads each second no longer carries the commit watermarks.
    assert "watermarks" not in site["snapshot"]["by_prefix"]
    assert site["snapshot"]["watermarks_outside"]["keys"] == 10
    assert "/tmp/" not in out.read_text() and str(REPO) not in out.read_text()
