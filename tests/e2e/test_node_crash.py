"""A real `hotspare node` process SIGKILLed mid-segment loses no indexed segment, salvages the open
segment's readable prefix, and shows the outage as one gap whose bounds are the last frame
before the kill and the first frame after the restart."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from hotspare.client.node_client import NodeClient
from hotspare.store.segment_store import SegmentStore
from tests.support.camsim import CameraSim, now_us
from tests.support.frames import all_segments, store_frames
from tests.support.node import make_node

FPS = 25
FRAME_US = 1_000_000 // FPS


def wait_for(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.mark.slow
def test_sigkill_node_mid_segment_then_restart(tmp_path: Path) -> None:
    with CameraSim(tmp_path / "sim", cameras=2, fps=FPS, gop="1s") as sim:
        node = make_node(
            tmp_path, "rec-1", [(c, sim.rtsp_url(c)) for c in sim.camera_ids], segment_seconds=2.0
        )
        token_file = tmp_path / "token"
        token_file.write_text(node.token)
        try:
            node.start()
            assert node.url is not None
            client = NodeClient(node.url, node.token)
            started_us = now_us()

            def committed() -> dict[str, list[dict]]:  # type: ignore[type-arg]
                return {
                    c: [s.model_dump() for s in client.list_segments(c, 0, now_us()).segments]
                    for c in sim.camera_ids
                }

            wait_for(
                lambda: all(len(v) >= 2 for v in committed().values()),
                30,
                "two committed segments per camera",
            )
            # Kill about 1 s into a segment: the open file holds ~25 frames not yet indexed.
            last_end = max(s["end_wall_us"] for s in committed()["cam-1"])
            time.sleep(max(0.0, (last_end + 1_000_000 - now_us()) / 1e6))
            before = committed()
            kill_us = now_us()
            node.kill()
            time.sleep(2.0)
            node.start()
            assert node.url is not None
            client = NodeClient(node.url, node.token)
            restarted_us = now_us()
            wait_for(
                lambda: all(
                    any(s["start_wall_us"] > restarted_us for s in v) for v in committed().values()
                ),
                30,
                "a segment of the new run per camera",
            )
            # The live node's Prometheus metrics count what its recorder committed.
            scraped = httpx.get(f"{node.url}/metrics",
                                headers={"Authorization": f"Bearer {node.token}"}, timeout=10)
            assert scraped.status_code == 200
            assert 'hotspare_cameras{state="recording"} 2.0' in scraped.text
            assert 'hotspare_segments_committed_total{camera="cam-1"}' in scraped.text
            timelines = {}
            for camera in sim.camera_ids:
                result = subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "hotspare",
                        "timeline",
                        camera,
                        "--node",
                        node.url,
                        "--token-file",
                        str(token_file),
                        "--from",
                        str(started_us - 5_000_000),
                        "--to",
                        str(now_us()),
                        "--json",
                    ],
                    capture_output=True,
                    text=True,
                    timeout=60,
                    check=True,
                )
                timelines[camera] = json.loads(result.stdout)
        finally:
            node.stop()
        sim.wait_logged("cam-1", now_us() - 500_000)

    store = SegmentStore.open(node.data_dir / "store", "rec-1")
    try:
        for camera in sim.camera_ids:
            segments = {s.segment_id: s for s in all_segments(store, camera)}
            # 1. Nothing indexed before the kill was lost or changed.
            for old in before[camera]:
                assert old["segment_id"] in segments, f"{camera}: indexed segment lost"
                assert segments[old["segment_id"]].sha256 == old["sha256"]
            # 2. The open segment was salvaged: its run has one more segment than was indexed.
            first_run = before[camera][0]["run_id"]
            runs = store.list_runs(camera, 0, 2**62)
            assert runs[0].run_id == first_run and len(runs) == 2, runs
            assert runs[0].end_reason == "crash"
            in_first = [s for s in segments.values() if s.run_id == first_run]
            assert len(in_first) == len(before[camera]) + 1, "open segment not salvaged"
            salvaged = max(in_first, key=lambda s: s.seq)
            assert salvaged.frame_count >= FPS // 2, salvaged  # ~1 s was written before the kill

            # 3. Frame by frame: every frame captured before the kill (less the last fragment in
            # flight) or after the first frame of the new run is stored once, none twice.
            frames = store_frames(store, camera, frame_us=FRAME_US)
            stored = {f.tag.frame_no: f for f in frames}
            before_kill = [f for f in frames if f.tag.capture_wall_us < kill_us]
            after = [f for f in frames if f.tag.capture_wall_us > kill_us]
            last_before, first_after = before_kill[-1], after[0]
            assert kill_us - last_before.tag.capture_wall_us <= 200_000, "lost more than in flight"
            delivered = [r for r in sim.frames(camera) if r.delivered]
            first_no = frames[0].tag.frame_no
            missing = [
                r.frame
                for r in delivered
                if r.frame >= first_no
                and r.frame not in stored
                and not last_before.tag.frame_no < r.frame < first_after.tag.frame_no
                and r.wall_us < frames[-1].tag.capture_wall_us
            ]
            assert not missing, f"{camera}: frames missing outside the outage: {missing[:10]}"

            # 4. The timeline reports exactly that one outage, bounded by those two frames.
            gaps = [
                g
                for g in timelines[camera]["gaps"]
                if g["start_wall_us"] > started_us and g["end_wall_us"] < restarted_us + 30e6
            ]
            inner = [g for g in gaps if g["end_wall_us"] <= first_after.wall_us + FRAME_US]
            assert len(inner) == 1, timelines[camera]["gaps"]
            gap = inner[0]
            assert abs(gap["start_wall_us"] - (last_before.wall_us + FRAME_US)) <= FRAME_US, gap
            assert abs(gap["end_wall_us"] - first_after.wall_us) <= FRAME_US, gap
            recorded_by = {r["recorded_by"] for r in timelines[camera]["runs"]}
            assert recorded_by == {"rec-1"}
    finally:
        store.close()
