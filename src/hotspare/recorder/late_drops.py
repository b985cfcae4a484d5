"""UDP sessions stuck behind FFmpeg's late-packet drop, found and ended so the worker reconnects.

A camera that restarts its stream in the session with a new RTP sequence base that reads as older
than the last one (16-bit serial numbers: about half of all restarts) gets every packet dropped by
FFmpeg's reorder queue ("RTP: dropping old packet received too late") until the new numbers catch
up with the old ones, minutes later; RTCP keeps the session open meanwhile, so the demux thread
stays blocked in FFmpeg and the camera would be reported failing after `stall_seconds`
(docs/recorder.md, *Camera faults*). FFmpeg logs each drop on the demux thread, into that
thread's `LossWatch` capture, which another thread can read. One process-wide thread looks at
every UDP session every `CHECK_SECONDS`: a session that handed over no video packet between two
looks, with drops logged at both and `STUCK_DROPS` at the second, is stuck, and its read is ended
(`ReadInterrupt`). A straggler now and then does not qualify: the next frame resets the count.

Nothing is added per packet on the demux thread but `LossWatch.judge`'s counter.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from hotspare.recorder.read_interrupt import ReadInterrupt
from hotspare.recorder.rtp_loss import LossWatch

CHECK_SECONDS = 0.1
STUCK_DROPS = 8
"""Late drops pending at the second look: a restart drops every packet (≈ 10 per frame at 2 Mbit/s
and 25 fps, ≈ 3 at the tests' 300 kbit/s and 10 fps), a straggler one or a few."""


@dataclass
class _Session:
    watch: LossWatch
    interrupt: ReadInterrupt
    on_stuck: Callable[[int], None]
    frames: int = -1
    drops: int = 0


class LateDropGuard:
    """The sessions watched, and the thread that watches them (started with the first)."""

    def __init__(self, check_seconds: float = CHECK_SECONDS) -> None:
        self._check_seconds = check_seconds
        self._lock = threading.Lock()
        self._sessions: dict[int, _Session] = {}
        self._next_key = 0
        self._thread: threading.Thread | None = None

    def watch(self, watch: LossWatch, interrupt: ReadInterrupt,
              on_stuck: Callable[[int], None]) -> Callable[[], None]:
        """Watch one session until the returned function is called. `on_stuck(drops)` runs on
        the guard's thread just before the read is ended (say why there; keep it short)."""
        with self._lock:
            key = self._next_key
            self._next_key += 1
            self._sessions[key] = _Session(watch, interrupt, on_stuck)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="hotspare-late-drops",
                                                daemon=True)
                self._thread.start()
        return lambda: self._forget(key)

    def _forget(self, key: int) -> None:
        with self._lock:
            self._sessions.pop(key, None)

    def _run(self) -> None:
        while True:
            time.sleep(self._check_seconds)
            self.check()

    def check(self) -> None:
        """One look at every session (the thread's step; tests call it directly)."""
        with self._lock:
            sessions = list(self._sessions.items())
        for key, session in sessions:
            frames, drops = session.watch.frames_judged, session.watch.late_drops_pending()
            stuck = frames == session.frames and session.drops > 0 and drops >= STUCK_DROPS
            session.frames, session.drops = frames, drops
            if stuck:
                self._forget(key)
                session.on_stuck(drops)
                session.interrupt.fire()


GUARD = LateDropGuard()
"""The process's guard: one thread for every camera's UDP session."""
