"""Segment files and cutting, fed from a local H.264 file instead of RTSP (same PyAV code path)."""

from __future__ import annotations

import threading
from itertools import count
from pathlib import Path

import av
import av.logging
import pytest

from hotspare.config.models import CameraConfig, RecordingSettings
from hotspare.recorder.rtp_loss import LossWatch
from hotspare.recorder.segment_writer import SegmentWriter
from hotspare.recorder.worker import STOPPED, CameraWorker, _Run
from hotspare.store import mp4
from hotspare.store.models import RunInfo, SegmentInfo, WallSource
from tests.support.clips import make_h264_aac_file, make_h264_file


@pytest.fixture(scope="module")
def h264_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_h264_file(tmp_path_factory.mktemp("clip") / "clip.mp4")


class FakeStore:
    """Records calls in order; the real store is exercised by the e2e tests."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.calls: list[tuple[object, ...]] = []
        self._ids = count(1)
        self._lock = threading.Lock()

    def begin_run(
        self, camera_id: str, recorded_as: str, anchor_wall_us: int, wall_source: WallSource
    ) -> RunInfo:
        run_id = f"run{next(self._ids)}"
        self.calls.append(("begin", run_id, recorded_as, wall_source))
        return RunInfo(
            run_id,
            camera_id,
            "me",
            recorded_as,
            anchor_wall_us,
            wall_source,
            anchor_wall_us,
            None,
            None,
        )

    def update_run_anchor(self, run_id: str, anchor_wall_us: int, wall_source: WallSource) -> None:
        self.calls.append(("anchor", run_id, wall_source))

    def segment_path(self, camera_id: str, run_id: str, seq: int) -> Path:
        return self.root / camera_id / run_id / f"{seq:06d}.mp4"

    def commit_segment(
        self,
        run_id: str,
        seq: int,
        start_media_90k: int,
        duration_90k: int,
        frame_count: int,
        init_bytes: int,
    ) -> SegmentInfo:
        with self._lock:
            self.calls.append(
                ("commit", run_id, seq, start_media_90k, duration_90k, frame_count, init_bytes)
            )
        return None  # type: ignore[return-value]

    def end_run(self, run_id: str, ended_wall_us: int, reason: str) -> None:
        self.calls.append(("end", run_id, reason))


def test_segment_file_carries_its_start_media_time(tmp_path: Path, h264_file: Path) -> None:
    with av.open(str(h264_file)) as src:
        stream = src.streams.video[0]
        packets = [p for p in src.demux(stream) if p.size]
        writer = SegmentWriter(tmp_path / "seg.mp4", stream, start_media_90k=900_000)
        for i, packet in enumerate(packets[:10]):
            writer.write(packet, 900_000 + i * 3600, 900_000 + i * 3600)
        written = writer.close(900_000 + 10 * 3600)
    assert written.frame_count == 10 and written.duration_90k == 36_000
    info = mp4.parse_path(written.path)
    assert info.start_media_90k == 900_000  # tfdt, not rebased to 0
    assert info.frame_count == 10
    assert info.init_bytes == written.init_bytes
    with av.open(str(written.path)) as back:
        pts = [p.pts for p in back.demux() if p.size]
    assert pts[0] == 900_000 and pts[-1] == 900_000 + 9 * 3600


def test_unclosed_segment_keeps_all_but_the_last_frame(tmp_path: Path, h264_file: Path) -> None:
    """What a SIGKILL would leave: every fragment but the frame still held by the muxer."""
    with av.open(str(h264_file)) as src:
        stream = src.streams.video[0]
        packets = [p for p in src.demux(stream) if p.size]
        path = tmp_path / "open.mp4"
        writer = SegmentWriter(path, stream, start_media_90k=0)
        for i, packet in enumerate(packets[:17]):
            writer.write(packet, i * 3600, i * 3600)
        info = mp4.parse_path(path)  # read while still open, like reconcile after a crash
        assert info.frame_count == 16
        writer.abandon()


def _worker(store: FakeStore, segment_seconds: float) -> CameraWorker:
    camera = CameraConfig(id="cam-1", url="rtsp://127.0.0.1:1/none")
    return CameraWorker(
        camera, "server-a", store, RecordingSettings(segment_seconds=segment_seconds)
    )


def test_run_cuts_on_keyframes_and_skips_frames_before_the_first(tmp_path: Path) -> None:
    clip = make_h264_file(tmp_path / "clip.mp4", frames=60, gop=10)
    store = FakeStore(tmp_path / "store")
    worker = _worker(store, segment_seconds=0.5)  # 12.5 frames: cut at every second keyframe
    with av.open(str(clip)) as src:
        run = _Run(worker, src)
        packets = [p for p in src.demux(src.streams.video[0]) if p.size]
        for packet in packets[3:]:  # join mid-GOP: frames 3..9 cannot be decoded, skip them
            run.on_packet(packet)
        run.finish(STOPPED)
    worker._committer.close(10)
    commits = [c for c in store.calls if c[0] == "commit"]
    assert [c[3] for c in commits] == [0, 72_000, 144_000]  # starts: frames 10, 30, 50
    assert [c[5] for c in commits] == [20, 20, 10]  # 50 frames recorded, 7 skipped
    assert commits[-1][4] == 36_000  # last one ends one frame after its last frame
    assert store.calls[0][0] == "begin" and store.calls[0][3] is WallSource.LOCAL
    assert store.calls[-1] == ("end", "run1", STOPPED)
    for _, run_id, seq, start, *_ in commits:
        info = mp4.parse_path(store.segment_path("cam-1", str(run_id), int(seq)))  # type: ignore[arg-type]
        assert info.start_media_90k == start
        assert info.fragments[0].first_sample_is_sync is not False


def test_stop_before_the_first_keyframe_writes_nothing(tmp_path: Path, h264_file: Path) -> None:
    store = FakeStore(tmp_path / "store")
    worker = _worker(store, segment_seconds=1.0)
    with av.open(str(h264_file)) as src:
        run = _Run(worker, src)
        packets = [p for p in src.demux(src.streams.video[0]) if p.size]
        for packet in packets[1:5]:
            run.on_packet(packet)
        run.finish("lost")
    worker._committer.close(10)
    assert store.calls == []


@pytest.mark.parametrize("first_pts_missing", [True])
def test_first_packet_without_pts_is_kept(
    tmp_path: Path, h264_file: Path, first_pts_missing: bool
) -> None:
    store = FakeStore(tmp_path / "store")
    worker = _worker(store, segment_seconds=10.0)
    with av.open(str(h264_file)) as src:
        run = _Run(worker, src)
        packets = [p for p in src.demux(src.streams.video[0]) if p.size]
        tb = src.streams.video[0].time_base
        packets[0].pts = None  # as FFmpeg's RTSP demuxer hands it over after a short probe
        packets[0].dts = None
        for packet in packets[:20]:
            run.on_packet(packet)
        run.finish(STOPPED)
    worker._committer.close(10)
    commit = next(c for c in store.calls if c[0] == "commit")
    assert commit[5] == 20
    assert tb is not None


def test_first_keyframe_without_pts_is_timed_from_the_frames_after_it(
    tmp_path: Path, h264_file: Path
) -> None:
    """Joining a stream another client already plays (the original server coming back while the
    spare records the camera): FFmpeg counts stream time from an RTP packet one frame *before* the
    first packet it hands over, and that packet has no pts (measured against the simulator,
    25 of 25 joins). Taking it as stream time 0 anchored the run one frame early, so the first
    segment claimed a frame it does not hold and re-insert trimmed the spare's copy of it."""
    store = FakeStore(tmp_path / "store")
    worker = _worker(store, segment_seconds=0.5)  # GOP 0.4 s: cut at every second keyframe
    with av.open(str(h264_file)) as src:
        run = _Run(worker, src)
        packets = [p for p in src.demux(src.streams.video[0]) if p.size]
        base = packets[9].pts  # stream time 0 is the frame before the keyframe we join on
        assert base is not None
        for packet in packets[10:50]:
            assert packet.pts is not None and packet.dts is not None
            packet.pts -= base
            packet.dts -= base
        packets[10].pts = packets[10].dts = None
        for packet in packets[10:50]:
            run.on_packet(packet)
        # RTCP: stream time 0 at wall 1 s; the first frame recorded is one frame (40 ms) later.
        assert run._clock.camera_anchor_us(1_000_000) == 1_040_000
        run.finish(STOPPED)
    worker._committer.close(10)
    commits = [c for c in store.calls if c[0] == "commit"]
    assert [c[3] for c in commits] == [0, 72_000]
    assert [(c[4], c[5]) for c in commits] == [(72_000, 20)] * 2  # 20 frames last 20 frames
    for _, run_id, seq, start, duration, frames, _ in commits:
        info = mp4.parse_path(store.segment_path("cam-1", str(run_id), int(seq)))  # type: ignore[arg-type]
        assert (info.start_media_90k, info.duration_90k, info.frame_count) == (
            start,
            duration,
            frames,
        )


