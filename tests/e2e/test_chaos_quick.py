"""The chaos soak's short version (bench/chaos, `--quick`: 10 faults drawn by a fixed seed) on a
whole site: every frame accounted for, none served twice, no stale write, nothing left behind.
The full soak (`python -m bench.chaos --faults 100`) is a benchmark, not a test."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.chaos.run import main as chaos

pytestmark = pytest.mark.slow


@pytest.mark.timeout(900)
def test_chaos_soak_quick(tmp_path: Path) -> None:
    out = tmp_path / "chaos.json"
    code = chaos(["--quick", "--seed", "1", "--out", str(out)])
    result = json.loads(out.read_text())
    verdict = result["verdict"]
    assert verdict["faults_done"] == verdict["faults_asked"] == 10, verdict
    assert not verdict["problems"], verdict
    assert verdict["frames_twice_index"] == verdict["frames_twice_served"] == 0, verdict
    assert verdict["stale_imports_accepted"] == 0, verdict
    assert verdict["claims_left"] == {"claims": [], "reinsert": []}, verdict
    # The 0.2 s the master's cameras "lost to a frozen idle spare" were the next SIGKILL's, charged
    # to the wrong fault (fixed in the soak's accounting, bench/README.md). One loss over a bound
    # is an open product defect (docs/status.md): a gapless server taken over by a spare whose
    # disk is full loses the takeover window. Reported as an expected failure with the numbers;
    # any other loss over a bound fails.
    known = [line for line in verdict["over_bound"] if "takeover_on_full_disk" in line]
    assert known == verdict["over_bound"], verdict["over_bound"]
    if known:
        pytest.xfail(f"open defect, frames lost beyond a fault's bound: {known}")
    assert code == 0
