"""A standard camera's takeover window, per camera and trial, cut into the parts it is made of.

A standard camera (no standby session) loses the video from the failed server's last stored frame
to the spare's first stored keyframe. That window is, in order:

- `server_unwritten_s`: frames the server had captured but not stored when it was killed (crash
  minus its last stored frame's capture time, less one frame interval);
- `crash_to_claim_s`: detection and the claim (the `claimed` event);
- `claim_to_session_start_s`: from the claim to the session's `av.open` call (the spare's own
  work after the claim, and the camera's thread start);
- `session_open_s`: the open itself (RTSP connect, DESCRIBE, SETUP, PLAY, FFmpeg's probe);
- `keyframe_wait_s`: from the open's return to the capture time of the first keyframe stored (at
  most one GOP when nothing else is lost; negative when the keyframe arrived during the probe).

The session's steps come from the spare's `recording` event (`session_steps_s`, wall times the
worker took, `hotspare.failover.early_sessions.session_steps`); the frames' capture times from
the frame tags read back from rec-1's store (`bench.failover.run.analyse`). All on one host's
clock. Their sum is the window between the two frames; `unexplained_s` is the missing time less
that sum (frames lost inside the window for another reason, e.g. damaged by packet loss).

Three checks per camera-trial: the issue's bound (missing ≤ claim + 1 GOP); the bound a standard
camera can be held to when its server stored every frame up to the crash (missing ≤ claim + the
session's open + 1 GOP + 1 frame: no keyframe sent before its session played can be stored); and
that bound plus what the server had not stored (`within_window_bound`: missed only when something
outside these parts took time, e.g. a first keyframe lost, so a camera waited more than a GOP).
"""

from __future__ import annotations

from typing import Any

from bench.failover.run import GOP_S, Row, Trial

PARTS = ("server_unwritten_s", "crash_to_claim_s", "claim_to_session_start_s", "session_open_s",
         "keyframe_wait_s")
ISSUE_BOUND = "missing <= claim + 1 GOP"
OPEN_BOUND = "missing <= claim + session open + 1 GOP + 1 frame"


def session_steps(data: dict[str, Any]) -> tuple[int | None, dict[str, list[float | None]]]:
    """(the claim's wall time, per camera its steps in seconds after it) from a `recording`
    event's data; (None, {}) from a spare that does not report them."""
    claimed = data.get("claimed_wall_us")
    steps = data.get("session_steps_s") or {}
    return (int(claimed) if claimed is not None else None), dict(steps)


def camera_parts(trial: Trial, claimed_wall_us: int | None,
                 steps: dict[str, list[float | None]], fps: int,
                 gapless: frozenset[str] = frozenset()) -> dict[str, dict[str, Any]]:
    """Per standard camera of the trial, its window's parts and both checks. A part that could
    not be measured is None, and so is a check that needs it."""
    frame_s = 1.0 / fps
    claim_s = trial.crash_to_claim_s
    out: dict[str, dict[str, Any]] = {}
    for camera, frames in sorted(trial.missing_takeover_frames.items()):
        if camera in gapless:
            continue
        missing_s = frames / fps
        last = trial.server_last_frame_s.get(camera)
        first = trial.first_spare_frame_s.get(camera)
        started = opened = None
        step = steps.get(camera)
        if step is not None and claimed_wall_us is not None and None not in step[:2]:
            claim_wall_offset_s = (claimed_wall_us - trial.crash_us) / 1e6
            started = claim_wall_offset_s + float(step[0] or 0.0)  # after the crash
            opened = claim_wall_offset_s + float(step[1] or 0.0)
        parts: dict[str, Any] = {
            "missing_s": round(missing_s, 3),
            "server_unwritten_s": None if last is None else round(last - frame_s, 3),
            "crash_to_claim_s": round(claim_s, 3),
            "claim_to_session_start_s": None if started is None else round(started - claim_s, 3),
            "session_open_s": (None if started is None or opened is None
                               else round(opened - started, 3)),
            "keyframe_wait_s": (None if first is None or opened is None
                                else round(first - opened, 3)),
            "first_packet_after_open_s": _after_open(step, 2),
            "first_keyframe_received_after_open_s": _after_open(step, 3),
        }
        measured = [parts[p] for p in PARTS]
        parts["unexplained_s"] = (None if None in measured
                                  else round(missing_s - sum(measured), 3))
        parts["within_issue_bound"] = missing_s <= claim_s + GOP_S
        parts["within_open_bound"] = (None if opened is None
                                      else missing_s <= opened + GOP_S + frame_s)
        unwritten = parts["server_unwritten_s"]
        parts["within_window_bound"] = (
            None if opened is None or unwritten is None
            else missing_s <= max(0.0, unwritten) + opened + GOP_S + frame_s)
        out[camera] = parts
    return out


def _after_open(step: list[float | None] | None, index: int) -> float | None:
    if step is None or step[1] is None or step[index] is None:
        return None
    return round(float(step[index] or 0.0) - float(step[1]), 3)


def parts_rows(phase: str, parts: list[dict[str, dict[str, Any]]]) -> list[Row]:
    """The parts over every camera-trial of a phase, and the open bound's count (a camera-trial
    whose session steps were not reported counts as not met)."""
    every = [p for trial in parts for p in trial.values()]
    if not every:
        return []
    rows = [Row(f"{phase}: window {name}", "s", [float(p[name]) for p in every
                                                  if p[name] is not None])
            for name in (*PARTS, "unexplained_s")]
    rows.append(Row(f"{phase}: window first_keyframe_received_after_open_s", "s",
                    [float(p["first_keyframe_received_after_open_s"]) for p in every
                     if p["first_keyframe_received_after_open_s"] is not None]))
    met = sum(p["within_open_bound"] is True for p in every)
    rows.append(Row(f"{phase}: missing_takeover_s_standard_open_bound", "s",
                    [float(p["missing_s"]) for p in every], "<= claim + open + 1 GOP + 1 frame",
                    f"{met}/{len(every)}"))
    held = sum(p["within_window_bound"] is True for p in every)
    rows.append(Row(f"{phase}: missing_takeover_s_standard_window_bound", "s",
                    [float(p["missing_s"]) for p in every],
                    "<= unwritten + claim + open + 1 GOP + 1 frame", f"{held}/{len(every)}"))
    return [r for r in rows if r.values]
