"""`python -m bench.lease_keeper --quick` runs end to end: a real etcd with TLS, a lease held by
a child process beside 128 synthetic video threads on a host made busy, once kept by a thread
of that process (the baseline) and once by the product's helper process, and its result says
what each measured."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.etcd import require_etcd_binary

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_lease_keeper_quick_run_measures_the_keeper_thread_and_the_keeper_process(
        tmp_path: Path) -> None:
    require_etcd_binary()
    out = tmp_path / "lease-keeper.json"
    run = subprocess.run([sys.executable, "-m", "bench.lease_keeper", "--quick", "--out",
                          str(out)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    data = json.loads(out.read_text())
    assert data["benchmark"] == "lease-keeper" and data["quick"] is True
    assert data["envelope"]["git"]["commit"]
    trials = data["trials"]
    (thread,), (process,) = trials["thread"], trials["process"]
    threads = data["setup"]["threads"]
    assert thread["keeper"] == "LeaseKeeper" and thread["heartbeat_gap_max_s"] is None
    assert process["keeper"] == "ProcessLeaseKeeper"
    assert process["heartbeat_gap_max_s"] > 0  # the node's heartbeat thread ran and was timed
    if sys.platform.startswith("linux"):
        assert process["helper_cpu_s"] is not None and process["helper_rss_mb"] > 0
    for trial in (thread, process):
        assert trial["threads_lowered"] == 0
        # Timed for the whole trial, the lease held or lost (then when is said).
        assert trial["keepalive_latencies_s"], trial
        assert (trial["lease_lost_after_s"] is not None) == trial["lease_lost"], trial
        assert 0 < trial["frames_done"] <= trial["frames_due"] * 1.05 + threads, trial
    for name in ("thread", "process"):
        summary = data["summary"][name]
        assert summary["keepalives"] == len(trials[name][0]["keepalive_latencies_s"])
        assert summary["keepalive_p50_ms"] <= summary["keepalive_p95_ms"] \
            <= summary["keepalive_max_ms"]
    assert "hotspare: keeper process (the default)" in run.stdout
    assert "baseline: keeper thread" in run.stdout
