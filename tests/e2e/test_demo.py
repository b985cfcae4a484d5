"""The README's demo command really runs the whole cycle, and leaves no process behind."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.camsim import require_gstreamer
from tests.support.etcd import require_etcd_binary
from tests.support.processes import pid_alive


@pytest.mark.slow
def test_demo_crash_scenario_takes_over_hands_back_and_cleans_up(tmp_path: Path) -> None:
    require_gstreamer()
    require_etcd_binary()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "hotspare",
            "demo",
            "--dir",
            str(tmp_path / "demo"),
            "--scenario",
            "crash",
            "--crash-after",
            "6",
            "--down-for",
            "6",
            "--duration",
            "45",
            "--cameras-per-server",
            "1",
            "--width",
            "320",
            "--height",
            "240",
            "--fps",
            "10",
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "The demo site is running:" in out
    for step in ("claimed", "recording", "returned", "handback", "done"):
        assert re.search(rf"event .* {step} +rec-2", out), f"no {step} event in:\n{out}"
    assert "stopping the site" in out
    pids = [int(p) for p in re.findall(r"\(pid (\d+),", out)]
    assert len(pids) == 3, out
    assert not [p for p in pids if pid_alive(p)], "the demo left node processes running"
