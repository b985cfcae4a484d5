"""The re-insert's token bucket: re-insert must never starve live recording of disk or network."""

from __future__ import annotations

import time
from collections.abc import Callable


class RateLimiter:
    """Token bucket in bytes/s: re-insert must never starve live recording of disk or network."""

    def __init__(self, bytes_per_second: int, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.rate = float(bytes_per_second)
        self._clock = clock
        self._sleep = sleep
        self._allowance = self.rate  # one second of burst
        self._last = clock()

    def take(self, amount: int) -> float:
        """Block until `amount` bytes may be sent; returns the seconds slept."""
        now = self._clock()
        self._allowance = min(self.rate, self._allowance + (now - self._last) * self.rate)
        self._last = now
        self._allowance -= amount
        if self._allowance >= 0:
            return 0.0
        pause = -self._allowance / self.rate
        self._sleep(pause)
        self._last = self._clock()
        self._allowance = 0.0
        return pause
