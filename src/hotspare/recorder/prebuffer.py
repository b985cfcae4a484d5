"""A gapless camera's rolling pre-buffer on its designated spare (issue 6, docs/failover.md).

The spare keeps its own RTSP session to the camera open before any failure and holds the last
`horizon` of packets here, whole GOPs only, so that on a takeover it can write every frame after the
failed server's commit watermark — frames the failed server received but never made durable.

Packets stay PyAV packets (no copy): a 4 Mbit/s camera costs ~0.5 MB per second held. Memory is
bounded by `max_bytes`; when the cap bites before the horizon is reached the buffer is shorter than
planned and says so (`short_by_cap`), because the operator must learn that a crash may then lose
video. Spilling to disk instead of dropping is not built (docs/failover.md, "Gapless").
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import av.packet


@dataclass(frozen=True)
class StandbySettings:
    """How much one camera's pre-buffer holds."""

    horizon_s: float
    """Keep at least this much video before now (detection bound + watermark lag + margin)."""
    max_bytes: int
    """Memory cap for this camera; the horizon yields to it."""


@dataclass
class _Gop:
    """One keyframe and the packets after it, up to the next keyframe."""

    start_recv_us: int
    packets: list[tuple[av.packet.Packet, int]] = field(default_factory=list)
    bytes: int = 0


class PreBuffer:
    """Whole GOPs of one RTSP session, oldest first; only the demux thread touches it."""

    def __init__(self, settings: StandbySettings) -> None:
        self._settings = settings
        self._horizon_us = int(settings.horizon_s * 1_000_000)
        self._gops: deque[_Gop] = deque()
        self.bytes = 0
        self.skipped_before_keyframe = 0
        self.short_by_cap = False
        """True when the memory cap, not the horizon, last decided what was dropped."""

    def add(self, packet: av.packet.Packet, recv_us: int) -> None:
        size = packet.size
        if packet.is_keyframe:
            self._gops.append(_Gop(recv_us))
        elif not self._gops:
            self.skipped_before_keyframe += 1  # undecodable without its keyframe
            return
        gop = self._gops[-1]
        gop.packets.append((packet, recv_us))
        gop.bytes += size
        self.bytes += size
        self._trim(recv_us)

    def _trim(self, now_us: int) -> None:
        """Drop the oldest GOP while the next one alone still reaches back `horizon` (or while over
        the memory cap); the newest GOP is never dropped."""
        gops = self._gops
        while len(gops) >= 2:
            old_enough = gops[1].start_recv_us <= now_us - self._horizon_us
            over_cap = self.bytes > self._settings.max_bytes
            if not (old_enough or over_cap):
                return
            self.short_by_cap = over_cap and not old_enough
            dropped = gops.popleft()
            self.bytes -= dropped.bytes

    def seconds(self, now_us: int) -> float:
        """How far back the buffer reaches from `now_us` (0 when empty)."""
        if not self._gops:
            return 0.0
        return max(0.0, (now_us - self._gops[0].start_recv_us) / 1_000_000)

    def take_from(
        self, keyframe_wall: Callable[[av.packet.Packet, int], int], from_wall_us: int | None
    ) -> tuple[list[tuple[av.packet.Packet, int]], bool]:
        """Empty the buffer, returning the packets from the last keyframe at or before
        `from_wall_us` (all of them when None), and whether that keyframe reaches back that far.

        `keyframe_wall(packet, recv_us)` gives a keyframe's wall time (the camera's capture time
        when RTCP timed the session, else its receive time: never later than the capture).
        """
        gops = list(self._gops)
        self._gops.clear()
        self.bytes = 0
        if not gops:
            return [], from_wall_us is None
        start = 0
        covered = from_wall_us is None
        if from_wall_us is not None:
            for index, gop in enumerate(gops):
                packet, recv_us = gop.packets[0]
                if keyframe_wall(packet, recv_us) <= from_wall_us:
                    start = index
                    covered = True
        return [p for gop in gops[start:] for p in gop.packets], covered
