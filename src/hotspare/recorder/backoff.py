"""Reconnect delays: exponential so a dead camera costs little, capped so a revived one is
found fast."""

from __future__ import annotations

import random


class Backoff:
    """Doubling delay between `initial` and `maximum`, with ±20 % jitter.

    The jitter keeps many cameras behind one failed switch from reconnecting in lock-step, which a
    camera's small RTSP server (or GStreamer's serialised accept) handles badly.
    """

    def __init__(self, initial: float, maximum: float, jitter: float = 0.2) -> None:
        self._initial = initial
        self._maximum = maximum
        self._jitter = jitter
        self._next = initial

    def reset(self) -> None:
        self._next = self._initial

    def next_delay(self) -> float:
        delay = self._next
        self._next = min(self._next * 2.0, self._maximum)
        spread = delay * self._jitter
        return max(0.0, min(self._maximum, delay + random.uniform(-spread, spread)))
