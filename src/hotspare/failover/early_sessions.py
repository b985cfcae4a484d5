"""A takeover's camera sessions, opened the moment the claim is won.

A standard camera loses the video from the failed server's last frame to the spare's first
keyframe, and its first keyframe can only come after the spare's session plays: every
millisecond between the claim and the RTSP PLAY widens that window (and, since a camera's GOP
boundaries do not wait, can cost a whole GOP more). Before this, the sessions opened only after
the owner and buffer records were written to etcd and the recorder was built, one camera after
another; on a loaded 64-camera takeover the spare's first frame came up to 1.6 s after the crash.

So the spare opens every camera's session at once right after the claim, as a standby worker
(`CameraWorker` with `StandbySettings`): it connects and holds what it receives in a pre-buffer
but writes nothing, so no video is stored before the spare's buffer record exists, and a takeover
refused right after its claim leaves nothing behind. The recorder adopts these workers like a
gapless camera's hot standby and activates them without a watermark: each writes its pre-buffer
from its first keyframe, then goes on live on the same session.
"""

from __future__ import annotations

import logging
import statistics
from collections.abc import Iterable, Mapping

from hotspare.config.models import CameraConfig
from hotspare.recorder.health import CameraHealth
from hotspare.recorder.prebuffer import StandbySettings
from hotspare.recorder.worker import CameraWorker
from hotspare.site.model import RecordingServerConfig
from hotspare.store.segment_store import SegmentStore

log = logging.getLogger("hotspare.failover.spare")

HOLD_SECONDS = 30.0
"""What an early session keeps before the recorder adopts it: far more than the owner record's
fenced writes take, even with etcd retrying, so nothing it received is dropped before it is
written."""
MIN_HOLD_BYTES = 8 << 20
DEFAULT_MBPS = 4.0


def hold_settings(camera: CameraConfig) -> StandbySettings:
    """Memory only (no spill): the buffer lives for the fraction of a second until adoption."""
    mbps = camera.mbps or DEFAULT_MBPS
    return StandbySettings(horizon_s=HOLD_SECONDS,
                           max_bytes=max(MIN_HOLD_BYTES, int(HOLD_SECONDS * mbps * 1e6 / 8)))


def open_sessions(server: RecordingServerConfig, store: SegmentStore,
                  skip: Iterable[str] = ()) -> dict[str, CameraWorker]:
    """Start a holding session for each of the server's failed-over cameras, except `skip`
    (those a hot standby already pre-buffers). Threads are started before anything else is
    done per camera, so no camera's connect waits for another's set-up."""
    skipped = set(skip)
    workers = {camera.id: CameraWorker(camera, server.name, store, server.recording,
                                       standby=hold_settings(camera))
               for camera in server.failover_cameras() if camera.id not in skipped}
    for worker in workers.values():
        worker.start()
    if workers:
        log.info("%s: opened %d camera session(s) at the claim", server.name, len(workers))
    return workers


def first_keyframes(store: SegmentStore, health: Mapping[str, CameraHealth],
                    cameras: Iterable[str], claimed_wall_us: int) -> dict[str, float | int] | None:
    """How long after the claim the sessions opened there began recording: each camera's run
    starts at its first keyframe (capture time, camera clock once RTCP timed it). Over
    `cameras`; what a standard camera's takeover window is made of beyond the claim (the
    `recording` event carries it). A session adopted before it connected records live, one
    that connected first writes what it held: either way its run starts at its first keyframe."""
    delays = []
    for camera in cameras:
        h = health.get(camera)
        run = store.get_run(h.run_id) if h is not None and h.run_id is not None else None
        if run is not None:
            delays.append((run.started_wall_us - claimed_wall_us) / 1e6)
    if not delays:
        return None
    delays.sort()
    return {"n": len(delays), "min": round(delays[0], 3),
            "median": round(statistics.median(delays), 3), "max": round(delays[-1], 3)}


STEP_NAMES = ("open_started", "opened", "first_packet", "first_keyframe")
"""The order of `session_steps`' numbers (`SessionSteps`' fields)."""


def session_steps(workers: Mapping[str, CameraWorker], cameras: Iterable[str],
                  claimed_wall_us: int) -> dict[str, list[float | None]]:
    """Per camera opened at the claim, when its session reached each of `STEP_NAMES` (seconds
    after the claim, None: not reached): which part of a standard camera's takeover window
    went to starting its thread, to the RTSP open, and to waiting for the camera's keyframe."""
    out: dict[str, list[float | None]] = {}
    for camera in cameras:
        worker = workers.get(camera)
        steps = worker.session_steps if worker is not None else None
        if steps is None:
            continue
        out[camera] = [None if us is None else round((us - claimed_wall_us) / 1e6, 3)
                       for us in (steps.open_started_us, steps.opened_us,
                                  steps.first_packet_us, steps.first_keyframe_us)]
    return out


def close_sessions(workers: Mapping[str, CameraWorker]) -> None:
    """Stop sessions that will not be adopted; they never wrote, so nothing is waited for."""
    for worker in workers.values():
        worker.request_stop()
