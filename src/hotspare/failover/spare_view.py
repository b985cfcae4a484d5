"""What the spare's own API shows: the buffer store and recorder of the server it acts for."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hotspare.recorder.engine import Recorder
from hotspare.store.segment_store import SegmentStore


class SpareView:
    """Switched by the spare agent as it covers, re-inserts and goes idle; read by its API."""

    def __init__(self, idle_store: SegmentStore, on_store: Callable[[SegmentStore], None]) -> None:
        self.idle_store = idle_store
        self._on_store = on_store
        self._recorder: Recorder | None = None
        self._cameras: set[str] = set()

    def show(self, store: SegmentStore | None, recorder: Recorder | None,
             cameras: set[str]) -> None:
        self._recorder = recorder
        self._cameras = cameras
        self._on_store(store or self.idle_store)

    def health(self) -> dict[str, Any]:
        recorder = self._recorder
        return dict(recorder.health()) if recorder is not None else {}

    def known_cameras(self) -> set[str]:
        return set(self._cameras)