def test_connection_lost_while_the_first_keyframe_awaits_its_time_still_records_it(
    tmp_path: Path, h264_file: Path
) -> None:
    store = FakeStore(tmp_path / "store")
    worker = _worker(store, segment_seconds=1.0)
    with av.open(str(h264_file)) as src:
        run = _Run(worker, src)
        packets = [p for p in src.demux(src.streams.video[0]) if p.size]
        packets[0].pts = packets[0].dts = None
        for packet in packets[:2]:  # only one packet after it carries a pts: timing not settled
            run.on_packet(packet)
        assert store.calls == []
        run.finish("lost")
    worker._committer.close(10)
    commits = [c for c in store.calls if c[0] == "commit"]
    assert [(c[3], c[4], c[5]) for c in commits] == [(0, 7200, 2)]  # spacing from the frame rate
    assert store.calls[-1] == ("end", "run1", "lost")


def test_update_cameras_adds_removes_and_reports_failing(tmp_path: Path) -> None:
    """Workers against a closed port: no RTSP needed to see them come, go and explain themselves."""
    import socket
    import time

    from hotspare.recorder import CameraState, Recorder

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: connections are refused

    def cam(cid: str) -> CameraConfig:
        return CameraConfig(
            id=cid, url=f"rtsp://127.0.0.1:{port}/{cid}", username="op", password="secret-pw"
        )

    settings = RecordingSettings(reconnect_initial_seconds=0.05, reconnect_max_seconds=0.1)
    recorder = Recorder("server-a", [cam("a"), cam("b")], FakeStore(tmp_path), settings)
    recorder.start()
    try:
        deadline = time.monotonic() + 5
        while any(h.state is not CameraState.FAILING for h in recorder.health().values()):
            assert time.monotonic() < deadline, recorder.health()
            time.sleep(0.02)
        health = recorder.health()["a"]
        assert health.error is not None
        assert "camera a" in health.error and f"127.0.0.1:{port}" in health.error
        assert "secret-pw" not in health.error and "op:" not in health.error
        recorder.update_cameras([cam("b"), cam("c")])
        assert set(recorder.health()) == {"b", "c"}
    finally:
        recorder.stop(timeout=5)
    assert recorder.health() == {}


