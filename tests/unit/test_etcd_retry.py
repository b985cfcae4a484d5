"""Retry helper: backoff, jitter and the absolute deadline, on a fake clock (no sleeping)."""

from __future__ import annotations

import random

import pytest

from hotspare.coordination.retry import Retry, RetryError


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class Flaky:
    """Fails `failures` times (each failure costing `cost` seconds of fake time), then succeeds."""

    def __init__(self, clock: FakeClock, failures: int, cost: float = 0.0) -> None:
        self.clock = clock
        self.failures = failures
        self.cost = cost
        self.calls: list[float] = []

    def __call__(self, remaining: float) -> str:
        self.calls.append(remaining)
        self.clock.now += self.cost
        if len(self.calls) <= self.failures:
            raise ConnectionError(f"failure {len(self.calls)}")
        return "ok"


def make(clock: FakeClock, **kwargs: object) -> Retry:
    params: dict[str, object] = {"deadline": 10.0, "retry_on": (ConnectionError,), "clock": clock,
                                 "rng": random.Random(1), "jitter": 0.0}
    params.update(kwargs)
    return Retry(**params)  # type: ignore[arg-type]


def test_succeeds_after_failures_with_exponential_backoff() -> None:
    clock = FakeClock()
    fn = Flaky(clock, failures=4)
    assert make(clock, initial_delay=0.1, max_delay=10.0).call(fn) == "ok"
    assert clock.sleeps == pytest.approx([0.1, 0.2, 0.4, 0.8])
    # each attempt is told the time left before the deadline
    assert fn.calls == pytest.approx([10.0, 9.9, 9.7, 9.3, 8.5])


def test_delay_is_capped() -> None:
    clock = FakeClock()
    make(clock, initial_delay=0.5, max_delay=1.0, deadline=100.0).call(Flaky(clock, failures=5))
    assert clock.sleeps == pytest.approx([0.5, 1.0, 1.0, 1.0, 1.0])


def test_jitter_shortens_delay_within_bounds() -> None:
    clock = FakeClock()
    retry = make(clock, initial_delay=1.0, max_delay=1.0, jitter=0.5, rng=random.Random(7))
    delays = [retry.delay(1) for _ in range(200)]
    assert all(0.5 <= d <= 1.0 for d in delays)
    assert max(delays) - min(delays) > 0.3  # really randomised


def test_deadline_is_absolute_and_includes_time_spent_in_calls() -> None:
    clock = FakeClock()
    fn = Flaky(clock, failures=1000, cost=1.5)
    with pytest.raises(RetryError) as info:
        make(clock, deadline=5.0, initial_delay=0.1).call(fn)
    err = info.value
    assert isinstance(err.last_error, ConnectionError)
    assert err.elapsed <= 5.0
    assert clock.now - 100.0 <= 5.0  # never sleeps past the deadline
    assert err.attempts == len(fn.calls) == 3


def test_does_not_sleep_when_the_pause_would_reach_the_deadline() -> None:
    clock = FakeClock()
    with pytest.raises(RetryError):
        make(clock, deadline=0.3, initial_delay=0.5).call(Flaky(clock, failures=10))
    assert clock.sleeps == []


def test_other_errors_are_not_retried() -> None:
    clock = FakeClock()

    def boom(remaining: float) -> None:
        raise ValueError("not transient")

    with pytest.raises(ValueError):
        make(clock).call(boom)
    assert clock.sleeps == []


def test_max_attempts() -> None:
    clock = FakeClock()
    fn = Flaky(clock, failures=10)
    with pytest.raises(RetryError) as info:
        make(clock, max_attempts=3).call(fn)
    assert info.value.attempts == 3 and len(fn.calls) == 3


def test_on_retry_hook_sees_each_failure() -> None:
    clock = FakeClock()
    seen: list[tuple[int, str, float]] = []
    make(clock, initial_delay=0.1).call(
        Flaky(clock, failures=2), on_retry=lambda n, e, d: seen.append((n, str(e), d)))
    assert seen == [(1, "failure 1", pytest.approx(0.1)), (2, "failure 2", pytest.approx(0.2))]


def test_invalid_parameters() -> None:
    with pytest.raises(ValueError):
        Retry(deadline=0)
    with pytest.raises(ValueError):
        Retry(deadline=1, jitter=2)
