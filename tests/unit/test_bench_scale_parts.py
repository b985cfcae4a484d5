"""bench/scale/parts.py: a standard camera's takeover window cut into its parts, and both
bounds, from a trial's frame analysis and the spare's `recording` event."""

from __future__ import annotations

import pytest

from bench.failover.run import Trial
from bench.scale.parts import camera_parts, parts_rows, session_steps

CRASH = 1_000_000_000_000
FPS = 10


def _trial() -> Trial:
    trial = Trial(1, CRASH, claimed_event_us=CRASH + 150_000)
    # a: the server stored up to 0.25 s before the crash; the spare's first keyframe was
    # captured 1.0 s after it. b: its first keyframe came more than a GOP after its open.
    trial.missing_takeover_frames = {"a": 12, "b": 22, "g": 0, "n": 11}
    trial.server_last_frame_s = {"a": 0.25, "b": 0.25, "g": 0.0, "n": 0.2}
    trial.first_spare_frame_s = {"a": 1.0, "b": 2.0, "g": -1.0, "n": 1.0}
    return trial


def test_the_window_parts_add_up_to_the_missing_time_and_each_bound_is_judged() -> None:
    claimed, steps = session_steps({
        "claimed_wall_us": CRASH + 170_000,
        "session_steps_s": {"a": [0.01, 0.2, 0.2, 0.83], "b": [0.01, 0.5, 0.5, 1.83]}})
    parts = camera_parts(_trial(), claimed, steps, FPS, gapless=frozenset({"g"}))
    assert set(parts) == {"a", "b", "n"}, "gapless cameras are not standard ones"
    a = parts["a"]
    assert a["missing_s"] == 1.2 and a["server_unwritten_s"] == 0.15
    assert a["crash_to_claim_s"] == 0.15
    assert a["claim_to_session_start_s"] == pytest.approx(0.03)  # 20 ms to claimed_at, +10
    assert a["session_open_s"] == pytest.approx(0.19)
    assert a["keyframe_wait_s"] == pytest.approx(0.63)  # 1.0 - (0.17 + 0.2)
    assert a["first_keyframe_received_after_open_s"] == pytest.approx(0.63)
    assert a["unexplained_s"] == pytest.approx(0.05)  # 1.2 - (0.15+0.15+0.03+0.19+0.63)
    # 1.2 > 0.15 + 1 GOP, but within claim + open (0.37 after the crash) + 1 GOP + 1 frame
    assert a["within_issue_bound"] is False and a["within_open_bound"] is True
    assert a["within_window_bound"] is True
    b = parts["b"]
    assert b["missing_s"] == 2.2 and b["within_open_bound"] is False  # 2.2 > 0.67 + 1.1
    assert b["within_window_bound"] is False  # 2.2 > 0.15 + 0.67 + 1.1: more than a GOP waited
    n = parts["n"]  # no session steps reported: the open bound cannot be judged
    assert n["session_open_s"] is None and n["within_open_bound"] is None
    assert n["unexplained_s"] is None and n["within_issue_bound"] is True  # 1.1 <= 1.15

    rows = {r.metric: r for r in parts_rows("standard", [parts])}
    bound = rows["standard: missing_takeover_s_standard_open_bound"]
    assert bound.goal_met == "1/3" and bound.values == [1.2, 2.2, 1.1]
    assert rows["standard: missing_takeover_s_standard_window_bound"].goal_met == "1/3"
    assert rows["standard: window session_open_s"].values == pytest.approx([0.19, 0.49])


def test_a_spare_that_reports_no_steps_leaves_the_parts_unmeasured() -> None:
    claimed, steps = session_steps({"after_claim_s": 0.9})
    assert (claimed, steps) == (None, {})
    parts = camera_parts(_trial(), claimed, steps, FPS)
    assert all(p["within_open_bound"] is None for p in parts.values())
    assert parts_rows("standard", []) == []