def test_unwritable_store_ends_the_run_with_a_disk_message(tmp_path: Path, h264_file: Path) -> None:
    from hotspare.recorder.worker import _RunEnded

    blocker = tmp_path / "store"
    blocker.write_text("a file where the camera directory should be")
    store = FakeStore(blocker)
    worker = _worker(store, segment_seconds=1.0)
    with av.open(str(h264_file)) as src:
        run = _Run(worker, src)
        packet = next(p for p in src.demux(src.streams.video[0]) if p.size)
        with pytest.raises(_RunEnded, match=r"cam-1: cannot write segment file .*free space"):
            run.on_packet(packet)
        run.finish("disk")
    worker._committer.close(10)
    assert store.calls[-1] == ("end", "run1", "disk")


def test_frames_lost_before_a_cut_do_not_lengthen_the_segment(tmp_path: Path) -> None:
    """Frames lost in delivery (UDP through a flapping link) just before a keyframe: the frame
    after the gap ends its segment, and its duration was once the gap's (the last spacing seen),
    so the file reached into the next segment of its run (store check `overlap`)."""
    clip = make_h264_file(tmp_path / "clip.mp4", frames=80, gop=20)
    store = FakeStore(tmp_path / "store")
    worker = _worker(store, segment_seconds=0.5)  # cut at every keyframe
    with av.open(str(clip)) as src:
        run = _Run(worker, src)
        packets = [p for p in src.demux(src.streams.video[0]) if p.size]
        for i, packet in enumerate(packets):
            if not 21 <= i <= 38:  # frames 21..38 lost; 39 arrives, then keyframe 40
                run.on_packet(packet)
        run.finish(STOPPED)
    worker._committer.close(10)
    commits = [c for c in store.calls if c[0] == "commit"]
    assert [c[3] for c in commits] == [0, 72_000, 144_000, 216_000]
    ends = []
    for _, run_id, seq, start, duration, *_ in commits:
        info = mp4.parse_path(store.segment_path("cam-1", str(run_id), int(seq)))  # type: ignore[arg-type]
        assert (info.start_media_90k, info.duration_90k) == (start, duration)
        ends.append(info.start_media_90k + info.duration_90k)
    assert ends == [72_000, 144_000, 216_000, 288_000]  # each ends where the next begins


