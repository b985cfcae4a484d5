"""A gapless camera's rolling pre-buffer on its designated spare (issue 6, docs/failover.md).

The spare keeps its own RTSP session to the camera open before any failure and holds the last
`horizon` of packets here, whole GOPs only, so that on a takeover it can write every frame after the
failed server's commit watermark — frames the failed server received but never made durable.

Packets stay PyAV packets in memory (no copy): a 4 Mbit/s camera costs ~0.5 MB per second held.
A camera's audio packets (when the run records audio) ride in the GOP during which they arrived,
in arrival order, so a replay hands them to the run interleaved exactly as live demux would; they
count against the same caps and spill with their GOP.
Memory is bounded by `max_bytes`. When the horizon needs more (a camera sending far above its
configured bitrate), the oldest GOPs spill to files in `spill_dir`, up to `max_spill_bytes`; only
beyond that is video dropped before the horizon, and the buffer then says so (`short_by_cap`),
because the operator must learn that a crash may lose video. Spill files are a volatile cache:
never fsynced, deleted as they age out, and worthless after a restart.
"""

from __future__ import annotations

import itertools
import struct
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import av.packet
import av.stream


@dataclass(frozen=True)
class StandbySettings:
    """How much one camera's pre-buffer holds."""

    horizon_s: float
    """Keep at least this much video before now (detection bound + watermark lag + margin)."""
    max_bytes: int
    """Memory cap for this camera; the horizon yields to it (and to the spill cap)."""
    max_spill_bytes: int = 0
    """Disk for GOPs pushed out of memory before the horizon; 0 = drop them instead."""
    spill_dir: Path | None = None
    """Where this camera's spilled GOPs go (one file each); needed when max_spill_bytes > 0."""


_RECORD = struct.Struct("<qqBqI")  # pts, dts, flags, receive wall µs, payload size
_KEYFRAME, _AUDIO = 1, 2  # spill record flags
_NONE_TS = -(2**63)  # stands for a missing pts/dts in a spill record

Packet = tuple[av.packet.Packet, int]
"""A packet and its receive wall time (µs); an audio packet is one of the audio stream."""


@dataclass
class _Gop:
    """One keyframe and the packets after it, up to the next keyframe; in memory or on disk."""

    start_recv_us: int
    first_pts: int | None
    packets: list[Packet] = field(default_factory=list)
    bytes: int = 0
    spilled: Path | None = None

    def load(self, audio: av.stream.Stream | None) -> list[Packet]:
        """The GOP's packets, read back from its spill file if it has one (an audio packet then
        gets `audio` as its stream again)."""
        if self.spilled is None:
            return self.packets
        out: list[Packet] = []
        data = self.spilled.read_bytes()
        offset = 0
        while offset < len(data):
            pts, dts, flags, recv_us, size = _RECORD.unpack_from(data, offset)
            offset += _RECORD.size
            packet = av.packet.Packet(data[offset:offset + size])
            offset += size
            if flags & _AUDIO and audio is not None:
                packet.stream = audio
                if audio.time_base is not None:
                    packet.time_base = audio.time_base
            packet.pts = None if pts == _NONE_TS else pts
            packet.dts = None if dts == _NONE_TS else dts
            packet.is_keyframe = bool(flags & _KEYFRAME)
            out.append((packet, recv_us))
        return out


