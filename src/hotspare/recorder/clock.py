"""Media time and wall anchor of one run (design decision 2 in docs/design.md).

Media time is the camera's RTP clock, unwrapped by FFmpeg and rebased so the run's first frame is
0; we never renumber frames, so two servers recording one camera get the same frame spacing. Wall
time is anchored once per run: from the camera's RTCP sender reports when they arrive (FFmpeg's
`start_time_realtime` is the wall time of stream timestamp 0), from our receive clock until then.
"""

from __future__ import annotations

import time
from fractions import Fraction

from hotspare.store.models import TICKS_PER_SECOND

CAMERA_CLOCK_SANITY_US = 300 * 1_000_000
"""A camera whose clock is further off than this from ours is not believed (logged, local kept)."""

MAX_FORWARD_JUMP_90K = 10 * TICKS_PER_SECOND
"""A timestamp jump beyond this is a camera-side discontinuity, not a gap in delivery: new run."""

MAX_REORDER_90K = TICKS_PER_SECOND // 2
"""Presentation times may step back this far (B-frames arrive in decode order) without a new run."""


def now_wall_us() -> int:
    return time.time_ns() // 1000


class TimestampDiscontinuity(Exception):
    """The camera's clock went backwards or leapt; the run must end so times stay truthful."""


class RunClock:
    """Turns a packet's stream timestamp into the run's 90 kHz media time."""

    def __init__(self, time_base: Fraction) -> None:
        self._tb = time_base
        # Integer scaling, precomputed: this runs for every packet of every camera.
        self._num = time_base.numerator * TICKS_PER_SECOND
        self._den = time_base.denominator
        self._identity = self._num == self._den
        self._first_ts: int | None = None
        self._last_ts: int | None = None
        self._last_delta = 0
        self.last_media_90k = 0
        self.frame_duration_90k = 0

    @property
    def started(self) -> bool:
        return self._first_ts is not None

    def stream_ts(self, pts: int | None) -> int:
        """The packet's timestamp, guessed when FFmpeg left it unset: one frame after the previous.

        The *first* packet after open often has no pts (measured). Its stream time is not known
        (see `first_ts_from`): the run must be started with `start` before this is asked.
        """
        if pts is not None:
            return pts
        if self._last_ts is None:
            raise ValueError("stream_ts(None) before start(): the first frame's time is unknown")
        return self._last_ts + self._last_delta

    def start(self, ts: int, frame_step: int = 0) -> None:
        """Begin the run at stream time `ts`; `frame_step` (stream ticks) times a later packet that
        comes without pts before any packet with one has set the spacing."""
        self._first_ts = ts
        self._last_ts = ts
        self._last_delta = max(0, frame_step)

    def media_90k(self, ts: int) -> int:
        """Media time of `ts`; raises TimestampDiscontinuity on a jump back or far forward."""
        assert self._first_ts is not None and self._last_ts is not None
        delta = ts - self._last_ts
        delta_90k = self._to_90k(delta)
        if delta_90k > MAX_FORWARD_JUMP_90K or delta_90k < -MAX_REORDER_90K:
            raise TimestampDiscontinuity(
                f"camera timestamp jumped by {float(delta * self._tb):+.3f} s"
            )
        media = self._to_90k(ts - self._first_ts)
        if delta > 0:  # the newest frame so far; a reordered (earlier) one changes nothing here
            self._last_delta = delta
            self.frame_duration_90k = delta_90k
            self._last_ts = ts
            self.last_media_90k = media
        return media

    def dts_90k(self, dts: int | None, media_90k: int) -> int:
        if dts is None or self._first_ts is None:
            return media_90k
        return self._to_90k(dts - self._first_ts)

    def end_media_90k(self) -> int:
        """Where the last frame ends: its start plus the last frame spacing seen."""
        return self.last_media_90k + self.frame_duration_90k

    def camera_anchor_us(self, start_time_realtime_us: int | None) -> int | None:
        """Wall time of media 0 from RTCP, or None while no sender report has arrived."""
        if start_time_realtime_us is None or self._first_ts is None:
            return None
        return start_time_realtime_us + round(self._first_ts * self._tb * 1_000_000)

    def _to_90k(self, ticks: int) -> int:
        if self._identity:
            return ticks
        return (2 * ticks * self._num + self._den) // (2 * self._den)  # rounded half up


def first_ts_from(pts_after: list[int | None]) -> tuple[int, int] | None:
    """Stream time of a first packet that came without pts, from the packets after it.

    `pts_after[i]` is the pts of the (i+1)-th packet after the first one (None when unset).
    Returns (stream time of the first packet, frame step), or None until two of them carry a pts.

    Why not 0: FFmpeg counts a lone RTP stream from the first RTP timestamp it *received*, which is
    not always the first packet it hands over. Joining a stream another client already plays
    (GStreamer's shared media; a recording server coming back while its spare still records)
    the first packet handed over is one frame *after* stream time 0 — measured 25 of 25 joins,
    while a fresh stream gives 0. Calling it 0 made the camera anchor (RTCP wall time of stream
    time 0 + first frame's stream time) one frame early, and re-insert's overlap rule then judged
    the spare's frame before the restart as already held and trimmed it. The frames after the
    first carry true timestamps, so the first is one step before them; with a constant frame
    rate (no B-frames: packets in presentation order) that is exact.
    """
    known = [(i + 1, ts) for i, ts in enumerate(pts_after) if ts is not None]
    if len(known) < 2:
        return None
    (i, a), (j, b) = known[0], known[1]
    step = (b - a) // (j - i)
    if step <= 0:  # reordered (B-frames) or broken: no spacing to trust; FFmpeg's own origin
        return 0, 0
    return a - i * step, step


def believable_camera_anchor(camera_us: int, local_us: int) -> bool:
    return abs(camera_us - local_us) <= CAMERA_CLOCK_SANITY_US
