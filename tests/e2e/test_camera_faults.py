"""Camera faults (issue 12 item 4): a camera that restarts its stream inside the session (RTP
timestamps and sequence numbers jump, new sender reports, maybe a new SSRC) and one that changes its
resolution mid-stream (new SPS/PPS in the same session), against the simulated cameras.

Before the recorder handled them, a restart ended the connection (the timestamp jump) and the
reconnect lost about a second; a resolution change went into the same segment as the old size,
under an init section that describes the old SPS.
"""

from __future__ import annotations

import time
from itertools import pairwise
from pathlib import Path

import av
import pytest

from hotspare.config.models import CameraConfig, RecordingSettings
from hotspare.recorder import Recorder
from hotspare.store.check import check_store
from hotspare.store.models import WallSource
from hotspare.store.segment_store import SegmentStore
from tests.e2e.test_failover_codecs import _export_and_verify
from tests.e2e.test_gapless import standby_ready
from tests.support.camsim import CameraSim, now_us
from tests.support.export_keys import give_export_key
from tests.support.frames import all_segments, store_frames
from tests.support.served import assert_served_once, check_served
from tests.support.site import FailoverSite, wait_for

FRAME_US = 40_000
GOP = 25  # frames: the sims here send 25 fps with a 1 s GOP


def _missing(sim: CameraSim, camera: str, numbers: list[int]) -> list[int]:
    """Frames the camera delivered between the first and last stored one that were not stored."""
    stored = set(numbers)
    return sorted(r.frame for r in sim.frames(camera) if r.delivered
                  and numbers[0] <= r.frame <= numbers[-1] and r.frame not in stored)


def _store_errors(root: Path) -> list[str]:
    return [f.line() for f in check_store(root).findings if f.severity == "error"]


@pytest.mark.slow
def test_a_camera_restarting_its_stream_in_session_is_recorded_on_in_true_time(
        tmp_path: Path) -> None:
    """Same SSRC, over TCP. With a new SSRC, the simulator's RTP session sent a BYE for the
    previous one at the second change and FFmpeg ends a stream on any BYE: the recorder
    reconnects there. Over UDP a restart whose new sequence numbers read as older needs a
    reconnect: the next test."""
    with CameraSim(tmp_path / "sim", ["cam"], gop="1s", clip_seconds=2) as sim:
        store = SegmentStore.open(tmp_path / "store", "server-a")
        camera = CameraConfig(id="cam", url=sim.rtsp_url("cam"))  # TCP
        recorder = Recorder("server-a", [camera], store, RecordingSettings(segment_seconds=1.0))
        try:
            recorder.start()
            time.sleep(4.0)
            for _ in range(2):
                sim.restart_stream("cam")
                time.sleep(4.0)  # the keyframe it restarts on, and new sender reports
            assert sim.camera_status("cam")["stream_restarts"] == 2
            stop_us = now_us()
            recorder.stop()
            sim.wait_logged("cam", stop_us)
            runs = sorted(store.list_runs("cam", 0, 2**62), key=lambda r: r.anchor_wall_us)
            print("runs:", [(r.wall_source.value, r.end_reason) for r in runs])
            assert len(runs) == 3, runs  # one per timeline, on one connection
            assert all("restarted its stream" in (r.end_reason or "") for r in runs[:2]), runs
            # Each new run is timed by the camera's reports about its new timestamps.
            assert all(r.wall_source is WallSource.CAMERA for r in runs), runs
            # Every frame at its capture time (within a frame), none twice. Missing: at most the
            # frame before each restart's keyframe. FFmpeg refuses the first packet after a
            # sequence jump ("bad cseq", RFC 3550's probation; here the keyframe's access unit
            # delimiter), and the loss watch (recorder/rtp_loss.py) leaves out the frame its
            # parser hands over next, which is the complete one before. A reconnect instead
            # would lose its back-off, the open and the wait for a keyframe (~1 s).
            frames = store_frames(store, "cam", frame_us=FRAME_US)
            numbers = [f.tag.frame_no for f in frames]
            missing = _missing(sim, "cam", numbers)
            print("missing:", missing)
            assert len(missing) <= 2 and all((n + 1) % GOP == 0 for n in missing), missing
            assert numbers[-1] - numbers[0] > 250  # ~12 s of 25 fps recorded
        finally:
            recorder.stop()
            store.close()
        assert not _store_errors(tmp_path / "store")


