"""The frame times of recently committed segments, so an import's overlap check need not parse
their files again.

An import is judged frame by frame against the segments of its camera it overlaps
(`importer._coverage`), and that runs under the index writer lock. Parsing each neighbour's
boxes there, in Python, on a busy host was most of the time a re-insert's batch held the lock
(64-camera gapless takeover, bench/README.md, *Commit contention*); the neighbour is nearly
always a segment committed moments before (the previous import of the camera, or the original's
own recording of the same time), whose boxes were already walked when it was committed. The
walk's result is kept as it is (a reference, no work on the commit's path); the overlap check
derives the frame times from it only when it needs them.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from hotspare.store import mp4

ENTRIES = 1024
"""About 16 s of 64 cameras' 1 s segments; each entry a few hundred bytes."""


class FrameCache:
    """Each segment's `Mp4Info`, keyed by (segment id, SHA-256): a row whose file was replaced
    (a restore) misses."""

    def __init__(self, entries: int = ENTRIES) -> None:
        self._entries = entries
        self._lock = threading.Lock()
        self._infos: OrderedDict[tuple[int, str], mp4.Mp4Info] = OrderedDict()

    def put(self, segment_id: int, sha256: str, info: mp4.Mp4Info) -> None:
        with self._lock:
            self._infos[(segment_id, sha256)] = info
            self._infos.move_to_end((segment_id, sha256))
            while len(self._infos) > self._entries:
                self._infos.popitem(last=False)

    def get(self, segment_id: int, sha256: str) -> mp4.Mp4Info | None:
        with self._lock:
            return self._infos.get((segment_id, sha256))
