"""What the audio of served bytes holds: how much of the video's time it covers, and where the
simulated camera's beeps fall against the keyframes (the sim beeps for exactly the interval of
every keyframe, on the video's clock: docs/camera-sim.md, Streams)."""

from __future__ import annotations

import io
import itertools
from dataclasses import dataclass, field

import av
import numpy as np

from hotspare.camerasim.sei import find_tags

BEEP_LEVEL = 0.25  # of full scale: the beep is half scale, the rest silence
QUIET_SAMPLES = 40  # this many quiet samples end a beep
SETTLE_S = 0.15
"""Onsets this close to a piece's first audio are not judged: an AAC decoder starting mid-stream
lacks the previous frame's overlap, so its first frame is not the sound that was encoded."""


@dataclass
class AudioReport:
    """Over every piece read: audio codecs, spans (seconds of each piece's media time) and the
    beep onsets minus the nearest keyframe (µs)."""

    codecs: set[str] = field(default_factory=set)
    pieces_without_audio: int = 0
    video: list[tuple[float, float]] = field(default_factory=list)
    audio: list[tuple[float, float]] = field(default_factory=list)
    onset_errors_us: list[float] = field(default_factory=list)
    overhangs: list[float] = field(default_factory=list)  # per piece: audio end - video end, s

    def uncovered_s(self) -> float:
        """Seconds of video time with no audio sample (pieces joined in media time)."""
        covered = _merge(self.audio)
        total = 0.0
        for start, end in _merge(self.video):
            inside = sum(max(0.0, min(end, b) - max(start, a)) for a, b in covered)
            total += (end - start) - inside
        return total

    def edges_s(self) -> tuple[float, float]:
        """(first audio - first video, last video end - last audio end), seconds."""
        audio, video = _merge(self.audio), _merge(self.video)
        return audio[0][0] - video[0][0], video[-1][1] - audio[-1][1]

    def overhang_s(self) -> float:
        """How far any piece's audio runs past the end of its last frame (seconds)."""
        return max(self.overhangs, default=0.0)

    def largest_gap_s(self) -> float:
        """The longest stretch inside the audio's own span with no audio sample."""
        return max((b - a for a, b in self.gaps()), default=0.0)

    def gaps(self) -> list[tuple[float, float]]:
        """(start, end) of every stretch inside the audio's own span with no audio sample."""
        merged = _merge(self.audio)
        return [(a[1], b[0]) for a, b in itertools.pairwise(merged)]


def _merge(spans: list[tuple[float, float]], slack: float = 0.001) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for start, end in sorted(spans):
        if out and start <= out[-1][1] + slack:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def read_audio(data: bytes, into: AudioReport, *, capture_clock: bool = False) -> None:
    """Add one served piece (init + media, or a whole MP4) to `into`. `capture_clock`: place the
    piece's spans on the camera's capture clock (its first frame's SEI tag) instead of its own
    media time, so that pieces of different runs (a takeover, a handback) join truthfully."""
    shift = 0.0
    with av.open(io.BytesIO(data), format="mp4") as container:
        video = container.streams.video[0]
        keys: list[float] = []
        first: float | None = None
        last = 0.0
        for packet in container.demux(video):
            if packet.size and packet.pts is not None:
                at = float(packet.pts * packet.time_base)
                if capture_clock and first is None:
                    tags = find_tags(bytes(packet))
                    assert tags, "a piece's first frame carries no capture-time tag"
                    shift = tags[0].capture_wall_us / 1e6 - at
                first = at if first is None else min(first, at)
                last = max(last, at + float((packet.duration or 0) * packet.time_base))
                if packet.is_keyframe:
                    keys.append(at)
        if first is not None:
            into.video.append((first + shift, last + shift))
    with av.open(io.BytesIO(data), format="mp4") as container:
        if not container.streams.audio:
            into.pieces_without_audio += 1
            return
        stream = container.streams.audio[0]
        into.codecs.add(stream.codec_context.name)
        loud_before = False
        first: float | None = None
        audio_end: float | None = None
        for frame in container.decode(stream):
            if frame.pts is None:
                continue
            start = float(frame.pts * frame.time_base)
            first = start if first is None else first
            samples = frame.to_ndarray().reshape(-1).astype(np.float64)
            if frame.format.name.startswith("s16"):
                samples /= 32768.0
            into.audio.append((start + shift, start + shift + frame.samples / frame.sample_rate))
            audio_end = into.audio[-1][1]
            loud = np.abs(samples) > BEEP_LEVEL
            for i in np.flatnonzero(loud):
                onset = start + i / frame.sample_rate
                # a beep past this piece's last video frame belongs to a keyframe of the next
                # piece (audio may overhang a run's end by a held packet): not judged here
                if not loud_before and keys and onset - first >= SETTLE_S and onset < last:
                    into.onset_errors_us.append(
                        1e6 * min((onset - k for k in keys), key=abs))
                loud_before = True
                break  # the first loud sample of this frame is enough for an onset
            if not loud[-QUIET_SAMPLES:].any():
                loud_before = False
        if audio_end is not None and into.video:
            into.overhangs.append(audio_end - into.video[-1][1])
