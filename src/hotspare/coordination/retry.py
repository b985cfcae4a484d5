"""Retry with exponential backoff, jitter and an absolute deadline.

Every etcd call a node makes sits on some bigger clock: a claim must be decided before the takeover
window closes, a lease must be refreshed before it runs out. A retry count says nothing about time,
so this helper is bounded by a deadline instead, and it hands each attempt the time that is left so
the per-call timeout can shrink to fit. The clock is injectable so that the backoff arithmetic can
be tested without sleeping.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

T = TypeVar("T")


class Clock(Protocol):
    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real monotonic clock: wall-clock steps (NTP, DST) cannot move a deadline."""

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class RetryError(Exception):
    """All attempts failed or the deadline passed; `last_error` is the final failure."""

    def __init__(self, attempts: int, elapsed: float, last_error: BaseException) -> None:
        super().__init__(
            f"gave up after {attempts} attempt(s) in {elapsed:.1f} s: {last_error}"
        )
        self.attempts = attempts
        self.elapsed = elapsed
        self.last_error = last_error


@dataclass
class Retry:
    """Call a function until it succeeds, a non-retryable error occurs, or the deadline passes.

    `deadline` is the total budget in seconds from the first attempt. The n-th delay is
    `initial_delay * multiplier**n`, capped at `max_delay`, then reduced by a random fraction up to
    `jitter` so that many nodes retrying the same dead endpoint do not do it in lockstep. A delay
    that would end at or after the deadline is not slept: we give up at once, because a caller that
    waited for nothing is worse off than one told early.
    """

    deadline: float
    retry_on: tuple[type[BaseException], ...] = (Exception,)
    initial_delay: float = 0.05
    max_delay: float = 1.0
    multiplier: float = 2.0
    jitter: float = 0.5
    max_attempts: int | None = None
    clock: Clock = field(default_factory=SystemClock)
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        if self.deadline <= 0:
            raise ValueError("deadline must be positive")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError("jitter must be between 0 and 1")
        if self.initial_delay < 0 or self.max_delay < 0 or self.multiplier < 1.0:
            raise ValueError("delays must be non-negative and multiplier at least 1")

    def delay(self, attempt: int) -> float:
        """Backoff before attempt number `attempt + 1` (attempt counts from 1)."""
        base = min(self.max_delay, self.initial_delay * self.multiplier ** (attempt - 1))
        return base * (1.0 - self.jitter * self.rng.random())

    def call(
        self,
        fn: Callable[[float], T],
        on_retry: Callable[[int, BaseException, float], None] | None = None,
    ) -> T:
        """Run `fn(remaining_seconds)`; `on_retry(attempt, error, delay)` runs before each sleep."""
        start = self.clock.monotonic()
        end = start + self.deadline
        attempt = 0
        while True:
            attempt += 1
            remaining = end - self.clock.monotonic()
            try:
                return fn(max(remaining, 0.0))
            except self.retry_on as exc:
                now = self.clock.monotonic()
                pause = self.delay(attempt)
                out_of_attempts = self.max_attempts is not None and attempt >= self.max_attempts
                if out_of_attempts or now + pause >= end:
                    raise RetryError(attempt, now - start, exc) from exc
                if on_retry is not None:
                    on_retry(attempt, exc, pause)
                self.clock.sleep(pause)
