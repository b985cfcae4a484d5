"""Gap repair's parts (failover/gap_repair.py, docs/failover.md "Gap repair"): the hole search,
the pre-buffer's non-destructive span copy, the demux thread's hand-over of a span to the
thread that writes it, the original's admission of a repair upload, and repair passes against a
fake server (events, frames, what is not repairable, one listing per server, the fallback for an
older server, a full queue). The whole path with real processes and a flapping link is
tests/e2e/test_gap_repair_flapping.py."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import av.packet
import httpx
import pytest

from hotspare.api.auth import Principal
from hotspare.api.fencing import ImportGate, ImportRefused
from hotspare.api.roles import Role
from hotspare.client.node_client import NodeApiError
from hotspare.config.models import CameraConfig, RecordingSettings
from hotspare.failover.gap_repair import GapRepair, Hole, holes_in
from hotspare.metrics import REGISTRY
from hotspare.recorder.audio import AudioTrack
from hotspare.recorder.prebuffer import PreBuffer, StandbySettings
from hotspare.recorder.worker import CameraWorker, SpanCopy
from hotspare.sitestate import layout
from hotspare.sitestate.layout import FENCING_HEADER, REPAIR_HEADER
from hotspare.store.models import RunInfo, WallSource
from hotspare.store.segment_store import SegmentStore
from hotspare.wire import ImportMetaIn, ImportOut, SegmentList, SegmentLists, SegmentOut
from tests.support.api_node import record_run
from tests.support.clips import make_h264_file
from tests.support.fake_site_state import FakeEvents, FakeSite

S = 1_000_000
T0 = time.time_ns() // 1000  # the repair forgets holes by the real clock: reset per test


@pytest.fixture(autouse=True)
def _now() -> None:
    """T0 is "now" for each test: set at import, a suite's earlier tests made it older than the
    repair's 30 s look-back, and holes it had settled were forgotten and repaired again."""
    global T0
    T0 = time.time_ns() // 1000


@dataclass(frozen=True)
class Row:
    start_wall_us: int
    end_wall_us: int
    frame_count: int = 10
    duration_90k: int = 90_000  # 10 frames a second


def test_holes_are_the_stretches_between_segments_longer_than_half_a_frame() -> None:
    rows = [Row(T0, T0 + S), Row(T0 + S + 20_000, T0 + 2 * S),  # 20 ms of jitter: no hole
            Row(T0 + 2 * S + 700_000, T0 + 3 * S)]              # 0.7 s lost
    assert holes_in(rows) == [Hole(T0 + 2 * S, T0 + 2 * S + 700_000)]
    # an imported segment over the hole (any recorder) covers it; order does not matter
    assert holes_in([*reversed(rows), Row(T0 + 2 * S - 300_000, T0 + 2 * S + 700_000)]) == []
    assert holes_in([]) == [] and holes_in(rows[:1]) == []


def _packet(pts: int, keyframe: bool) -> av.packet.Packet:
    packet = av.packet.Packet(bytes([pts % 251]) * 100)
    packet.pts = packet.dts = pts
    packet.is_keyframe = keyframe
    return packet


def _buffer() -> PreBuffer:
    """GOPs received at 0, 1, 2 and 3 s (4 frames each, pts in µs for the test's clock)."""
    buffer = PreBuffer(StandbySettings(horizon_s=100.0, max_bytes=1 << 30))
    for gop in range(4):
        for frame in range(4):
            at = T0 + gop * S + frame * 250_000
            buffer.add(_packet(at - T0, frame == 0), at)
    return buffer


def _wall(pts: int | None, recv_us: int) -> int:
    return recv_us


