"""What the routes need from the node, gathered so routes stay free of globals and easy to test.

Health is a callable, not a Recorder, so the API runs (and is tested) without any camera: the node
daemon passes `recorder.health`, tests pass a lambda.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request

from hotspare.api.hls import LiveSequencer
from hotspare.api.problems import ApiError
from hotspare.config.models import is_identifier
from hotspare.store.segment_store import SegmentStore
from hotspare.timefmt import TimeFormatError, parse_wall_time

HealthSource = Callable[[], Mapping[str, Any]]

DEFAULT_RANGE_US = 3_600_000_000  # one hour, when a client names no range


@dataclass
class NodeContext:
    store: SegmentStore
    health: HealthSource
    server_name: str
    known_cameras: Callable[[], set[str]]
    clock: Callable[[], int]
    max_import_bytes: int
    live_segments: int = 6
    live_lookback_us: int = 600_000_000
    sequencer: LiveSequencer = field(default_factory=LiveSequencer)

    def check_camera(self, camera: str, *, must_be_configured: bool = False) -> str:
        """Refuse bad ids before they reach the store, and unknown cameras with a clear 404."""
        if not is_identifier(camera):
            raise ApiError(
                400,
                "bad_camera_id",
                f"camera id {camera!r} is not valid: use lower-case letters, digits, "
                "'-' and '_' (at most 63 characters)",
            )
        configured = self.known_cameras()
        if camera in configured:
            return camera
        if not must_be_configured and camera in self.store.cameras():
            return camera
        where = "configured on" if must_be_configured else "configured on or recorded by"
        raise ApiError(
            404,
            "unknown_camera",
            f"camera {camera!r} is not {where} node {self.server_name!r}; "
            "check the camera id and that you asked the right node",
        )

    def time_range(self, from_text: str | None, to_text: str | None) -> tuple[int, int]:
        try:
            to_us = parse_wall_time(to_text) if to_text is not None else self.clock()
            from_us = (
                parse_wall_time(from_text)
                if from_text is not None
                else max(0, to_us - DEFAULT_RANGE_US)
            )
        except TimeFormatError as exc:
            raise ApiError(400, "bad_time", str(exc)) from None
        if from_us > to_us:
            raise ApiError(400, "bad_range", "`from` is after `to`; swap them or widen the range")
        return from_us, to_us


def context_of(request: Request) -> NodeContext:
    ctx = request.app.state.node
    assert isinstance(ctx, NodeContext)
    return ctx


Ctx = Annotated[NodeContext, Depends(context_of)]
