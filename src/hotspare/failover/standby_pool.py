"""A spare's hot-standby sessions: one pre-buffering worker per gapless camera placed on it.

The placement (`hotspare.site.standby_plan`) says which cameras this spare pre-buffers; the pool
makes the running sessions match it at every tick of the spare agent, and hands a server's workers
to the takeover recorder when this spare claims that server (they are adopted, not reconnected:
that is what makes the takeover gapless). What it publishes under `standby/<spare>` is what the
protection report shows: per camera buffering, connecting, or refused (with the camera's answer).
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from hotspare.config.models import CameraConfig, SiteMembership
from hotspare.config.timing import DESIGNATED_GRACE_SECONDS
from hotspare.failover.server_agent import WATERMARK_INTERVAL_SECONDS
from hotspare.recorder.engine import same_recording
from hotspare.recorder.health import CameraState
from hotspare.recorder.prebuffer import StandbySettings
from hotspare.recorder.worker import CameraWorker
from hotspare.site.model import RecordingServerConfig, SiteConfig
from hotspare.site.standby_plan import StandbyAssignment
from hotspare.store.segment_store import SegmentStore

log = logging.getLogger("hotspare.failover.standby")

DEFAULT_MBPS = 4.0
"""Bitrate assumed for a camera whose `mbps` is not configured (sizes the memory cap)."""

HORIZON_MARGIN_SECONDS = 3.0
PUBLISH_EVERY_SECONDS = 5.0

_STATE_NAMES = {
    CameraState.STANDBY: "buffering",
    CameraState.CONNECTING: "connecting",
    CameraState.FAILING: "refused",
    CameraState.RECORDING: "recording",
}


def standby_settings(server: RecordingServerConfig, camera: CameraConfig,
                     membership: SiteMembership, spill_root: Path) -> StandbySettings:
    """The pre-buffer must reach back from the moment of the claim to the watermark: the
    watermark trails the last frame by up to a segment plus its publishing interval, and the claim
    comes up to a lease (hung server) plus a probe round and the designated spare's grace after it.
    Memory: twice that horizon at the camera's configured bitrate, so a burst does not cut it
    short; disk beyond that: four times more, for a camera sending far above its `mbps`."""
    horizon = (server.recording.segment_seconds + WATERMARK_INTERVAL_SECONDS
               + membership.lease_ttl_seconds + membership.probe_interval_seconds
               + membership.probe_timeout_seconds + DESIGNATED_GRACE_SECONDS
               + HORIZON_MARGIN_SECONDS)
    mbps = camera.mbps or DEFAULT_MBPS
    max_bytes = max(8 << 20, int(2 * horizon * mbps * 1_000_000 / 8))
    return StandbySettings(horizon_s=horizon, max_bytes=max_bytes, max_spill_bytes=4 * max_bytes,
                           spill_dir=spill_root / server.name / camera.id)


class StandbyPool:
    """Owned by the spare agent's thread; not thread-safe by itself."""

    def __init__(self, membership: SiteMembership, store_for: Callable[[str], SegmentStore],
                 spill_root: Path) -> None:
        """`spill_root`: where pre-buffers spill GOPs beyond their memory cap; emptied here, as
        what an earlier process left there is worthless."""
        self._membership = membership
        self._spill_root = spill_root
        shutil.rmtree(spill_root, ignore_errors=True)
        self._store_for = store_for
        self._workers: dict[tuple[str, str], CameraWorker] = {}
        self._published: dict[str, Any] | None = None
        self._published_at = 0.0

    def reconcile(self, wanted: Iterable[tuple[RecordingServerConfig, CameraConfig]]) -> None:
        """Start sessions newly placed here, stop those placed elsewhere or reconfigured."""
        targets = {(server.name, camera.id): (server, camera) for server, camera in wanted}
        for key, worker in list(self._workers.items()):
            target = targets.get(key)
            if target is None or not same_recording(target[1], worker.camera):
                del self._workers[key]
                worker.request_stop()  # never writes, so nothing to wait for
                log.info("camera %s of %s: hot standby ended (placed elsewhere or changed)",
                         key[1], key[0])
        for key, (server, camera) in targets.items():
            if key in self._workers:
                continue
            store = self._store_for(server.name)
            settings = standby_settings(server, camera, self._membership, self._spill_root)
            # Its segments are flagged `reinsert_pending` by the store itself (recorded under an
            # identity not the store's own), so retention keeps them until re-insert.
            worker = CameraWorker(camera, server.name, store, server.recording, standby=settings)
            self._workers[key] = worker
            worker.start()
            log.info("camera %s of %s: hot standby started (pre-buffer %.0f s, at most %d MB)",
                     camera.id, server.name, settings.horizon_s, settings.max_bytes >> 20)

    def follow(self, assignments: Iterable[StandbyAssignment], config: SiteConfig) -> None:
        """Hold exactly the hot-standby sessions the placement gives this spare."""
        wanted = []
        for assignment in assignments:
            server = config.recording_server(assignment.server)
            camera = next((c for c in server.cameras if c.id == assignment.camera), None) \
                if server is not None else None
            if server is not None and camera is not None:
                wanted.append((server, camera))
        self.reconcile(wanted)

    def take(self, server: str) -> dict[str, CameraWorker]:
        """Hand the server's standby workers over (to the takeover recorder, which activates
        them); only those still pre-buffering — a refused or reconnecting one gives nothing."""
        taken: dict[str, CameraWorker] = {}
        for key in [k for k in self._workers if k[0] == server]:
            worker = self._workers.pop(key)
            if worker.in_standby and worker.health().state is CameraState.STANDBY:
                taken[key[1]] = worker
            else:
                worker.request_stop()
        return taken

    def sessions(self) -> dict[tuple[str, str], CameraWorker]:
        """(server, camera) → its standby worker, as of now; safe from any thread (one dict
        copy, atomic under the GIL): the gap repair reads the pre-buffers through it."""
        return dict(self._workers)

    def buffering(self, server: str, seconds: float) -> bool:
        """True when each of the server's standby sessions here holds at least `seconds` of
        pre-buffer (or there is none)."""
        return all(w.health().state is CameraState.STANDBY and w.standby_info()[0] >= seconds
                   for (name, _camera), w in self._workers.items() if name == server)

    def status(self) -> dict[str, Any]:
        """What `standby/<spare>` carries (see `hotspare.sitestate.layout.standby`)."""
        cameras: dict[str, Any] = {}
        for (server, camera_id), worker in sorted(self._workers.items()):
            health = worker.health()
            seconds, kbps = worker.standby_info()
            cameras[camera_id] = {
                "server": server,
                "state": _STATE_NAMES.get(health.state, health.state.value),
                "buffered_s": round(seconds, 1),
                "kbps": round(kbps),
                "error": health.error,
            }
        return {"cameras": cameras}

    def due_for_publish(self) -> dict[str, Any] | None:
        """The status when it should be written now: states changed, or every few seconds."""
        status = self.status()
        now = time.monotonic()
        states = {c: v["state"] for c, v in status["cameras"].items()}
        before = None if self._published is None else {
            c: v["state"] for c, v in self._published["cameras"].items()}
        if states == before and now - self._published_at < PUBLISH_EVERY_SECONDS:
            return None
        self._published, self._published_at = status, now
        return status

    def forget_published(self) -> None:
        """The key went with a lost lease: publish again at the next chance."""
        self._published = None

    def stop_all(self) -> None:
        for worker in self._workers.values():
            worker.request_stop()
        for worker in self._workers.values():
            worker.join(2.0)
        self._workers.clear()

