"""bench/common.py: results must be committable as they are (no machine-specific path, the
envelope complete), and the shared table and statistics helpers must say what they measured."""

from __future__ import annotations

import json
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bench.common import (
    REPO,
    LoadSampler,
    cpu_seconds,
    median,
    percentile,
    rss_bytes,
    scrub_paths,
    table,
    total_cpu_seconds,
    write_result,
)


def test_scrub_paths_leaves_no_absolute_path() -> None:
    data = {
        "repo": str(REPO / "bench" / "results" / "x.json"),
        "tmp": os.path.join(tempfile.gettempdir(), "hotspare-bench-x", "node.log"),
        "home": str(Path.home() / "notes" / "facts.md"),
        "other": "see /srv/shared/notes/measured-facts.md (published)",
        "windows": r"C:\Users\someone\x.txt",
        "nested": [Path("/opt/etcd/bin/etcd"), ("/usr/bin/ffmpeg not found",)],
    }
    clean = scrub_paths(data)
    assert clean == {
        "repo": "bench/results/x.json",
        "tmp": "$TMPDIR/hotspare-bench-x/node.log",
        "home": "~/notes/facts.md",
        "other": "see .../measured-facts.md (published)",
        "windows": ".../x.txt",
        "nested": [".../etcd", [".../ffmpeg not found"]],
    }


@pytest.mark.parametrize("text", [
    "http://127.0.0.1:8600/api/v1/segments/1", "Mbit/s", "load (1/5/15 min)", "s/cam-min",
    "rows ending in * ran against bench/reinsert/x.py", "/",
])
def test_scrub_paths_keeps_urls_units_and_relative_paths(text: str) -> None:
    assert scrub_paths(text) == text


def test_write_result_has_the_envelope_and_no_absolute_path(tmp_path: Path) -> None:
    started = datetime.now(UTC)
    with LoadSampler(interval=0.05) as sampler:
        load = sampler.stop()
    out = write_result(
        "unit", {"error": f"see {tmp_path / 'node.log'}", "value": 1}, started=started,
        load=load, quick=True, out=tmp_path / "r.json", tools={"etcd": "etcd Version: 3.4"},
    )  # fmt: skip
    text = out.read_text()
    data = json.loads(text)
    envelope = data["envelope"]
    assert data["benchmark"] == "unit" and data["quick"] is True and data["value"] == 1
    assert set(envelope) == {"started_utc", "finished_utc", "git", "machine", "load", "versions"}
    assert {"commit", "uncommitted_changes"} <= set(envelope["git"])
    assert {"cpu_model", "cpus", "mem_total_mb"} <= set(envelope["machine"])
    assert {"loadavg_before", "loadavg_after", "load1_peak"} <= set(envelope["load"])
    versions = set(envelope["versions"])
    assert {"python", "pyav", "pyav_ffmpeg", "pyav_libavformat", "etcd"} <= versions
    assert str(tmp_path) not in text and str(REPO) not in text
    assert scrub_paths(data) == data


def test_table_aligns_names_left_and_numbers_right() -> None:
    text = table(["metric", "n", "median"], [["claim", 5, "0.395"], ["frames_twice", 40, None]])
    assert text.splitlines() == [
        "metric         n  median",
        "------------------------",
        "claim          5   0.395",
        "frames_twice  40       -",
    ]


def test_nearest_rank_percentile_and_median() -> None:
    assert percentile([], 0.95) is None and median([]) is None
    assert percentile([0.4, 0.1, 0.3, 0.2, 0.5], 0.95) == 0.5
    assert percentile([1.0, 2.0], 0.5) == 1.0
    assert median([3.0, 1.0, 2.0]) == 2.0 and median([1.0, 2.0]) == 1.5


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")
def test_proc_readings_of_this_process() -> None:
    pid = os.getpid()
    assert cpu_seconds(pid) > 0 and rss_bytes(pid) > 0
    assert total_cpu_seconds([pid, 2**22 + 7]) == pytest.approx(cpu_seconds(pid), abs=0.5)