def test_a_span_is_copied_in_whole_gops_and_leaves_the_buffer_as_it_was() -> None:
    buffer = _buffer()
    packets, reach = buffer.copy_span(_wall, T0 + S + 500_000, T0 + 2 * S + 900_000)
    assert reach == T0
    # from the keyframe at or before the hole's start through the GOP before its end
    assert [p.pts for p, _ in packets] == [(S + i * 250_000) for i in range(8)]
    assert packets[0][0].is_keyframe and not packets[1][0].is_keyframe
    packets[0][0].pts = 0  # a mux rewrites timing in place: only the copy changes
    again, _ = buffer.copy_span(_wall, T0 + S, T0 + 2 * S)
    assert [p.pts for p, _ in again] == [S + i * 250_000 for i in range(4)]
    assert bytes(again[0][0]) == bytes(packets[0][0])
    # a hole ending at a keyframe does not take that GOP (the server holds it)
    assert len(buffer.copy_span(_wall, T0 + 3 * S - 1, T0 + 3 * S)[0]) == 4
    # a hole older than the buffer starts at its oldest GOP, and says how far back it reaches
    packets, reach = buffer.copy_span(_wall, T0 - 5 * S, T0 + S)
    assert reach == T0 and [p.pts for p, _ in packets][:1] == [0] and len(packets) == 4
    assert PreBuffer(StandbySettings(1.0, 1 << 20)).copy_span(_wall, T0, T0 + S) == ([], None)


class SlowDisk:
    """A store whose first write waits for `release` (a slow disk), noting the thread that
    wrote."""

    def __init__(self, store: SegmentStore) -> None:
        self._store = store
        self.release = threading.Event()
        self.writers: list[str] = []

    def begin_run(self, camera_id: str, recorded_as: str, anchor_wall_us: int,
                  wall_source: WallSource) -> RunInfo:
        self.writers.append(threading.current_thread().name)
        self.release.wait(5.0)
        return self._store.begin_run(camera_id, recorded_as, anchor_wall_us, wall_source)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def test_the_demux_thread_hands_a_span_over_and_the_asker_writes_it(tmp_path: Path) -> None:
    """The demux thread only copies the span's packets: the run is written on the asking
    (gap repair) thread, so a slow disk there does not keep the camera from being read. Before
    (2026-12-05) the demux thread wrote the span itself and waited for the disk."""
    clip = make_h264_file(tmp_path / "clip.mp4", frames=40, gop=10)
    store = SegmentStore.open(tmp_path / "repair", "spare-1")
    disk = SlowDisk(store)
    settings = StandbySettings(horizon_s=100.0, max_bytes=1 << 30)
    worker = CameraWorker(CameraConfig(id="cam-1", url="rtsp://127.0.0.1:1/none"), "spare-1",
                          store, RecordingSettings(segment_seconds=1.0), standby=settings)
    copies: list[SpanCopy | None] = []
    try:
        with av.open(str(clip)) as src:
            buffer = PreBuffer(settings)
            for i, packet in enumerate(p for p in src.demux(src.streams.video[0]) if p.size):
                buffer.add(packet, T0 + i * 40_000)  # 25 fps; keyframes at frames 0, 10, 20, 30
            asker = threading.Thread(target=lambda: copies.append(worker.copy_span(
                T0 + 12 * 40_000, T0 + 25 * 40_000, disk, 10.0)), name="asker")  # type: ignore[arg-type]
            asker.start()
            deadline = time.monotonic() + 10
            while worker._spans.empty() and time.monotonic() < deadline:
                time.sleep(0.01)
            worker._answer_spans(src, buffer)  # the demux thread's part, at its next packet
            assert not disk.release.is_set()  # returned while the disk is still stuck
            disk.release.set()
            asker.join(20)
        assert not asker.is_alive()
        assert disk.writers == ["asker"]
        (copy,) = copies
        assert copy is not None and copy.run_id is not None
        assert copy.frames == 20  # the GOPs of frames 10 and 20: the hole 12..25 in whole GOPs
        assert sum(s.frame_count for s in store.list_recorded_as("spare-1")) == 20
        assert len(buffer.copy_span(lambda pts, recv: recv, T0, T0 + 2 * S)[0]) == 40  # intact
        assert worker._span_users == 0  # the session's stream may be closed again
    finally:
        disk.release.set()
        store.close()


