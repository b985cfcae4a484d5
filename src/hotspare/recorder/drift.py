"""How far a camera's RTP clock has drifted from its wall clock since a connection began.

FFmpeg's `start_time_realtime` comes from the *first* RTCP sender report only, so a run's wall
time (anchor + media time) inherits any drift of the camera's 90 kHz clock against its
NTP-disciplined wall clock: 50–100 ppm is 4–9 s a day. FFmpeg (8.x) attaches every later sender
report to the next packet as side data (`rtcp_sr`, an `AVRTCPSenderReport`); each one says what
wall time the camera gives an RTP time now. The difference between that and the first report's
extrapolation is the drift the worker corrects by starting a new run (docs/recorder.md, *Time*).
"""

from __future__ import annotations

import struct
from fractions import Fraction
from typing import Final, Literal

import av.packet

SR_SIDE_DATA: Final[Literal["rtcp_sr"]] = "rtcp_sr"

SAME_TIMELINE_S = Fraction(2, 5)
"""A sender report whose RTP time is further than this from the packet it came with is about
another timeline (less than the half second back or ten forward that ends a run: clock.py)."""

REANCHOR_DRIFT_US = 10_000
"""Drift at which a run is re-anchored, at most (`reanchor_threshold_us`)."""


def reanchor_threshold_us(frame_90k: int) -> int:
    """Re-anchor once the drift reaches a quarter of a frame, at most REANCHOR_DRIFT_US.

    A fast camera's new run starts up to this much (plus the drift until the next keyframe)
    before the previous run's last frame ends. Kept under half a frame, that frame is still
    served whole (playback treats starts within half a frame as the same time, docs/design.md
    decision 13) and frame start times never step back; large enough that a sender report's
    own jitter does not split runs.
    """
    if frame_90k <= 0:
        return REANCHOR_DRIFT_US
    return min(REANCHOR_DRIFT_US, frame_90k * 1_000_000 // 90_000 // 4)


_NTP_TO_UNIX_S = 2_208_988_800  # seconds from 1900 (NTP's epoch) to 1970
_SENDER_REPORT = struct.Struct("=I4xQI")  # ssrc, (padding), ntp_timestamp, rtp_timestamp
_RTP_WRAP = 1 << 32


def sender_report(packet: av.packet.Packet) -> tuple[int, int] | None:
    """(wall µs, 32-bit RTP time) of the sender report attached to `packet`, if any."""
    if not packet.has_sidedata(SR_SIDE_DATA):
        return None
    raw = bytes(packet.get_sidedata(SR_SIDE_DATA))
    if len(raw) < _SENDER_REPORT.size:
        return None
    _, ntp, rtp = _SENDER_REPORT.unpack_from(raw)
    wall_us = ((ntp >> 32) - _NTP_TO_UNIX_S) * 1_000_000 + ((ntp & 0xFFFF_FFFF) * 1_000_000 >> 32)
    return wall_us, rtp


class DriftTracker:
    """Drift of one connection's RTP clock against the camera's wall clock, report by report."""

    def __init__(self, time_base: Fraction) -> None:
        self._tb = time_base
        self._first: tuple[int, int] | None = None  # (wall µs, unwrapped RTP ticks)
        self._last_rtp32 = 0
        self._rtp = 0  # unwrapped: 32-bit RTP time wraps every 13 h at 90 kHz
        self.drift_us = 0
        """Wall time the camera gives now minus what the first report's mapping gives (µs):
        negative when the RTP clock runs fast. Add it to a wall time from the first mapping."""
        self.reports = 0

    def add(self, wall_us: int, rtp32: int,
            against: tuple[int | None, int | None] | None = None) -> bool:
        """Take a report. With `against` = (stream time of the packet the report came with,
        FFmpeg's `start_time_realtime`), a report whose RTP time is not near that packet's is
        about another timeline (a camera that restarted its stream sends reports about its old
        timestamps for a while) and leaves the drift alone, as does one that cannot be judged
        (either is None). Returns whether the drift now comes from this report."""
        if self._first is None:
            self._first = (wall_us, 0)
            self._last_rtp32 = rtp32
            self.reports = 1
            return self._about(against)
        step = (rtp32 - self._last_rtp32) % _RTP_WRAP
        if step >= _RTP_WRAP // 2:
            step -= _RTP_WRAP  # a report about an earlier RTP time (reordered)
        self._rtp += step
        self._last_rtp32 = rtp32
        if not self._about(against):
            return False
        first_wall, first_rtp = self._first
        predicted = first_wall + round((self._rtp - first_rtp) * self._tb * 1_000_000)
        self.drift_us = wall_us - predicted
        self.reports += 1
        return True

    def _about(self, against: tuple[int | None, int | None] | None) -> bool:
        """Whether the latest report's RTP time lies within SAME_TIMELINE_S of the stream time
        in `against` (None: not asked, True).

        FFmpeg's stream time 0 is at `realtime_us` by the first report, so that report's RTP
        time is (first wall - realtime) in stream ticks, and every later one is that plus the
        RTP time unwrapped since (the same 32-bit unwrapping FFmpeg gives packet timestamps)."""
        if against is None or self._first is None:
            return True
        stream_ts, realtime_us = against
        if stream_ts is None or realtime_us is None:
            return False
        first_ts = round((self._first[0] - realtime_us) / 1_000_000 / self._tb)
        # FFmpeg unwraps a jump of the 32-bit RTP time forward (measured: a restart's jump of
        # -975 s came out as +46 745 s), this tracker to the nearest: compare modulo 2**32, and
        # take FFmpeg's side so that the drift maps its stream times.
        off = stream_ts - first_ts - self._rtp
        near = (off + _RTP_WRAP // 2) % _RTP_WRAP - _RTP_WRAP // 2
        if abs(near) * self._tb > SAME_TIMELINE_S:
            return False
        self._rtp += off - near
        return True
