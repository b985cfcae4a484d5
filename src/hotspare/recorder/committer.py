"""Runs a camera's store writes on their own thread, in order.

Committing fsyncs and hashes the file; doing that on the demux thread would stall reading the
socket for tens of milliseconds, long enough to overflow a UDP receive buffer at 4 Mbit/s. One
queue per camera keeps the store's order for that camera (begin < segments < anchor < end).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable


class Committer:
    def __init__(self, camera_id: str, log: logging.Logger) -> None:
        self._camera_id = camera_id
        self._log = log
        self._queue: queue.SimpleQueue[tuple[Callable[[], None], str] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(
            target=self._main, name=f"hotspare-commit-{camera_id}", daemon=True
        )
        self._thread.start()

    def submit(self, job: Callable[[], None], what: str) -> None:
        self._queue.put((job, what))

    def close(self, timeout: float | None = None) -> bool:
        """Finish every queued job; True when the thread ended in time."""
        self._queue.put(None)
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _main(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            job, what = item
            try:
                job()
            except Exception:
                self._log.exception(
                    "camera %s: could not %s in the store; the file stays on disk for the store's "
                    "reconcile. Check free space and permissions of the store directory.",
                    self._camera_id,
                    what,
                )