def test_a_span_decodes_g711_audio_with_a_decoder_of_its_own(tmp_path: Path) -> None:
    """The span is written off the demux thread, which may decode the same stream meanwhile
    (a takeover's replay): one decoder context used by two threads at once is undefined in
    FFmpeg."""
    path = tmp_path / "g711.wav"
    with av.open(str(path), "w", format="wav") as out:
        stream = out.add_stream("pcm_mulaw", rate=8000, layout="mono")
        for i in range(10):
            frame = av.AudioFrame(format="s16", layout="mono", samples=160)
            frame.planes[0].update(bytes(320))
            frame.sample_rate, frame.pts = 8000, i * 160
            for packet in stream.encode(frame):
                out.mux(packet)
    with av.open(str(path)) as src:
        track = AudioTrack.of(src, "cam-1", own_decoder=True)
        assert track is not None and track.transcoded
        aac = [out for p in src.demux(src.streams.audio[0]) if p.size for out in track.packets(p)]
        aac += track.packets(None)
        assert len(aac) == 2  # 1600 samples: two AAC frames of 1024, the last one flushed
        assert not src.streams.audio[0].codec_context.is_open  # the session's was not used


SPARE_1 = Principal("spare-1", Role.NODE, node="spare-1")


def test_a_repair_is_admitted_only_from_a_spare_pre_buffering_the_server_and_without_claim(
) -> None:
    site = FakeSite()
    gate = ImportGate(site, "rec-1", lambda: {"spare-1", "spare-2"})

    def refusal(principal: Principal) -> tuple[int, str]:
        with pytest.raises(ImportRefused) as refused:
            gate.admit(principal, None, repair=True)
        return refused.value.status, refused.value.error

    assert refusal(SPARE_1) == (403, "not_standby_holder")  # no standby record
    site.etcd.put_json(layout.standby("spare-1"),
                       {"cameras": {"cam-9": {"server": "rec-2", "state": "buffering"}}})
    assert refusal(SPARE_1) == (403, "not_standby_holder")  # it pre-buffers another server
    site.etcd.put_json(layout.standby("spare-1"),
                       {"cameras": {"cam-1": {"server": "rec-1", "state": "buffering"}}})
    admission = gate.admit(SPARE_1, None, repair=True)
    assert admission.repair and admission.fencing is None
    admission.recheck()
    # without the repair mark, the same upload is a leftover re-insert: no buffer record, refused
    with pytest.raises(ImportRefused):
        gate.admit(SPARE_1, None)
    rec_2 = Principal("rec-2", Role.NODE, node="rec-2")
    site.etcd.put_json(layout.standby("rec-2"), {"cameras": {"cam-1": {"server": "rec-1"}}})
    assert refusal(rec_2) == (403, "not_standby_holder")  # not a failover server of the site
    site.etcd.put_json(layout.claim("rec-1"), {"spare": "spare-2"})
    assert refusal(SPARE_1) == (409, "fencing_required")  # a claim's re-insert covers it
    with pytest.raises(ImportRefused):
        admission.recheck()  # the store asks again inside its transaction


class FakeWorker:
    """A standby worker whose pre-buffer reaches back to `reach`; a span is a 1-segment run."""

    in_standby = True

    def __init__(self, reach: int | None, camera: str = "cam-1") -> None:
        self.standby_since_us = T0 - 60 * S
        self.reach = reach
        self.camera = camera
        self.spans: list[tuple[int, int]] = []

    def copy_span(self, from_us: int, to_us: int, store: SegmentStore,
                  timeout_s: float) -> SpanCopy:
        self.spans.append((from_us, to_us))
        if self.reach is None or self.reach >= to_us:
            return SpanCopy(None, 0, self.reach)
        run, _ = record_run(store, self.camera, max(from_us, self.reach) - 200_000, 1,
                            recorded_as="rec-1")
        return SpanCopy(run.run_id, 10, self.reach)