def test_frames_damaged_by_lost_rtp_packets_are_left_out(tmp_path: Path) -> None:
    """FFmpeg reports lost RTP packets on the demux thread; the frame it hands over next (the one
    it was assembling, maybe cut short or joined with a later one) and the frames up to the next
    keyframe are left out, the open segment ends after the last whole frame, and the keyframe
    starts a new segment of the same run (docs/recorder.md, *Packet loss*)."""
    clip = make_h264_file(tmp_path / "clip.mp4", frames=60, gop=10)
    store = FakeStore(tmp_path / "store")
    worker = _worker(store, segment_seconds=0.5)  # 12.5 frames: cut at every second keyframe
    with av.open(str(clip)) as src, LossWatch("cam-1") as watch:
        run = _Run(worker, src)
        packets = [p for p in src.demux(src.streams.video[0]) if p.size]
        for i, packet in enumerate(packets):
            if i == 15:  # as FFmpeg's RTP demuxer logs it, on this thread
                av.logging.log(av.logging.WARNING, "rtsp", "RTP: missed 3 packets\n")
            unfit = watch.judge(packet)
            if unfit is None:
                run.on_packet(packet)
            else:
                run.skip(unfit, watch)
        run.finish(STOPPED)
    worker._committer.close(10)
    assert (watch.packets_lost, watch.losses) == (3, 1)
    commits = [c for c in store.calls if c[0] == "commit"]
    assert [c[3] for c in commits] == [0, 72_000, 144_000]  # frames 0, 20, 40
    assert [c[5] for c in commits] == [15, 20, 20]  # frame 15 damaged, 16-19 unreferenced
    assert commits[0][4] == 15 * 3600  # ends one frame after its last frame, not at frame 20
    assert [c[0] for c in store.calls].count("begin") == 1  # one run: the loss is a gap in it
    for _, run_id, seq, start, duration, *_ in commits:
        info = mp4.parse_path(store.segment_path("cam-1", str(run_id), int(seq)))  # type: ignore[arg-type]
        assert (info.start_media_90k, info.duration_90k) == (start, duration)
        assert info.fragments[0].first_sample_is_sync is not False


def test_audio_that_arrives_before_the_first_keyframe_but_is_timed_after_it_is_kept(
    tmp_path: Path,
) -> None:
    """A joining session gets the camera's audio timed after its first keyframe *before* that
    (large) keyframe: seen one or two AAC packets in 7 of 8 joins; fed here, 0.3 s of them. The
    run starts its audio at the first packet timed at or after the keyframe, not at the first
    one received after it."""
    clip = make_h264_aac_file(tmp_path / "clip.mp4")
    store = FakeStore(tmp_path / "store")
    worker = _worker(store, segment_seconds=10.0)
    with av.open(str(clip)) as src:
        video, audio = src.streams.video[0], src.streams.audio[0]
        frames = [p for p in src.demux(video) if p.size]
        src.seek(0)
        sounds = [p for p in src.demux(audio) if p.size and p.pts is not None]
        run = _Run(worker, src)
        keyframe = frames[10]  # joined at the second GOP, 0.4 s
        assert keyframe.is_keyframe and keyframe.pts is not None
        at_s = float(keyframe.pts * video.time_base)
        overtaking = [p for p in sounds if float(p.pts * audio.time_base) < at_s + 0.3]
        assert sum(1 for p in overtaking if float(p.pts * audio.time_base) >= at_s) >= 4
        for packet in overtaking:  # the audio received before the keyframe
            run.on_audio(packet)
        rest = [(float(p.pts * audio.time_base), 1, p) for p in sounds[len(overtaking):]]
        rest += [(float(p.pts * video.time_base), 0, p) for p in frames[10:]]
        for _, is_audio, packet in sorted(rest, key=lambda x: (x[0], x[1])):
            run.on_audio(packet) if is_audio else run.on_packet(packet)
        run.finish(STOPPED)
    worker._committer.close(10)
    path = store.segment_path("cam-1", "run1", 0)
    with av.open(str(path)) as seg:
        first_frame = min(float(p.pts * p.time_base) for p in seg.demux(video=0)
                          if p.pts is not None)
    with av.open(str(path)) as seg:
        first_audio = min(float(p.pts * p.time_base) for p in seg.demux(audio=0)
                          if p.pts is not None and p.size)
    assert 0 <= first_audio - first_frame < 1024 / 16_000, (first_frame, first_audio)
