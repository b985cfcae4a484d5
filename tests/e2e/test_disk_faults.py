"""Disk faults under a running node: writes failing with EIO (a dying disk), the file system
turned read-only (what the kernel does after an error), and a slow disk — each through a FUSE
layer between the node and its data folder (tests/support/faultyfs.py).

Expected of the node in each: it keeps running and keeps answering, says on /health which camera
cannot record and why (the errno's words, and advice that fits them), commits no row for a file it
could not write, and records again on its own once the disk behaves; a disk that is only slow for
a few seconds costs no frame; the store passes `hotspare store check` after (tests/e2e/conftest.py
runs it on every store the test made).
"""

from __future__ import annotations

import errno
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import httpx
import pytest

from hotspare.client.node_client import NodeClient
from hotspare.store.check import check_store
from hotspare.store.layout import INDEX_NAME
from hotspare.store.segment_store import SegmentStore
from tests.support.camsim import CameraSim, now_us
from tests.support.faultyfs import FaultyFs
from tests.support.frames import store_frames
from tests.support.node import NodeProcess, make_node
from tests.support.site import wait_for

pytestmark = pytest.mark.slow

FPS = 10


@contextmanager
def node_on_faulty_disk(tmp_path: Path) -> Iterator[tuple[NodeProcess, NodeClient, FaultyFs, str]]:
    with CameraSim(tmp_path / "sim", cameras=1, fps=FPS, gop="1s", width=320, height=240,
                   bitrate_kbps=300) as sim:
        camera = sim.camera_ids[0]
        node = make_node(tmp_path, "rec-1", [(camera, sim.rtsp_url(camera))], segment_seconds=1.0)
        with FaultyFs(tmp_path / "disk", node.data_dir) as disk:
            try:
                node.start()
                assert node.url is not None
                with NodeClient(node.url, node.token) as client:
                    wait_for("two committed segments", lambda: len(segments(client, camera)) >= 2,
                             30)
                    yield node, client, disk, camera
            finally:
                node.stop()


def segments(client: NodeClient, camera: str, after_us: int = 0) -> list[int]:
    return [s.segment_id for s in client.list_segments(camera, after_us, now_us()).segments
            if s.start_wall_us >= after_us]


def camera_health(client: NodeClient, camera: str) -> tuple[str, str]:
    health = client.health()
    entry = next(c for c in health.cameras if c.camera_id == camera)
    return entry.state, entry.error or ""


def recovers(node: NodeProcess, client: NodeClient, camera: str, healed_us: int) -> None:
    """Recording again without a restart: a new segment after the fault, camera `recording`."""
    wait_for("a segment committed after the disk healed",
             lambda: segments(client, camera, healed_us), 30)
    wait_for("the camera recording again", lambda: camera_health(client, camera)[0] == "recording",
             15)
    assert node.process is not None and node.process.poll() is None


def test_eio_on_segment_writes_is_reported_and_recording_resumes(tmp_path: Path) -> None:
    with node_on_faulty_disk(tmp_path) as (node, client, disk, camera):
        with disk.faults.lock:
            disk.faults.write_filter = lambda path: "/segments/" in path
            disk.faults.write_errno = errno.EIO
        state = wait_for("the camera reported failing with the disk's error", lambda: (
            s := camera_health(client, camera))[0] != "recording" and "Input/output" in s[1]
            and s, 20)
        assert "I/O error" in state[1] and "retries" in state[1], state  # the advice fits
        print(f"health during EIO: {state}")
        time.sleep(2.0)
        assert node.process is not None and node.process.poll() is None
        with disk.faults.lock:
            disk.faults.write_errno = None
        assert disk.faults.failed_writes > 0
        recovers(node, client, camera, now_us())


def test_read_only_file_system_is_reported_and_recording_resumes(tmp_path: Path) -> None:
    with node_on_faulty_disk(tmp_path) as (node, client, disk, camera):
        with disk.faults.lock:
            disk.faults.read_only = True
        state = wait_for("the camera reported failing: read-only file system", lambda: (
            s := camera_health(client, camera))[0] != "recording" and "Read-only" in s[1]
            and s, 20)
        assert "remount" in state[1], state  # the advice fits a read-only file system
        print(f"health while read-only: {state}")
        time.sleep(2.0)
        assert node.process is not None and node.process.poll() is None
        with disk.faults.lock:
            disk.faults.read_only = False
        recovers(node, client, camera, now_us())