class FakeServer:
    """rec-1's API as the repair sees it: one hole in each camera's segments (None: none);
    imports trimmed. `listing`: what the multi-camera listing answers ("ok", or the error of
    an older server, "not_found", or another refusal)."""

    def __init__(self, hole: Hole | None, error: str | None = None,
                 listing: str = "ok") -> None:
        self.hole = hole
        self.error = error
        self.listing = listing
        self.requests: list[tuple[str, int]] = []  # ("cameras", how many) or ("camera", 1)
        self.imports: list[ImportMetaIn] = []
        self.marks: list[dict[str, str]] = []  # the repair's headers at each import
        self._http = httpx.Client()

    def __enter__(self) -> FakeServer:
        return self

    def __exit__(self, *_: object) -> None:
        return None

    def close(self) -> None:
        self._http.close()

    def list_segments(self, camera: str, from_us: int, to_us: int) -> SegmentList:
        self.requests.append(("camera", 1))
        return self._list(camera, from_us, to_us)

    def list_cameras_segments(self, cameras: list[str], from_us: int,
                              to_us: int) -> SegmentLists:
        self.requests.append(("cameras", len(cameras)))
        if self.listing == "not_found":
            raise NodeApiError(404, "not_found", "no such route")
        if self.listing != "ok":
            raise NodeApiError(404, self.listing, "no")
        return SegmentLists(from_wall_us=from_us, to_wall_us=to_us,
                            cameras=[self._list(c, from_us, to_us) for c in cameras])

    def _list(self, camera: str, from_us: int, to_us: int) -> SegmentList:
        hole = self.hole or Hole(T0 - 3 * S, T0 - 3 * S)
        rows = [_row(hole.from_us - S, hole.from_us), _row(hole.to_us, hole.to_us + S)]
        return SegmentList(camera_id=camera, from_wall_us=from_us, to_wall_us=to_us,
                           segments=rows, truncated=False, next=None)

    def import_segment(self, camera: str, meta: ImportMetaIn, path: Path) -> ImportOut:
        self.marks.append({k: v for k, v in self.server_headers().items() if k in MARKS})
        if self.error is not None:
            raise NodeApiError(409 if self.error == "fencing_required" else 403, self.error, "no")
        self.imports.append(meta)
        stored = _row(meta.start_wall_us, meta.start_wall_us + S)
        return ImportOut(status="trimmed", segment=stored.model_copy(update={
            "frame_count": 10, "head_skip_frames": 2}))


    def server_headers(self) -> dict[str, str]:
        return {k.lower(): v for k, v in self._http.headers.items()}


MARKS = {FENCING_HEADER.lower(), REPAIR_HEADER.lower()}


def _row(start: int, end: int) -> SegmentOut:
    return SegmentOut(segment_id=1, camera_id="cam-1", run_id="r", seq=0, recorded_by="rec-1",
                      recorded_as="rec-1", start_wall_us=start, end_wall_us=end,
                      start_media_90k=0, duration_90k=(end - start) * 9 // 100, frame_count=10,
                      head_skip_frames=0, bytes=100, init_bytes=10, sha256="0" * 64,
                      reinsert_pending=False, imported_from=None)


def _pass(tmp_path: Path, worker: FakeWorker, server: FakeServer,
          token: int | None = None, covered_until: int = 0) -> FakeEvents:
    events = FakeEvents()
    repair = GapRepair("spare-1", lambda: {("rec-1", "cam-1"): worker},  # type: ignore[dict-item]
                       lambda name: server, events, tmp_path / "repair",  # type: ignore[arg-type,return-value]
                       lambda name: token if name == "rec-1" else None,
                       lambda name: covered_until if name == "rec-1" else 0)
    try:
        for _ in range(2):  # a hole is repaired (or reported) once
            repair.repair_once()
            repair.write_queued()
    finally:
        repair.stop()
    return events


def _data(events: FakeEvents, kind: str) -> list[dict[str, Any]]:
    return [data for k, _, _, data in events.emitted if k == kind]


def test_a_hole_inside_the_pre_buffer_is_uploaded_and_reported_once(tmp_path: Path) -> None:
    now = T0
    hole = Hole(now - 3 * S, now - 3 * S + 700_000)
    worker, server = FakeWorker(reach=now - 10 * S), FakeServer(hole)
    events = _pass(tmp_path, worker, server)
    assert worker.spans == [(hole.from_us, hole.to_us)]
    assert len(server.imports) == 1 and server.imports[0].recorded_as == "rec-1"
    assert server.imports[0].recorded_by == "spare-1"
    repaired = _data(events, "gap_repaired")
    assert repaired == [{"camera": "cam-1", "seconds": 0.7, "frames": 8, "from_us": hole.from_us,
                         "to_us": hole.to_us}]
    assert not _data(events, "gap_not_repairable")
    assert not list((tmp_path / "repair" / "rec-1" / "segments").rglob("*.mp4"))
    assert server.marks == [{REPAIR_HEADER.lower(): "gap"}]


