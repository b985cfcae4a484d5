"""The spare's takeover job: claim a failed server, record its cameras, keep proving the claim.

1. `claim`: create-if-absent of `claims/<server>` under the spare's lease; its create revision
   is the token. Then `own`: the owner record, fenced: API clients now find the cameras here.
2. `start_recorder`: the recording server's own engine under the server's identity, into this
   spare's buffer store for it; a gapless camera's standby worker is adopted, written from the
   failed server's last commit watermark.
3. while covering: `prove` the claim with the fenced heartbeat (`covering/<server>`, 1 s);
   `follow` the configuration's cameras; the `recording` event once every camera records;
   publish this spare's own commit watermarks for the server (fenced), so that a spare claiming
   it after this one died writes its pre-buffer from what this one made durable.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from hotspare.coordination.errors import CoordinationError, FencingError
from hotspare.failover.detection import ServerTrack
from hotspare.failover.early_sessions import (
    close_sessions,
    first_keyframes,
    session_steps,
)
from hotspare.failover.server_agent import WATERMARK_INTERVAL_SECONDS
from hotspare.failover.spare_states import ClaimWon, Refused
from hotspare.failover.spare_work import Coverage, SpareContext
from hotspare.failover.standby_pool import StandbyPool
from hotspare.recorder.health import CameraHealth, CameraState
from hotspare.recorder.worker import CameraWorker
from hotspare.site.model import RecordingServerConfig
from hotspare.sitestate.access import HeldLease
from hotspare.sitestate.values import Claim, Covering, Owner, Watermarks, now_us
from hotspare.store.segment_store import SegmentStore

log = logging.getLogger("hotspare.failover.spare")

HEARTBEAT_SECONDS = 1.0


def claim(ctx: SpareContext, server: RecordingServerConfig, keeper: HeldLease, reason: str,
          track: ServerTrack) -> ClaimWon | None:
    """None: another spare won (nothing changes here)."""
    started = time.monotonic()
    won, holder = ctx.site.claim(server.name, Claim(ctx.name, ctx.url, keeper.id, now_us()),
                                 keeper)
    if not won or holder is None:
        log.info("claim on %s lost to %s", server.name, holder.spare if holder else "?")
        return None
    token = holder.token
    suspected_for = started - (track.suspect_since or started)
    ctx.events.emit("claimed", server.name,
                    f"{ctx.name} claimed {server.name} (token {token}): {reason}",
                    token=token, detected_after_s=round(suspected_for, 3),
                    claim_ms=round((time.monotonic() - started) * 1000, 1))
    track.clear()
    return ClaimWon(server.name, token)


def own(ctx: SpareContext, server: str, token: int) -> Refused | None:
    """The buffer record, then the owner record, both fenced: the original takes this spare's
    video later even without a claim (`hotspare.api.fencing`), and API clients now find the
    server's cameras here."""
    try:
        ctx.site.record_buffer(server, ctx.name, token)
        ctx.site.put_owner_fenced(server, Owner(ctx.name, ctx.url, token), token)
    except FencingError:
        return Refused("claim gone right after it was made", proven=False)
    return None


def watermarks(ctx: SpareContext, server: str) -> dict[str, int]:
    """The failed server's last published commit watermarks (wall µs per camera)."""
    try:
        marks = ctx.site.watermarks(server)
    except (CoordinationError, ValueError) as exc:
        log.warning("no commit watermarks for %s (%s): gapless cameras write their whole "
                    "pre-buffer", server, exc)
        return {}
    return {} if marks is None else dict(marks.cameras)


def start_recorder(ctx: SpareContext, cov: Coverage, server: RecordingServerConfig,
                   standby: StandbyPool) -> None:
    """The store flags each committed segment `reinsert_pending` itself (it records under an
    identity not its own), so retention keeps it until re-insert delivered it."""
    store: SegmentStore = cov.store
    cameras = server.failover_cameras()
    workers = standby.take(server.name)
    marks = watermarks(ctx, server.name) if workers else {}
    for camera_id, until in cov.marks.items():  # covered again: what we made durable before
        marks[camera_id] = max(marks.get(camera_id, until), until)
    # big-takeover: the sessions opened at the claim (`early_sessions`) are adopted too, for
    # the cameras no hot standby covers; they write from their first keyframe (no watermark).
    early, cov.early = cov.early, {}
    close_sessions({c: w for c, w in early.items() if c in workers})
    cov.opened_at_claim = frozenset(c for c in early if c not in workers)
    adopted = {**{c: early[c] for c in cov.opened_at_claim}, **workers}
    cov.recorder = ctx.make_recorder(server.name, cameras, store, server.recording,
                                     standby=adopted,
                                     watermarks={c: m for c, m in marks.items() if c in workers})
    cov.cameras = tuple(cameras)
    cov.recording_announced = False
    cov.released = set()
    cov.gapless_wanted = tuple(c.id for c in server.gapless_cameras())
    cov.recorder.start()
    ctx.view.show(store, cov.recorder, {c.id for c in cameras})


def open_sessions(ctx: SpareContext, server: RecordingServerConfig, store: SegmentStore,
                  standby: StandbyPool) -> dict[str, CameraWorker]:
    """big-takeover: at the claim, before the owner records, every camera's session except
    those a hot standby already pre-buffers (`early_sessions`)."""
    buffering = {camera for camera, value in standby.status()["cameras"].items()
                 if value["server"] == server.name and value["state"] == "buffering"}
    return ctx.open_sessions(server, store, skip=buffering)


