"""The recorder engine: one worker per camera, started, stopped and changed live.

A recording server and a spare standing in for it run this same class (docs/design.md): the spare
passes the failed server's name as `identity` and its own buffer store.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence

from hotspare.config.models import CameraConfig, RecordingSettings
from hotspare.recorder.health import CameraHealth
from hotspare.recorder.store_protocol import RecorderStore
from hotspare.recorder.worker import CameraWorker
from hotspare.store.models import SegmentInfo

log = logging.getLogger("hotspare.recorder")


class Recorder:
    """Records `cameras` into `store` as `identity` (the recording server the cameras belong to).

    `on_segment` runs on the camera's commit thread right after the store indexed a segment (so a
    slow callback delays only that camera's indexing, never its recording); exceptions are logged.
    """

    def __init__(
        self,
        identity: str,
        cameras: Sequence[CameraConfig],
        store: RecorderStore,
        settings: RecordingSettings,
        on_segment: Callable[[SegmentInfo], None] | None = None,
        standby: Mapping[str, CameraWorker] | None = None,
        watermarks: Mapping[str, int] | None = None,
    ) -> None:
        """`standby`: hot-standby workers (a spare's, for gapless cameras) to adopt at start
        instead of connecting anew; each is activated from its camera's `watermarks` entry (the
        failed server's commit watermark, wall µs; absent = the whole pre-buffer). The caller
        must have built them with this recorder's identity, store and `on_segment`."""
        self.identity = identity
        self._store = store
        self._settings = settings
        self._on_segment = on_segment
        self._cameras: dict[str, CameraConfig] = {}
        for camera in cameras:
            if camera.id in self._cameras:
                raise ValueError(f"camera id {camera.id!r} appears twice")
            self._cameras[camera.id] = camera
        self._workers: dict[str, CameraWorker] = {}
        self._standby = dict(standby or {})
        self._watermarks = dict(watermarks or {})
        self._lock = threading.Lock()
        self._started = False

    def start(self) -> None:
        with self._lock:
            if self._started:
                return
            self._started = True
            leftover: list[CameraWorker] = []
            for cid, worker in self._standby.items():
                camera = self._cameras.get(cid)
                if camera is not None and same_recording(camera, worker.camera):
                    self._workers[cid] = worker
                    worker.activate(self._watermarks.get(cid))
                else:
                    leftover.append(worker)
            self._standby.clear()
            adopted = len(self._workers)
            for camera in self._cameras.values():
                if camera.id not in self._workers:
                    self._spawn(camera)
        _stop_all(leftover, self._settings.open_timeout_seconds + 5.0)
        log.info("recording %d cameras as %s (%d from hot standby)", len(self._cameras),
                 self.identity, adopted)

    def stop(self, timeout: float = 10.0) -> None:
        """Commit what was written and end every run with reason 'stopped'.

        A worker blocked on a silent camera notices the stop only when FFmpeg's socket timeout
        (open_timeout_seconds) fires; workers are stopped in parallel, so the wait is bounded by
        the slowest one, not their sum.
        """
        with self._lock:
            workers = list(self._workers.values())
            self._workers.clear()
            self._started = False
        _stop_all(workers, timeout)

    def health(self) -> dict[str, CameraHealth]:
        with self._lock:
            return {cid: w.health() for cid, w in self._workers.items()}

    def update_cameras(self, cameras: Sequence[CameraConfig]) -> None:
        """Apply a new camera list: new ones start, removed ones stop, changed ones restart."""
        wanted = {c.id: c for c in cameras}
        with self._lock:
            to_stop = [
                w
                for cid, w in self._workers.items()
                if cid not in wanted or not same_recording(wanted[cid], w.camera)
            ]
            for worker in to_stop:
                del self._workers[worker.camera.id]
            self._cameras = wanted
        _stop_all(to_stop, self._settings.open_timeout_seconds + 5.0)
        with self._lock:
            if self._started:
                for cid, camera in wanted.items():
                    if cid not in self._workers:
                        self._spawn(camera)
        if to_stop:
            log.info(
                "cameras changed: restarted or removed %s", ", ".join(w.camera.id for w in to_stop)
            )

    def workers(self) -> dict[str, CameraWorker]:
        with self._lock:
            return dict(self._workers)

    def _spawn(self, camera: CameraConfig) -> None:
        worker = CameraWorker(camera, self.identity, self._store, self._settings, self._on_segment)
        self._workers[camera.id] = worker
        worker.start()


def same_recording(a: CameraConfig, b: CameraConfig) -> bool:
    """True when two configs record the same way: changing only how a camera is protected must not
    restart (and so interrupt) its recording."""
    ignored = {"protection", "mbps", "name"}
    return a.model_dump(exclude=ignored) == b.model_dump(exclude=ignored)


def _stop_all(workers: list[CameraWorker], timeout: float) -> None:
    for worker in workers:
        worker.request_stop()
    deadline = time.monotonic() + timeout
    for worker in workers:
        if not worker.join(max(0.0, deadline - time.monotonic())):
            log.error(
                "camera %s: recorder worker did not stop within %.0f s; its open segment stays on "
                "disk unindexed for the store's reconcile",
                worker.camera.id,
                timeout,
            )