def test_while_this_spare_holds_the_claim_a_repair_goes_under_its_token(tmp_path: Path) -> None:
    """During its re-insert, after its recorder stopped, the spare keeps standby sessions to the
    server (handback.py): a hole then is uploaded as an import under the claim."""
    hole = Hole(T0 - 3 * S, T0 - 2 * S)
    server = FakeServer(hole)
    events = _pass(tmp_path, FakeWorker(reach=T0 - 10 * S), server, token=42)
    assert server.marks == [{FENCING_HEADER.lower(): layout.fence("rec-1", 42)}]
    assert [d["frames"] for d in _data(events, "gap_repaired")] == [8]
    # a refusal under our own claim (token moved on, etcd hiccup) is tried again next pass
    worker = FakeWorker(reach=T0 - 10 * S)
    _pass(tmp_path, worker, FakeServer(hole, error="fencing_required"), token=42)
    assert len(worker.spans) == 2


def test_a_hole_older_than_the_pre_buffer_is_reported_not_repairable(tmp_path: Path) -> None:
    hole = Hole(T0 - 20 * S, T0 - 19 * S)
    events = _pass(tmp_path, FakeWorker(reach=T0 - 10 * S), FakeServer(hole))
    assert _data(events, "gap_not_repairable") == [
        {"camera": "cam-1", "seconds": 1.0, "from_us": hole.from_us, "to_us": hole.to_us}]
    assert not _data(events, "gap_repaired")
    # partly inside: the rest is repaired, the part before the buffer reported
    hole = Hole(T0 - 11 * S, T0 - 9 * S)
    events = _pass(tmp_path, FakeWorker(reach=T0 - 10 * S), FakeServer(hole))
    assert [d["seconds"] for d in _data(events, "gap_not_repairable")] == [1.0]
    assert [d["frames"] for d in _data(events, "gap_repaired")] == [8]


def test_a_claim_on_the_server_ends_the_repair_quietly(tmp_path: Path) -> None:
    hole = Hole(T0 - 3 * S, T0 - 2 * S)
    worker = FakeWorker(reach=T0 - 10 * S)
    events = _pass(tmp_path, worker, FakeServer(hole, error="fencing_required"))
    assert events.emitted == [] and len(worker.spans) == 1  # settled: not tried again
    worker = FakeWorker(reach=T0 - 10 * S)
    events = _pass(tmp_path, worker, FakeServer(hole, error="not_standby_holder"))
    assert events.emitted == [] and len(worker.spans) == 2  # refused: tried again next pass


def test_a_hole_while_the_server_was_covered_is_left_to_the_claims_re_insert(
        tmp_path: Path) -> None:
    """A backup or handback standby sees the covered time as a hole in the server's own
    recording until the re-insert brings it home: not a gap, and never `gap_not_repairable`."""
    hole = Hole(T0 - 20 * S, T0 - 2 * S)  # older than the buffer too: would be reported
    worker, server = FakeWorker(reach=T0 - 10 * S), FakeServer(hole)
    events = _pass(tmp_path, worker, server, covered_until=T0 - S)
    assert events.emitted == [] and worker.spans == [] and server.imports == []
    # a hole after the server confirmed its return is a gap again
    events = _pass(tmp_path, FakeWorker(reach=T0 - 10 * S), FakeServer(hole),
                   covered_until=T0 - 21 * S)
    assert [d["seconds"] for d in _data(events, "gap_not_repairable")] == [10.0]


def _repair(tmp_path: Path, workers: dict[tuple[str, str], FakeWorker], server: FakeServer,
            events: FakeEvents, queue_size: int = 256) -> GapRepair:
    return GapRepair("spare-1", lambda: workers,  # type: ignore[arg-type,return-value]
                     lambda name: server, events, tmp_path / "repair",  # type: ignore[arg-type,return-value]
                     queue_size=queue_size)