def prove(ctx: SpareContext, cov: Coverage, keeper: HeldLease) -> Refused | None:
    """The fenced heartbeat, once a second (at once after a lease was lost: `last_heartbeat`
    is then reset); Refused when etcd refuses it."""
    assert cov.token is not None
    now = time.monotonic()
    if now - cov.last_heartbeat >= HEARTBEAT_SECONDS:
        try:
            ctx.site.heartbeat(cov.server, Covering(ctx.name, cov.token), keeper)
        except FencingError as exc:
            return Refused(f"fenced write refused: {exc}")
        cov.last_heartbeat = now
    return None


def follow(ctx: SpareContext, cov: Coverage) -> None:
    """Record the cameras the configuration now gives the server (minus those released to the
    returning server); announce `recording` once every one records."""
    assert cov.recorder is not None
    now = time.monotonic()
    applied = ctx.applied.current
    server = applied.config.recording_server(cov.server) if applied else None
    wanted = [] if server is None else [c for c in server.failover_cameras()
                                        if c.id not in cov.released]
    if server is not None and tuple(wanted) != cov.cameras:
        cov.recorder.update_cameras(wanted)
        cov.cameras = tuple(wanted)
        ctx.view.show(cov.store, cov.recorder, {c.id for c in wanted})
    _announce_recording(ctx, cov, now)
    _publish_watermarks(ctx, cov, now)


def committed_until(cov: Coverage, health: Mapping[str, CameraHealth]) -> None:
    """Raise `cov.marks` to the end of each camera's last segment this spare committed (they
    never go back: the video before them is durable here, or in the server's store once
    re-inserted)."""
    for camera_id, h in health.items():
        until = h.committed_until_wall_us
        if until is not None and until > cov.marks.get(camera_id, 0):
            cov.marks[camera_id] = until


def _publish_watermarks(ctx: SpareContext, cov: Coverage, now: float) -> None:
    """`watermarks/<server>` under our claim, ≤ 1/s and only when one moved, as the server does
    for itself: if this spare dies too, the next claimant writes its pre-buffer from here. A
    refused write changes nothing here; the heartbeat is what proves the claim."""
    assert cov.recorder is not None
    if cov.token is None or now - cov.marks_at < WATERMARK_INTERVAL_SECONDS:
        return
    before = dict(cov.marks)
    committed_until(cov, cov.recorder.health())
    if not cov.marks or (cov.marks == before and cov.marks_at):
        return
    try:
        ctx.site.publish_watermarks_fenced(cov.server, Watermarks(dict(cov.marks)), cov.token)
    except CoordinationError as exc:  # FencingError included
        log.warning("%s: commit watermarks for %s not published (%s)", ctx.name, cov.server, exc)
        return
    cov.marks_at = now


def _announce_recording(ctx: SpareContext, cov: Coverage, now: float) -> None:
    assert cov.recorder is not None
    health = cov.recorder.health()
    if (cov.recording_announced or not health
            or not all(h.state is CameraState.RECORDING for h in health.values())):
        return
    cov.recording_announced = True
    gapless = gapless_data(cov)
    claimed_wall_us = now_us() - round((time.monotonic() - cov.claimed_at) * 1e6)
    ctx.events.emit("recording", cov.server,
                    f"{ctx.name} records {len(health)} camera(s) as {cov.server}"
                    + _gapless_summary(gapless),
                    after_claim_s=round(now - cov.claimed_at, 3), gapless=gapless,
                    first_keyframe_after_claim_s=first_keyframes(  # big-takeover
                        cov.store, health, cov.opened_at_claim, claimed_wall_us),
                    session_steps_s=session_steps(cov.recorder.workers(), cov.opened_at_claim,
                                                  claimed_wall_us),
                    claimed_wall_us=claimed_wall_us)
    short = {c: ("no standby session" if not v["prebuffered"] else
                 "pre-buffer did not reach back to the watermark")
             for c, v in gapless.items() if not v["covered"]}
    if short:
        ctx.events.emit("gapless_fallback", cov.server,
                        f"{ctx.name}: gapless camera(s) of {cov.server} lost part of "
                        "the takeover window like standard cameras: "
                        + "; ".join(f"{c} ({why})" for c, why in sorted(short.items()))
                        + " (see `hotspare protection`)",
                        cameras=sorted(short), reasons=short)


def gapless_data(cov: Coverage) -> dict[str, Any]:
    """Per gapless camera, what its hot standby wrote at the takeover (for events and tests)."""
    workers = cov.recorder.workers() if cov.recorder is not None else {}
    out: dict[str, Any] = {}
    for camera_id in cov.gapless_wanted:
        act = (workers[camera_id].activation  # not a session opened at the claim (big-takeover)
               if camera_id in workers and camera_id not in cov.opened_at_claim else None)
        out[camera_id] = {
            "prebuffered": act is not None,
            "covered": bool(act and act.covered),
            "frames": act.frames if act else 0,
            "lead_s": (round((act.from_wall_us - act.first_wall_us) / 1e6, 3)
                       if act and act.from_wall_us and act.first_wall_us else None),
        }
    return out


def _gapless_summary(data: dict[str, Any]) -> str:
    if not data:
        return ""
    covered = sum(1 for v in data.values() if v["covered"])
    return f"; gapless: {covered}/{len(data)} camera(s) written from the commit watermark"
