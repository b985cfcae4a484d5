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
    assert not verdict["problems"] and not verdict["over_bound"], verdict
    assert verdict["frames_twice_index"] == verdict["frames_twice_served"] == 0, verdict
    assert verdict["stale_imports_accepted"] == 0, verdict
    assert verdict["claims_left"] == {"claims": [], "reinsert": []}, verdict
    assert code == 0