def test_one_listing_a_second_covers_every_camera_of_a_server(tmp_path: Path) -> None:
    """64 pre-buffered cameras on one server: 1 request a pass, not 64 (before 2026-12-05)."""
    workers = {("rec-1", f"cam-{i}"): FakeWorker(T0 - 10 * S, f"cam-{i}") for i in range(64)}
    server = FakeServer(None)
    repair = _repair(tmp_path, workers, server, FakeEvents())
    try:
        repair.repair_once()
        assert server.requests == [("cameras", 64)]
        repair.repair_once()
        assert server.requests == [("cameras", 64)] * 2
    finally:
        repair.stop()


def test_a_server_without_the_multi_camera_listing_is_listed_per_camera(tmp_path: Path) -> None:
    """An older server answers the route with 404 `not_found` (version skew): its cameras are
    listed one request each, and the route is not asked again every second."""
    workers = {("rec-1", f"cam-{i}"): FakeWorker(T0 - 10 * S, f"cam-{i}") for i in range(3)}
    hole = Hole(T0 - 3 * S, T0 - 2 * S)
    server, events = FakeServer(hole, listing="not_found"), FakeEvents()
    repair = _repair(tmp_path, workers, server, events)
    try:
        repair.repair_once()
        assert server.requests == [("cameras", 3)] + [("camera", 1)] * 3
        repair.write_queued()
        repair.repair_once()
        assert server.requests == [("cameras", 3)] + [("camera", 1)] * 6
    finally:
        repair.stop()
    assert sorted(d["camera"] for d in _data(events, "gap_repaired")) == ["cam-0", "cam-1",
                                                                           "cam-2"]
    # Another refusal (here: a camera the server does not know) is not an older server: the
    # server is asked again next pass, not listed per camera meanwhile.
    server = FakeServer(hole, listing="unknown_camera")
    repair = _repair(tmp_path, workers, server, FakeEvents())
    try:
        repair.repair_once()
        repair.repair_once()
    finally:
        repair.stop()
    assert server.requests == [("cameras", 3)] * 2


def _queue_full() -> float:
    return REGISTRY.get_sample_value("hotspare_gap_repair_queue_full_total",
                                     {"server": "rec-1"}) or 0.0


def test_a_hole_found_while_the_queue_is_full_waits_for_the_next_pass(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The search never waits for the writer (nor for any demux thread): a hole that finds the
    queue full is counted, warned about once, and found again at a later pass."""
    workers = {("rec-1", c): FakeWorker(T0 - 10 * S, c) for c in ("cam-1", "cam-2")}
    hole = Hole(T0 - 3 * S, T0 - 2 * S)
    server, events = FakeServer(hole), FakeEvents()
    repair = _repair(tmp_path, workers, server, events, queue_size=1)
    full_before = _queue_full()
    try:
        with caplog.at_level(logging.WARNING, "hotspare.failover.gap_repair"):
            repair.repair_once()
            repair.repair_once()  # the same two holes: cam-1's queued already, cam-2's waits
        assert _queue_full() - full_before == 2
        waits = [r.getMessage() for r in caplog.records if "waits" in r.getMessage()]
        assert len(waits) == 1 and "rec-1's cam-2" in waits[0]  # warned once
        assert all(not w.spans for w in workers.values())  # nothing cut yet
        repair.write_queued()
        assert [d["camera"] for d in _data(events, "gap_repaired")] == ["cam-1"]
        repair.repair_once()  # cam-1's is settled; cam-2's now finds room
        repair.write_queued()
    finally:
        repair.stop()
    assert [d["camera"] for d in _data(events, "gap_repaired")] == ["cam-1", "cam-2"]
    assert [len(w.spans) for w in workers.values()] == [1, 1]
    assert _queue_full() - full_before == 2


def test_the_writer_thread_repairs_what_the_search_queues(tmp_path: Path) -> None:
    """Started, the two threads work on their own: a hole found is written and reported."""
    workers = {("rec-1", "cam-1"): FakeWorker(T0 - 10 * S)}
    events = FakeEvents()
    repair = _repair(tmp_path, workers, FakeServer(Hole(T0 - 3 * S, T0 - 2 * S)), events)
    repair.start()
    try:
        deadline = time.monotonic() + 20
        while not _data(events, "gap_repaired") and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        repair.stop()
    assert [d["frames"] for d in _data(events, "gap_repaired")] == [8]