def test_slow_disk_for_a_few_seconds_loses_no_frame(tmp_path: Path) -> None:
    """80 ms added to every write and fsync for 6 s (slower than the stream needs): the recorder
    falls behind and catches up; every frame the camera delivered is stored once."""
    with node_on_faulty_disk(tmp_path) as (node, client, disk, camera):
        slow_from = now_us()
        with disk.faults.lock:
            disk.faults.write_delay_s = 0.08
        time.sleep(6.0)
        with disk.faults.lock:
            disk.faults.write_delay_s = 0.0
            delayed = disk.faults.delayed_s
        print(f"slow disk: {delayed:.1f} s of write/fsync delay added in 6 s")
        assert delayed > 6.0, delayed  # more delay than the stretch lasted
        recovers(node, client, camera, now_us())
        time.sleep(2.0)
        health = camera_health(client, camera)
        assert health[0] == "recording", health
    store = SegmentStore.open(tmp_path / "disk" / "store", "rec-1")  # what was behind the mount
    try:
        frames = store_frames(store, camera, frame_us=1_000_000 // FPS + 50_000)
    finally:
        store.close()
    numbers = {f.tag.frame_no for f in frames}
    slow = [f for f in frames if f.tag.capture_wall_us >= slow_from]
    assert slow, "no frame stored from the slow stretch"
    missing = [n for n in range(min(numbers), max(numbers) + 1) if n not in numbers]
    assert not missing, f"frames lost on a slow disk: {missing[:20]} ({len(missing)})"


def test_eio_on_reading_a_segment_answers_503_and_the_node_keeps_serving(tmp_path: Path) -> None:
    """A bad sector under one stored segment: reading it fails with EIO. Its download and
    playback (the same route: playlists list `/segments/{id}/file`) answer a 503 problem that
    names the segment and what to do, never a traceback or a 200 cut short; the other segments
    are served, the node records on, and `hotspare store check` lists the segment."""
    with node_on_faulty_disk(tmp_path) as (node, client, disk, camera):
        bad, good = segments(client, camera)[:2]
        store_dir = node.data_dir / "store"
        with closing(sqlite3.connect(f"file:{store_dir / INDEX_NAME}?mode=ro", uri=True)) as db:
            relpath = str(db.execute("SELECT relpath FROM segment WHERE segment_id = ?",
                                     (bad,)).fetchone()[0])
        assert node.url is not None
        url = f"{node.url}/api/v1/segments"
        headers = {"Authorization": f"Bearer {node.token}"}
        with disk.faults.lock:
            disk.faults.read_filter = lambda path: path.endswith(relpath)
            disk.faults.read_errno = errno.EIO
        for params in ({}, {"raw": "1"}, {"part": "media"}):
            answer = httpx.get(f"{url}/{bad}/file", params=params, headers=headers, timeout=10)
            assert answer.status_code == 503, (params, answer.status_code, answer.text[:300])
            problem = answer.json()
            assert problem["error"] == "segment_unreadable", problem
            detail = problem["detail"]
            assert f"segment {bad} ({relpath})" in detail and "I/O error" in detail, detail
            assert "store check" in detail, detail
        ranged = httpx.get(f"{url}/{bad}/file", params={"raw": "1"},  # how HLS asks for it
                           headers={**headers, "Range": "bytes=0-999"}, timeout=10)
        assert ranged.status_code == 503 and ranged.json()["error"] == "segment_unreadable", (
            ranged.status_code, ranged.text[:300])
        print("503 detail:", detail)
        assert httpx.get(f"{url}/{good}/file", headers=headers, timeout=10).status_code == 200
        report = check_store(store_dir)
        unreadable = [f for f in report.findings if f.kind == "file_unreadable"]
        assert [f.where for f in unreadable] == [f"segment {bad} ({relpath})"], report.findings
        print("store check:", unreadable[0].line())
        assert disk.faults.failed_reads > 0
        assert node.process is not None and node.process.poll() is None
        assert camera_health(client, camera)[0] == "recording"
        with disk.faults.lock:
            disk.faults.read_errno = None
        assert httpx.get(f"{url}/{bad}/file", headers=headers, timeout=10).status_code == 200
