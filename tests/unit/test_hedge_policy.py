"""The keepalive hedging budget: a member slow for itself, and a bucket of tokens
(hotspare.coordination.hedging). The keeper using it is tests/unit/test_lease_keeper.py."""

from __future__ import annotations

import pytest

from hotspare.coordination.hedging import HedgePolicy


def test_the_delay_follows_a_members_own_pace_not_one_slow_answer() -> None:
    policy = HedgePolicy()
    assert policy.delay_for("m1", 0.25) == 0.25  # nothing known yet: the base delay
    for seconds in (0.004, 0.005, 0.006, 0.9):  # fast, and one slow answer (an election)
        policy.answered("m1", seconds)
    assert policy.delay_for("m1", 0.25) == 0.25
    for _ in range(3):
        policy.answered("m1", 0.4)  # now slow as a rule: overloaded
    assert policy.delay_for("m1", 0.25) == pytest.approx(1.2)
    assert policy.delay_for("m2", 0.25) == 0.25  # per member


def test_the_budget_runs_out_and_refills_only_from_rounds_without_a_hedge() -> None:
    policy = HedgePolicy(capacity=3, refill=0.5)
    assert [policy.take() for _ in range(4)] == [True, True, True, False]
    assert (policy.sent, policy.withheld) == (3, 1)
    policy.earn()
    assert not policy.take()  # half a token
    policy.earn()
    assert policy.take()
    for _ in range(10):
        policy.earn()
    assert policy.tokens == 3  # never more than the capacity


def test_a_budget_that_could_never_hedge_is_refused() -> None:
    with pytest.raises(ValueError, match="capacity"):
        HedgePolicy(capacity=0.5)
