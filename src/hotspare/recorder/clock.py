"""Media time and wall anchor of one run (design decision 2 in docs/design.md).

Media time is the camera's RTP clock, unwrapped by FFmpeg and rebased so the run's first frame is
0; we never renumber frames, so two servers recording one camera get the same frame spacing. Wall
time is anchored once per run: from the camera's RTCP sender reports when they arrive (FFmpeg's
`start_time_realtime` is the wall time of stream timestamp 0), from our receive clock until then.
"""

from __future__ import annotations

import time
from collections import deque
from fractions import Fraction
from itertools import pairwise

from hotspare.store.models import TICKS_PER_SECOND

CAMERA_CLOCK_SANITY_US = 300 * 1_000_000
"""A camera whose clock is further off than this from ours is not believed (logged, local kept)."""

MAX_FORWARD_JUMP_90K = 10 * TICKS_PER_SECOND
"""A timestamp jump beyond this is a camera-side discontinuity, not a gap in delivery: new run."""

MAX_REORDER_90K = TICKS_PER_SECOND // 2
"""Presentation times may step back this far (B-frames arrive in decode order) without a new run."""

FRAME_STEP_WINDOW = 8
"""A frame's length is the smallest step between consecutive packets among the last this many: a
gap (frames lost over UDP) or a B-frame stream's step from one reference frame to the next is
never taken for one frame, and a real change of frame rate is followed within this many frames."""


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
        self._prev_ts: int | None = None  # the previous packet's, in arrival (decode) order
        self._steps: deque[int] = deque(maxlen=FRAME_STEP_WINDOW)  # stream ticks, positive
        self.last_media_90k = 0
        self.frame_duration_90k = 0
        """One frame's length (90 kHz): the smallest recent step, see FRAME_STEP_WINDOW."""
        self.whole = True
        """False after a packet that leaves frames shown before the latest one still to come
        (B-frames arrive after the reference frame shown after them): no place to stop a run."""

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

    def start(self, ts: int, frame_step: int = 0, lead: int = 0) -> None:
        """Begin the run at stream time `ts`; `frame_step` (stream ticks) times a later packet that
        comes without pts before any packet with one has set the spacing. `lead` (stream ticks):
        media 0 lies this much before the first frame (a replayed run whose audio starts first)."""
        self._first_ts = ts - max(0, lead)
        self._last_ts = ts
        self._last_delta = max(0, frame_step)
        if frame_step > 0:
            self._steps.append(frame_step)
            self.frame_duration_90k = self._to_90k(frame_step)

    @property
    def frame_step(self) -> int:
        """One frame's length in stream ticks (0 while unknown)."""
        return min(self._steps, default=0)

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
        if self._prev_ts is not None and ts > self._prev_ts:
            self._steps.append(ts - self._prev_ts)
            self.frame_duration_90k = self._to_90k(min(self._steps))
        self._prev_ts = ts
        if delta > 0:  # the newest frame so far; a reordered (earlier) one changes nothing here
            self._last_delta = delta
            self._last_ts = ts
            self.last_media_90k = media
        # Half a frame's slack for rounding; a gap (frames lost) also reads as not whole, for
        # the one packet after it.
        slack = self.frame_duration_90k * 3 // 2
        self.whole = self.last_media_90k - media <= slack and (delta <= 0 or delta_90k <= slack)
        return media

    def dts_90k(self, dts: int | None, media_90k: int) -> int:
        if dts is None or self._first_ts is None:
            return media_90k
        return self._to_90k(dts - self._first_ts)

    def end_media_90k(self) -> int:
        """Where the last frame ends: the latest presentation time plus one frame."""
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
    if b > a:
        step = (b - a) // (j - i)
        return a - i * step, step
    if b == a:  # no spacing to trust: FFmpeg's own origin
        return 0, 0
    # Reordered (B-frames, decode order I0 P3 B1 B2 …): in a closed GOP the keyframe is shown
    # first and the next frame shown is the smallest time after it, one frame step on. Three
    # timed packets reach it for up to three B-frames between references (or a pyramid of them).
    if len(known) < 3:
        return None
    times = sorted({ts for _, ts in known})
    step = min((y - x for x, y in pairwise(times)), default=0)
    if step <= 0:
        return 0, 0
    return times[0] - step, step


def frame_step_known(pts: list[int]) -> bool:
    """Whether these presentation times (a B-frame run's first packets, held) give the frame
    step that `decode_times` spaces them by: three different times, as for `first_ts_from`.
    With fewer (I0 P3) the step would be three frames, and the keyframe's decode time, so its
    sample's length and the segment's, two frames too long (measured: a run's first segment
    2.2 s long for 2 s of frames, its last two B-frames then cut from playback by the next
    segment's start). Held until the next B-frame (I0 P3 B1), they get the true step."""
    return len(set(pts)) >= 3


def decode_times(pts: list[int], after: tuple[int, int] | None = None) -> list[int]:
    """Decode times for packets FFmpeg handed over without any (the first ones of a stream with
    B-frames, before its parser knows the reorder delay), given their presentation times in
    arrival order.

    Each gets the k-th smallest of the presentation times, all shifted back by the least amount
    that keeps every decode time at or before its own presentation time: I0 P3 B1 B2 → −1 0 1 2.
    So they rise strictly and no frame is decoded after it is shown, which is what the muxer
    demands (it refuses the plain fallback dts = pts with "non monotonically increasing dts").
    `after` = (pts, dts) of the first packet FFmpeg timed after them: the held ones are its
    predecessors in decode order, one frame step apart (the smallest step between all their
    presentation times), so they also end one step before its dts.
    """
    if not pts:
        return []
    times = sorted(pts)
    for k in range(1, len(times)):
        times[k] = max(times[k], times[k - 1] + 1)
    shift = max(0, *(t - p for t, p in zip(times, pts, strict=True)))
    out = [t - shift for t in times]
    if after is not None:
        known = sorted({*pts, after[0]})
        step = min((y - x for x, y in pairwise(known)), default=1)
        n = len(out)
        out = [min(t, after[1] - (n - k) * step) for k, t in enumerate(out)]
    return out


def believable_camera_anchor(camera_us: int, local_us: int) -> bool:
    return abs(camera_us - local_us) <= CAMERA_CLOCK_SANITY_US
