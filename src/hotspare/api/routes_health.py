"""`GET /health`: what a spare's probe reads to decide whether this node is really recording.

It answers 200 even when cameras are down, with `ok=false`: an HTTP error would be
indistinguishable from a dead node, and design decision 5 (docs/design.md) needs "alive but not
recording" told apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter

from hotspare.api.context import Ctx
from hotspare.api.problems import COMMON_RESPONSES
from hotspare.wire import CameraHealthOut, HealthOut

router = APIRouter(tags=["health"], responses=COMMON_RESPONSES)

_STATES = {"recording", "connecting", "failing"}


def _field(item: Any, name: str) -> Any:
    if isinstance(item, Mapping):
        return item.get(name)
    return getattr(item, name, None)


def _camera_health(camera_id: str, item: Any) -> CameraHealthOut:
    state = str(_field(item, "state") or "failing")
    error = _field(item, "error")
    if state not in _STATES:
        error, state = f"unknown recorder state {state!r}", "failing"
    return CameraHealthOut(
        camera_id=camera_id,
        state=state,  # type: ignore[arg-type]
        last_frame_wall_us=_field(item, "last_frame_wall_us"),
        last_commit_wall_us=_field(item, "last_commit_wall_us"),
        run_id=_field(item, "run_id"),
        error=error,
    )


@router.get("/health", response_model=HealthOut, summary="Is every camera recording?")
def health(ctx: Ctx) -> HealthOut:
    now = ctx.clock()
    try:
        reported = dict(ctx.health())
        configured = ctx.known_cameras()
        cameras = [_camera_health(str(cid), item) for cid, item in sorted(reported.items())]
    except Exception as exc:  # the probe must always get an answer, never a 500
        return HealthOut(
            server_name=ctx.server_name,
            ok=False,
            cameras=[],
            checked_wall_us=now,
            error=f"health could not be read: {exc}",
        )
    for missing in sorted(configured - reported.keys()):
        cameras.append(
            CameraHealthOut(
                camera_id=missing,
                state="connecting",
                error="configured but no recorder worker is running for it",
            )
        )
    ok = all(c.state == "recording" for c in cameras)
    return HealthOut(server_name=ctx.server_name, ok=ok, cameras=cameras, checked_wall_us=now)