@pytest.mark.slow
def test_a_udp_camera_restarting_its_stream_below_its_sequence_numbers_is_recorded_on(
        tmp_path: Path) -> None:
    """Over UDP, FFmpeg's reorder queue drops every packet numbered below the last one it handed
    over, so after a restart to a lower sequence base (forced here; about half of random ones)
    no video came out for minutes while RTCP kept the session open: nothing was recorded after
    the first restart, and the camera was reported failing. Now the recorder ends the stuck read
    (recorder/late_drops.py) and reconnects: each restart costs the frame before its keyframe
    (FFmpeg's parser still held it) up to its next keyframe, not more, and no failover."""
    site = FailoverSite(tmp_path, servers={"rec-1": 1}, spares=["spare-1"])
    with site:
        assert site.sim is not None
        camera = site.cameras["rec-1"][0]
        sim_camera = site.sim_camera(camera)

        def over_udp(doc: dict[str, object]) -> None:
            for entry in doc["recording_servers"]:  # type: ignore[attr-defined]
                for cam in entry["cameras"]:
                    cam["transport"] = "udp"

        site.reapply(over_udp)
        begin_us = now_us()
        site.start_all()
        time.sleep(4.0)
        restarts_us = []
        for _ in range(2):
            restarts_us.append(now_us())
            site.sim.restart_stream(sim_camera, seq_below=True)
            time.sleep(4.0)
        assert site.sim.camera_status(sim_camera)["stream_restarts"] == 2
        served = check_served(site, "rec-1", "rec-1", begin_us, ("node VOD", "download"),
                              "after two restarts")
        site.sim.wait_logged(sim_camera, now_us())
        records = site.sim.frames(sim_camera)
        walls = {r.frame: r.wall_us for r in records}
        gop = site.fps  # frames: the site's sims send a 1 s GOP
        allowed = []
        for at_us in restarts_us:  # the restart's keyframe is the first one after the request
            keyframe = next(r.frame for r in records if r.wall_us >= at_us and r.frame % gop == 0)
            allowed.append((walls[keyframe - 1], walls[keyframe + gop - 1]))
        print("restart keyframes:", [(a, b) for a, b in allowed])
        # Every frame outside [the one before each restart's keyframe, its next keyframe) is
        # served, once, by both ways.
        assert_served_once(site, "rec-1", served, allowed)
        claims = [e.line() for e in site.events() if e.kind == "claimed"]
        assert not claims, claims  # no false failover
        site.node("rec-1").stop()
        store = site.store_of("rec-1")
        try:
            runs = sorted(store.list_runs(camera, 0, 2**62), key=lambda r: r.anchor_wall_us)
            print("runs:", [(r.wall_source.value, r.end_reason) for r in runs])
            assert len(runs) == 3, runs  # one per session: the reconnect after each restart
            assert all("restarted its stream over UDP" in (r.end_reason or "")
                       for r in runs[:2]), runs
            store_frames(store, camera, frame_us=1_000_000 // site.fps)  # once, in true time
        finally:
            store.close()


@pytest.mark.slow
def test_a_resolution_change_starts_a_segment_with_the_new_size_and_loses_no_frame(
        tmp_path: Path) -> None:
    with CameraSim(tmp_path / "sim", ["cam"], width=320, height=240, gop="1s",
                   clip_seconds=2) as sim:
        sim.change_resolution("cam", 640, 360)  # encode the second clip before recording
        sim.change_resolution("cam", 320, 240)
        store = SegmentStore.open(tmp_path / "store", "server-a")
        camera = CameraConfig(id="cam", url=sim.rtsp_url("cam"))
        recorder = Recorder("server-a", [camera], store, RecordingSettings(segment_seconds=2.0))
        try:
            recorder.start()
            time.sleep(3.5)
            sim.change_resolution("cam", 640, 360)
            time.sleep(3.5)
            sim.change_resolution("cam", 320, 240)
            time.sleep(3.0)
            stop_us = now_us()
            recorder.stop()
            sim.wait_logged("cam", stop_us)
            assert len(store.list_runs("cam", 0, 2**62)) == 1  # same session, same run
            sizes = []
            for segment in all_segments(store, "cam"):
                with av.open(str(store.segment_file(segment))) as container:
                    context = container.streams.video[0].codec_context
                    first = next(container.decode(video=0))  # the init's SPS decodes it
                    assert (first.width, first.height) == (context.width, context.height)
                    sizes.append((context.width, context.height))
            changes = [b for a, b in pairwise(sizes) if a != b]
            assert changes == [(640, 360), (320, 240)], sizes
            frames = store_frames(store, "cam", frame_us=FRAME_US)
            numbers = [f.tag.frame_no for f in frames]
            assert not _missing(sim, "cam", numbers), _missing(sim, "cam", numbers)
        finally:
            recorder.stop()
            store.close()
        assert not _store_errors(tmp_path / "store")


@pytest.mark.slow
def test_a_gapless_camera_changing_resolution_fails_over_with_every_frame_served_once(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The spare's pre-buffer spans the resolution change when the server dies: what it writes
    from it, and what playback, download and a verified export then serve, hold both sizes,
    each frame once."""
    site = FailoverSite(tmp_path, servers={"rec-1": 2}, spares=["spare-1"], segment_seconds=2.0)
    with site:
        assert site.sim is not None
        _private, public = give_export_key(site, tmp_path / "keys")
        gapless, standard = site.cameras["rec-1"]

        def protect(doc: dict[str, object]) -> None:
            for camera in doc["recording_servers"][0]["cameras"]:  # type: ignore[index]
                if camera["id"] == gapless:
                    camera["protection"] = "gapless"

        site.reapply(protect)
        for camera in (gapless, standard):  # the clip at the second size, encoded up front
            site.sim.change_resolution(site.sim_camera(camera), 640, 360)
            site.sim.change_resolution(site.sim_camera(camera), 320, 240)
        begin_us = now_us()
        site.start_all()
        wait_for("gapless camera pre-buffered",
                 lambda: standby_ready(site, "spare-1", [gapless], 3.0), 40)
        for camera in (gapless, standard):
            site.sim.change_resolution(site.sim_camera(camera), 640, 360)
        time.sleep(1.5)  # past the next keyframe, not yet committed by rec-1 (2 s segments)
        crash_us = now_us()
        site.node("rec-1").kill()
        recording = site.wait_event("recording", "rec-1", timeout=20, after_us=crash_us)
        assert recording.data["gapless"][gapless]["covered"], recording.data
        time.sleep(4.0)
        served = check_served(site, "spare-1", "rec-1", begin_us, ("site VOD",), "covering")
        back_us = now_us()
        site.start("rec-1")
        site.wait_event("done", "rec-1", timeout=60, after_us=back_us)
        wait_for("claim released", lambda: site.claim("rec-1") is None, 10)
        time.sleep(2.0)
        served += check_served(site, "rec-1", "rec-1", begin_us,
                               ("node VOD", "site VOD", "download"), "re-inserted")
        exported = _export_and_verify(site, tmp_path, gapless, begin_us, now_us(), public, capsys)
        assert len(exported) == len(set(exported)), "a frame twice in the export"
        delivered = {r.frame for r in site.sim.frames(site.sim_camera(gapless)) if r.delivered}
        lost = sorted(n for n in delivered
                      if min(exported) <= n <= max(exported) and n not in set(exported))
        assert not lost, ("export misses frames", lost[:20])
        site.node("rec-1").stop()
        store = site.store_of("rec-1")
        try:
            sizes = set()
            for segment in all_segments(store, gapless):
                with av.open(str(store.segment_file(segment))) as container:
                    context = container.streams.video[0].codec_context
                    sizes.add((context.width, context.height))
            assert sizes == {(320, 240), (640, 360)}, sizes
        finally:
            store.close()
        # Gapless: nothing missing anywhere; standard: only inside the takeover window.
        assert_served_once(site, "rec-1", [(p, r) for p, r in served],
                           [(crash_us - 2_500_000, recording.wall_us)])
        for phase, result in served:
            assert not result.missing[gapless], (phase, result.way, result.missing[gapless][:20])
