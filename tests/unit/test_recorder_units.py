"""Edge cases of the recorder's small parts; RTSP itself is in tests/e2e/test_recorder*.py."""

from __future__ import annotations

from fractions import Fraction
from itertools import pairwise

import av
import av.error
import pytest

from hotspare.config.models import CameraConfig
from hotspare.recorder.backoff import Backoff
from hotspare.recorder.clock import (
    RunClock,
    TimestampDiscontinuity,
    believable_camera_anchor,
    decode_times,
    first_ts_from,
    frame_step_known,
)
from hotspare.recorder.drift import REANCHOR_DRIFT_US, DriftTracker, reanchor_threshold_us
from hotspare.recorder.source import CameraSource


def test_backoff_doubles_caps_and_resets() -> None:
    b = Backoff(0.5, 4.0, jitter=0.0)
    assert [b.next_delay() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    b.reset()
    assert b.next_delay() == 0.5


def test_backoff_jitter_stays_within_bounds() -> None:
    b = Backoff(1.0, 1.0, jitter=0.2)
    delays = [b.next_delay() for _ in range(200)]
    assert all(0.8 <= d <= 1.0 for d in delays)  # never above the cap


def _camera(**kw: object) -> CameraConfig:
    base: dict[str, object] = {"id": "cam-1", "url": "rtsp://10.0.0.5:554/stream1"}
    base.update(kw)
    return CameraConfig(**base)  # type: ignore[arg-type]


def test_credentials_go_only_into_the_secret_url() -> None:
    src = CameraSource.from_config(_camera(username="op@site", password="p:a/ss word"))
    assert src._secret_url == "rtsp://op%40site:p%3Aa%2Fss%20word@10.0.0.5:554/stream1"
    assert src.display_url == "rtsp://10.0.0.5:554/stream1"
    assert "ss" not in repr(src)
    assert src.scrub(f"failed: '{src._secret_url}'") == "failed: 'rtsp://10.0.0.5:554/stream1'"


def test_error_text_names_camera_and_hint_but_not_password() -> None:
    src = CameraSource.from_config(_camera(username="admin", password="hunter2"))
    exc = av.error.HTTPUnauthorizedError(1, "Server returned 401 Unauthorized", src._secret_url)
    text = src.explain(exc, 5.0)
    assert "hunter2" not in text
    assert "cam-1" in text and "rtsp://10.0.0.5:554/stream1" in text
    assert "password" in text  # the hint says what to check


def test_ffmpeg_options_use_ffmpeg_timeout_in_microseconds() -> None:
    opts = CameraSource.from_config(_camera(transport="udp")).ffmpeg_options(2.5)
    assert opts["rtsp_transport"] == "udp"
    assert opts["timeout"] == "2500000"
    assert opts["allowed_media_types"] == "video+audio"  # audio recorded unless turned off
    silent = CameraSource.from_config(_camera(record_audio=False)).ffmpeg_options(2.5)
    assert silent["allowed_media_types"] == "video"


def test_clock_first_packet_without_pts_is_timed_from_the_next_two() -> None:
    # A fresh stream: the first packet is stream time 0. Joining a playing one: one frame later.
    assert first_ts_from([None]) is None and first_ts_from([3600]) is None
    assert first_ts_from([3600, 7200]) == (0, 3600)
    assert first_ts_from([7200, 10_800]) == (3600, 3600)
    assert first_ts_from([None, 10_800, 14_400]) == (3600, 3600)  # a second one without pts
    assert first_ts_from([7200, 7200]) == (0, 0)  # no spacing to trust: FFmpeg's origin
    clock = RunClock(Fraction(1, 90_000))
    with pytest.raises(ValueError):
        clock.stream_ts(None)
    clock.start(3600, 3600)
    assert clock.media_90k(3600) == 0
    assert clock.media_90k(clock.stream_ts(None)) == 3600  # spacing known before any pts
    assert clock.media_90k(clock.stream_ts(10_800)) == 7200
    assert clock.media_90k(clock.stream_ts(None)) == 10_800  # one frame later
    assert clock.end_media_90k() == 14_400
    assert clock.camera_anchor_us(1_000_000) == 1_040_000


def test_clock_rebases_on_first_frame_and_rescales_other_time_bases() -> None:
    clock = RunClock(Fraction(1, 1000))  # e.g. a demuxer in milliseconds
    clock.start(5000)
    assert clock.media_90k(5000) == 0
    assert clock.media_90k(5040) == 3600


@pytest.mark.parametrize("jump", [-46_000, 11 * 90_000])
def test_clock_discontinuity_ends_the_run(jump: int) -> None:
    clock = RunClock(Fraction(1, 90_000))
    clock.start(90_000)
    clock.media_90k(90_000)
    with pytest.raises(TimestampDiscontinuity):
        clock.media_90k(90_000 + jump)


def test_camera_anchor_is_wall_time_of_the_first_frame() -> None:
    clock = RunClock(Fraction(1, 90_000))
    assert clock.camera_anchor_us(1_700_000_000_000_000) is None  # not started
    clock.start(180_000)  # first frame 2 s after stream time 0
    assert clock.camera_anchor_us(None) is None  # no RTCP yet
    assert clock.camera_anchor_us(1_700_000_000_000_000) == 1_700_000_002_000_000
    assert believable_camera_anchor(1_000, 1_000 + 299_000_000)
    assert not believable_camera_anchor(0, 1_700_000_000_000_000)


def test_clock_tolerates_reordered_presentation_times() -> None:
    clock = RunClock(Fraction(1, 90_000))
    clock.start(0)
    assert [clock.media_90k(t) for t in (0, 10_800, 3600, 7200, 21_600)] == [
        0, 10_800, 3600, 7200, 21_600
    ]  # fmt: skip
    # One frame is the smallest step (B1 → B2), not the step between references (P3 → P6).
    assert clock.frame_duration_90k == 3600
    assert clock.end_media_90k() == 21_600 + 3600


def test_clock_frame_length_ignores_a_gap_in_delivery() -> None:
    """Frames lost over UDP: the frame after the gap is one frame long, not the gap (its length
    is the last sample's duration when it ends a segment, and the store indexes the file's)."""
    clock = RunClock(Fraction(1, 90_000))
    clock.start(0, 3600)
    for t in (0, 3600, 7200, 7200 + 45_000):  # 0.5 s lost
        clock.media_90k(t)
    assert clock.frame_duration_90k == 3600
    assert clock.end_media_90k() == 7200 + 45_000 + 3600
    for t in range(7200 + 45_000 + 7200, 7200 + 45_000 + 7200 * 10, 7200):  # now 12.5 fps
        clock.media_90k(t)
    assert clock.frame_duration_90k == 7200  # a real change of rate is followed


def test_first_keyframe_without_pts_in_a_b_frame_stream() -> None:
    # Decode order I0 P3 B1 B2: the keyframe is shown one step before the smallest later time.
    assert first_ts_from([10_800, 3600]) is None  # reordered: wait for a third
    assert first_ts_from([10_800, 3600, 7200]) == (0, 3600)
    assert first_ts_from([14_400, 7200, 10_800]) == (3600, 3600)  # joined one frame late
    assert first_ts_from([14_400, 7200, 3600]) == (0, 3600)  # a pyramid: I0 P4 B2 b1


def test_made_up_decode_times_rise_and_never_follow_presentation() -> None:
    assert decode_times([]) == []
    assert decode_times([0, 10_800, 3600, 7200]) == [-3600, 0, 3600, 7200]
    assert decode_times([0, 3600, 7200]) == [0, 3600, 7200]  # no reordering: dts = pts
    assert decode_times([0, 10_800], after=(3600, 3600)) == [-3600, 0]  # I0 P3, then B1
    assert decode_times([0, 10_800], after=(3600, 0)) == [-7200, -3600]  # kept below FFmpeg's
    # A keyframe held alone before a P-frame FFmpeg timed (I0 P3): the step is not known yet,
    # and spacing by it would make the keyframe's sample three frames long.
    assert decode_times([0], after=(10_800, 0)) == [-10_800]
    assert not frame_step_known([0, 10_800])
    assert frame_step_known([0, 10_800, 3600])  # the P-frame held too, released before B1
    assert decode_times([0, 10_800], after=(3600, 3600)) == [-3600, 0]
    for pts in ([0, 10_800, 3600, 7200, 21_600, 14_400, 18_000], [0, 0, 3600]):
        dts = decode_times(pts)
        assert all(a < b for a, b in pairwise(dts)), dts
        assert all(d <= p for d, p in zip(dts, pts, strict=True)), (dts, pts)


@pytest.mark.parametrize(("silent_s", "state"), [(2.0, "recording"), (12.0, "failing")])
def test_a_session_open_without_video_for_stall_seconds_is_failing(silent_s: float,
                                                                   state: str) -> None:
    """RTCP alone can keep FFmpeg's read busy forever: health judges by the last frame's age."""
    from hotspare.config.models import RecordingSettings
    from hotspare.recorder.clock import now_wall_us
    from hotspare.recorder.health import CameraState
    from hotspare.recorder.worker import CameraWorker

    camera = CameraConfig(id="cam-1", url="rtsp://10.0.0.9/live", password="s3cret")
    worker = CameraWorker(camera, "rec-1", store=None,  # type: ignore[arg-type]  # never started
                          settings=RecordingSettings(stall_seconds=10.0))
    worker._health.update(state=CameraState.RECORDING)
    worker._health.last_frame(now_wall_us() - int(silent_s * 1e6))
    health = worker.health()
    assert health.state.value == state
    if state == "failing":
        assert health.error is not None and "no video for 12 s" in health.error
        assert "s3cret" not in health.error


def test_drift_is_the_latest_sender_report_against_the_first_ones_mapping() -> None:
    tracker = DriftTracker(Fraction(1, 90_000))
    tracker.add(1_000_000_000, 2**32 - 90_000)  # 1 s before the 32-bit RTP time wraps
    assert tracker.drift_us == 0
    # 10 s later by the wall clock, the RTP clock counted 10.03 s (+3000 ppm) across the wrap.
    tracker.add(1_010_000_000, (2**32 - 90_000 + 902_700) % 2**32)
    assert tracker.drift_us == -30_000  # the first mapping would put it 30 ms late
    tracker.add(1_009_000_000, (2**32 - 90_000 + 812_430) % 2**32)  # an older one, reordered
    assert tracker.drift_us == -27_000
    assert tracker.reports == 3


def test_reanchor_threshold_stays_under_half_a_frame() -> None:
    assert reanchor_threshold_us(3600) == 10_000  # 25 fps: a quarter of 40 ms
    assert reanchor_threshold_us(1800) == 5_000  # 50 fps
    assert reanchor_threshold_us(90_000) == REANCHOR_DRIFT_US  # 1 fps: the cap
    assert reanchor_threshold_us(0) == REANCHOR_DRIFT_US


def test_a_replayed_run_may_start_its_media_time_before_its_first_frame() -> None:
    """`lead`: media 0 lies before the first frame (a gapless replay whose audio starts first);
    the frame's media time and the camera anchor (wall time of media 0) move with it."""
    clock = RunClock(Fraction(1, 90_000))
    clock.start(900_000, 3_600, lead=5_760)  # 64 ms of audio before the first frame
    assert clock.media_90k(900_000) == 5_760
    assert clock.media_90k(903_600) == 9_360
    assert clock.camera_anchor_us(1_000_000_000) == 1_000_000_000 + 10_000_000 - 64_000
