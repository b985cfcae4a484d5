"""RTP packets FFmpeg reports lost, and which frames that makes unfit to record.

Over RTSP/UDP packets get lost (a flapping link, a host whose link went down and came back).
FFmpeg's RTP demuxer neither drops nor flags the access unit it was assembling when packets went
missing: its H.264/H.265 parser cuts frames by their NAL units alone, not by RTP timestamp or
marker bit, so the frame it hands over next may be cut short, carry the tail of a later frame, or
hold two frames' NAL units under the first one's time (the chaos soak stored such a sample: two
frames' tags in one, docs/recorder.md, *Packet loss*). Its only sign is a warning its RTP demuxer
logs on the thread that reads the stream ("RTP: missed N packets"). PyAV captures FFmpeg's log
per thread, and every camera is demuxed on a thread of its own, so a `LossWatch` around a demux
loop hears exactly its own camera's losses.

What is unfit: the frame handed over first after the report (the one being assembled), and every
frame after it up to the next keyframe (they refer to a picture that was not received whole).
"""

from __future__ import annotations

import logging
import re
import threading
from enum import Enum
from types import TracebackType

import av.logging
import av.packet

log = logging.getLogger("hotspare.recorder.worker")

_LOST = re.compile(r"RTP: missed (\d+) packets")
_BAD_SEQUENCE = "bad cseq"  # a packet FFmpeg's RTP demuxer refused for its sequence number
_DROPPED_LATE = "dropping old packet received too late"
"""FFmpeg's reorder queue (UDP) refusing a packet numbered before the last one it handed over: now
and then a straggler, but every packet after a stream restart to a lower sequence base
(`late_drops.LateDropGuard`)."""

_enabled = False
_enable_lock = threading.Lock()


def enable_ffmpeg_log() -> None:
    """Have FFmpeg's warnings reach PyAV's per-thread capture (PyAV ignores FFmpeg's log by
    default). Once per process. What no capture takes goes to the `libav` logger, kept at
    CRITICAL so that node logs stay as they were. Identical lines are not folded: two cameras
    losing the same number of packets must both be heard."""
    global _enabled
    with _enable_lock:
        if _enabled:
            return
        logging.getLogger("libav").setLevel(logging.CRITICAL)
        av.logging.set_skip_repeated(False)
        av.logging.set_level(av.logging.WARNING)
        _enabled = True


class Unfit(Enum):
    """Why a frame is not recorded."""

    DAMAGED = "damaged"
    """Being assembled when packets went missing: cut short, or joined with another frame."""
    UNREFERENCED = "unreferenced"
    """After a damaged or lost frame and before the next keyframe: it refers to lost data."""


class LossWatch:
    """FFmpeg's RTP loss reports on the calling thread, for one camera's demux loop (a context
    manager; create and use it on the demux thread)."""

    def __init__(self, camera_id: str) -> None:
        enable_ffmpeg_log()
        self._camera_id = camera_id
        self._capture = av.logging.Capture(local=True)
        self._logs: list[tuple[int, str, str]] = []
        self._damage_next = False
        self._await_keyframe = False
        self.packets_lost = 0
        """RTP packets FFmpeg reported missing on this connection."""
        self.losses = 0
        """Times it reported a loss (one report can cover many packets)."""
        self.latest = 0
        """Packets in the latest report."""
        self.frames_judged = 0
        """Video packets handed over on this connection (another thread tells progress by it)."""

    def start(self) -> LossWatch:
        """Start capturing this thread's FFmpeg log (the demux thread's)."""
        self._logs = self._capture.__enter__()
        return self

    def stop(self) -> None:
        self._capture.__exit__(None, None, None)

    def __enter__(self) -> LossWatch:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def judge(self, packet: av.packet.Packet) -> Unfit | None:
        """None when the video `packet` (the next one demuxed) may be recorded; else why not."""
        self.frames_judged += 1
        if self._logs:
            self._read_logs()
        if self._damage_next:
            self._damage_next = False
            self._await_keyframe = True
            return Unfit.DAMAGED
        if self._await_keyframe:
            if not packet.is_keyframe:
                return Unfit.UNREFERENCED
            self._await_keyframe = False
        return None

    def late_drops_pending(self) -> int:
        """Packets FFmpeg dropped as too late since the demux thread last read its log. Safe to
        ask from another thread while the demux thread is blocked in FFmpeg."""
        return sum(_DROPPED_LATE in entry[2] for entry in list(self._logs))

    def _read_logs(self) -> None:
        for _level, name, message in self._logs:
            found = _LOST.search(message)
            lost = int(found.group(1)) if found else int(_BAD_SEQUENCE in message)
            if lost > 0:
                self.packets_lost += lost
                self.losses += 1
                self.latest = lost
                self._damage_next = True
            else:
                log.debug("camera %s: FFmpeg [%s] %s", self._camera_id, name, message.strip())
        self._logs.clear()