class PreBuffer:
    """Whole GOPs of one RTSP session, oldest first; only the demux thread touches it."""

    def __init__(self, settings: StandbySettings, audio: av.stream.Stream | None = None) -> None:
        """`audio`: the session's audio stream whose packets `add_audio` is given (None: video
        only)."""
        self._settings = settings
        self._audio = audio
        self._horizon_us = int(settings.horizon_s * 1_000_000)
        self._spill_dir = settings.spill_dir if settings.max_spill_bytes > 0 else None
        self._names = itertools.count()
        self._gops: deque[_Gop] = deque()
        self.bytes = 0
        """Bytes held in memory."""
        self.spilled_bytes = 0
        self.skipped_before_keyframe = 0
        self.short_by_cap = False
        """True when the caps, not the horizon, last decided what was dropped."""

    def add(self, packet: av.packet.Packet, recv_us: int) -> None:
        size = packet.size
        if packet.is_keyframe:
            self._gops.append(_Gop(recv_us, packet.pts))
        elif not self._gops:
            self.skipped_before_keyframe += 1  # undecodable without its keyframe
            return
        gop = self._gops[-1]
        gop.packets.append((packet, recv_us))
        gop.bytes += size
        self.bytes += size
        self._trim(recv_us)

    def add_audio(self, packet: av.packet.Packet, recv_us: int) -> None:
        """Hold an audio packet with the GOP it arrived in (none before the first keyframe:
        a run drops the audio before its first frame anyway)."""
        if not self._gops:
            return
        gop = self._gops[-1]
        gop.packets.append((packet, recv_us))
        gop.bytes += packet.size
        self.bytes += packet.size

    def _trim(self, now_us: int) -> None:
        """Drop the oldest GOP while the next one alone still reaches back `horizon`; then, while
        memory is over its cap, spill the oldest in-memory GOP (or drop, when the disk cap is
        reached too). The newest GOP is never dropped or spilled."""
        gops = self._gops
        while len(gops) >= 2 and gops[1].start_recv_us <= now_us - self._horizon_us:
            self._drop_oldest()
        while self.bytes > self._settings.max_bytes and len(gops) >= 2:
            oldest_in_memory = next(g for g in gops if g.spilled is None)
            if oldest_in_memory is gops[-1]:
                return
            if not self._spill(oldest_in_memory):
                # No room on disk either: lose the oldest video, spilled or not, up to and
                # including this GOP (a hole in the middle would be worse than a shorter buffer).
                self.short_by_cap = True
                while gops[0] is not oldest_in_memory:
                    self._drop_oldest()
                self._drop_oldest()

    def _spill(self, gop: _Gop) -> bool:
        if self._spill_dir is None:
            return False
        if self.spilled_bytes + gop.bytes > self._settings.max_spill_bytes:
            return False
        self._spill_dir.mkdir(parents=True, exist_ok=True)
        path = self._spill_dir / f"{next(self._names):08d}.gop"
        with path.open("wb") as f:
            for packet, recv_us in gop.packets:
                pts = _NONE_TS if packet.pts is None else packet.pts
                dts = _NONE_TS if packet.dts is None else packet.dts
                flags = (_KEYFRAME if packet.is_keyframe else 0) | (
                    _AUDIO if self.is_audio(packet) else 0)
                f.write(_RECORD.pack(pts, dts, flags, recv_us, packet.size))
                f.write(bytes(packet))
        gop.spilled, gop.packets = path, []
        self.bytes -= gop.bytes
        self.spilled_bytes += gop.bytes
        return True

    def _drop_oldest(self) -> None:
        gop = self._gops.popleft()
        if gop.spilled is not None:
            self.spilled_bytes -= gop.bytes
            gop.spilled.unlink(missing_ok=True)
        else:
            self.bytes -= gop.bytes

    def is_audio(self, packet: av.packet.Packet) -> bool:
        """True for a packet of the audio stream (a video packet read back from a spill file
        has no stream at all)."""
        return self._audio is not None and packet.stream is self._audio

    def seconds(self, now_us: int) -> float:
        """How far back the buffer reaches from `now_us` (0 when empty)."""
        if not self._gops:
            return 0.0
        return max(0.0, (now_us - self._gops[0].start_recv_us) / 1_000_000)

    def take_from(
        self, keyframe_wall: Callable[[int | None, int], int], from_wall_us: int | None
    ) -> tuple[list[Packet], bool]:
        """Empty the buffer, returning the packets from the last keyframe at or before
        `from_wall_us` (all of them when None), and whether that keyframe reaches back that far.

        `keyframe_wall(pts, recv_us)` gives a keyframe's wall time (the camera's capture time
        when RTCP timed the session, else its receive time: never later than the capture).
        """
        gops = list(self._gops)
        self._gops.clear()
        self.bytes = 0
        start = 0
        covered = from_wall_us is None
        if from_wall_us is not None:
            for index, gop in enumerate(gops):
                if keyframe_wall(gop.first_pts, gop.start_recv_us) <= from_wall_us:
                    start = index
                    covered = True
        packets = [p for gop in gops[start:] for p in gop.load(self._audio)]
        if start > 0 and packets and self._audio is not None:
            # Audio that arrived before the first keyframe may start at or after it (small audio
            # packets overtake a large keyframe on the wire): handed over right after that
            # keyframe, the run keeps what starts at or after it and drops the rest, so the
            # replay's audio begins where a run that had been recording all along would have it.
            lead = [p for p in gops[start - 1].load(self._audio) if self.is_audio(p[0])]
            packets[1:1] = lead
        self.close(gops)
        return packets, covered

    def copy_span(
        self, keyframe_wall: Callable[[int | None, int], int], from_wall_us: int, to_wall_us: int
    ) -> tuple[list[Packet], int | None]:
        """Copies of the packets of [from, to) in whole GOPs, the buffer left as it is (a gap
        repair, `hotspare.failover.gap_repair`): from the last keyframe at or before `from` (the
        oldest one held when none is) through every GOP whose keyframe comes before `to`
        (`keyframe_wall` as in `take_from`). Also returns the wall time of the oldest keyframe
        held (None when empty): a span starting before it is not wholly here any more.

        Copies, because muxing rewrites a packet's timing in place, and the originals may still
        be replayed by a takeover."""
        gops = list(self._gops)
        if not gops:
            return [], None
        walls = [keyframe_wall(gop.first_pts, gop.start_recv_us) for gop in gops]
        start = max((i for i, wall in enumerate(walls) if wall <= from_wall_us), default=0)
        out: list[Packet] = []
        for gop, wall in zip(gops[start:], walls[start:], strict=True):
            if wall >= to_wall_us:
                break
            if gop.spilled is not None:
                out.extend(gop.load(self._audio))  # read back from disk: fresh packets already
            else:
                out.extend((self._copy(packet), recv_us) for packet, recv_us in gop.packets)
        return out, walls[0]

    def _copy(self, packet: av.packet.Packet) -> av.packet.Packet:
        copy = av.packet.Packet(bytes(packet))
        if self.is_audio(packet):
            assert self._audio is not None
            copy.stream = self._audio
            if self._audio.time_base is not None:
                copy.time_base = self._audio.time_base
        copy.pts, copy.dts = packet.pts, packet.dts
        copy.is_keyframe = packet.is_keyframe
        return copy

    def close(self, gops: list[_Gop] | None = None) -> None:
        """Delete spill files (of `gops`, or of everything still held)."""
        for gop in self._gops if gops is None else gops:
            if gop.spilled is not None:
                gop.spilled.unlink(missing_ok=True)
        if gops is None:
            self._gops.clear()
            self.bytes = 0
        self.spilled_bytes = 0
