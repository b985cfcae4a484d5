"""The spare's transition table (failover/spare_states.py): every row, and what it refuses."""

from __future__ import annotations

import pytest

from hotspare.failover.spare_states import (
    BufferEmpty,
    ClaimWon,
    Confirmed,
    Covering,
    FailedAgain,
    Idle,
    InvalidTransition,
    LeftoverReady,
    Refused,
    Reinserting,
    Signal,
    SpareMode,
    next_state,
)

ROWS: list[tuple[SpareMode, Signal, SpareMode]] = [
    (Idle(), ClaimWon("rec-1", 7), Covering("rec-1", 7)),
    (Idle(), LeftoverReady("rec-1"), Reinserting("rec-1", None)),
    (Covering("rec-1", 7), Confirmed(), Reinserting("rec-1", 7)),
    (Covering("rec-1", 7), Refused("fenced write refused"), Idle()),
    (Reinserting("rec-1", 7), FailedAgain(), Covering("rec-1", 7)),
    (Reinserting("rec-1", None), FailedAgain(), Idle()),
    (Reinserting("rec-1", None), ClaimWon("rec-2", 9), Covering("rec-2", 9)),
    (Reinserting("rec-1", 7), BufferEmpty(), Idle()),
    (Reinserting("rec-1", None), BufferEmpty(), Idle()),
    (Reinserting("rec-1", 7), Refused("re-insert refused"), Idle()),
]


@pytest.mark.parametrize(("state", "signal", "after"), ROWS)
def test_every_transition(state: SpareMode, signal: Signal, after: SpareMode) -> None:
    assert next_state(state, signal) == after


@pytest.mark.parametrize(("state", "signal"), [
    (Idle(), Confirmed()),
    (Idle(), BufferEmpty()),
    (Idle(), Refused("x")),
    (Covering("rec-1", 7), ClaimWon("rec-2", 9)),  # covering: not free for a second server
    (Covering("rec-1", 7), BufferEmpty()),
    (Reinserting("rec-1", 7), ClaimWon("rec-2", 9)),  # holding a claim: not free either
    (Reinserting("rec-1", 7), Confirmed()),
])
def test_anything_else_is_refused(state: SpareMode, signal: Signal) -> None:
    with pytest.raises(InvalidTransition):
        next_state(state, signal)
