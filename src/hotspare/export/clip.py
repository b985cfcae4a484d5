"""Joining served pieces into one MP4 by copying packets (never re-encoding), and reading the
frames back out of a clip.

Each piece is an fMP4 init section plus media, as a player fetches it. The clip's time line is
wall time: a piece's first presented frame is placed at its wall time after the clip's first
frame (90 kHz ticks), so a hole in the recording is a hole in the clip's time line, not a splice.
A piece's audio (the camera's AAC, or its G.711 made AAC by the recorder) moves with its video by
the same offset; the clip has an audio track when its first piece has one, and audio that would
overlap audio already written (where two pieces overlap) is left out, so it never runs backwards.
"""

from __future__ import annotations

import io
import itertools
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from hotspare.export.manifest import CLIP_TICKS_PER_SECOND

CLIP_TIME_BASE = Fraction(1, CLIP_TICKS_PER_SECOND)


class ClipError(Exception):
    """A piece or a clip that cannot be read or joined; the message says which and why."""


@dataclass(frozen=True)
class Frame:
    """One video packet, times in 90 kHz ticks; `pts` is its presentation time."""

    pts: int
    dts: int
    duration: int
    keyframe: bool


@dataclass
class PlacedPiece:
    """Where a piece's frames landed in the clip."""

    first_frame_wall_us: int
    clip_first_pts: int
    durations: list[int] = field(default_factory=list)  # presentation order

    @property
    def frame_count(self) -> int:
        return len(self.durations)


def _ticks(value: int, time_base: Fraction) -> int:
    return round(value * time_base / CLIP_TIME_BASE)


def _durations(frames: list[Frame]) -> list[int]:
    """Each frame's span in presentation order: to the next frame, the last one its own."""
    starts = sorted(f.pts for f in frames)
    spans = [b - a for a, b in itertools.pairwise(starts)]
    last = max(frames, key=lambda f: f.pts).duration
    if last <= 0:
        last = spans[-1] if spans else 0
    return [*spans, last]


class ClipWriter:
    """An MP4 being written from pieces, in order; `close()` finishes the file."""

    def __init__(self, path: Path) -> None:
        self._out = av.open(str(path), "w", format="mp4",
                            options={"video_track_timescale": str(CLIP_TICKS_PER_SECOND)})
        self._stream: Any = None
        self._audio: Any = None
        self._last_audio_pts: int | None = None
        self._first_wall_us: int | None = None
        self._last_dts: int | None = None

    def add(self, data: bytes, wall_us: int, what: str) -> PlacedPiece:
        """Copy the video packets of one piece (init + media bytes) whose first presented frame
        was seen at `wall_us`. Raises ClipError (and adds nothing) for a piece it cannot read."""
        try:
            container = av.open(io.BytesIO(data), format="mp4")
        except av.FFmpegError as exc:
            raise ClipError(f"{what}: not a readable MP4 piece ({exc})") from None
        with container:  # packets borrow the input's buffers: mux before it closes
            frames, packets, audio = _read_piece(container, what)
            return self._place(frames, packets, audio, wall_us)

    def _place(self, frames: list[Frame], packets: list[Any], audio: list[Any],
               wall_us: int) -> PlacedPiece:
        if self._stream is None:
            self._stream = self._out.add_stream_from_template(packets[0].stream)
            self._stream.time_base = CLIP_TIME_BASE
            if audio:
                self._audio = self._out.add_stream_from_template(audio[0].stream)
                self._audio.time_base = audio[0].time_base
            self._first_wall_us = wall_us
        assert self._first_wall_us is not None
        first_pts = min(f.pts for f in frames)
        offset = round((wall_us - self._first_wall_us) * CLIP_TICKS_PER_SECOND / 1_000_000)
        offset -= first_pts
        first_dts = min(f.dts for f in frames) + offset
        if self._last_dts is not None and first_dts <= self._last_dts:
            # The wall clock says this piece starts before the last one ended (an overlap the
            # playlist kept, or an anchor error): keep decode order, never rewrite the past.
            offset += self._last_dts + 1 - first_dts
        for frame, packet in zip(frames, packets, strict=True):
            packet.stream = self._stream
            packet.time_base = CLIP_TIME_BASE
            packet.pts = frame.pts + offset
            packet.dts = frame.dts + offset
            packet.duration = frame.duration
            self._out.mux(packet)
            self._last_dts = frame.dts + offset
        self._place_audio(audio, offset)
        return PlacedPiece(wall_us, first_pts + offset, _durations(frames))

    def _place_audio(self, packets: list[Any], offset: int) -> None:
        """The piece's audio, moved by its video's `offset` (clip ticks)."""
        if self._audio is None or not packets:
            return
        time_base = packets[0].time_base
        piece = packets[0].stream.codec_context
        clip = self._audio.codec_context
        if time_base != self._audio.time_base or \
                (piece.name, piece.sample_rate) != (clip.name, clip.sample_rate):
            return  # a camera whose audio changed within the range: a clip holds one format
        shift = round(offset * CLIP_TIME_BASE / time_base)
        for packet in packets:
            pts = packet.pts + shift
            if self._last_audio_pts is not None and pts <= self._last_audio_pts:
                continue
            packet.stream = self._audio
            packet.time_base = time_base
            packet.pts = packet.dts = pts
            self._out.mux(packet)
            self._last_audio_pts = pts

    def close(self) -> None:
        self._out.close()


def _frames_of(container: Any, what: str) -> tuple[list[Frame], list[Any], list[Any]]:
    """(video frames, their packets, the audio packets that carry a timestamp)."""
    if not container.streams.video:
        raise ClipError(f"{what}: holds no video stream")
    stream = container.streams.video[0]
    time_base = stream.time_base
    wanted = [stream, *container.streams.audio[:1]]
    frames: list[Frame] = []
    packets: list[Any] = []
    audio: list[Any] = []
    try:
        for packet in container.demux(wanted):
            if not packet.size:
                continue
            if packet.stream_index != stream.index:
                if packet.pts is not None:
                    audio.append(packet)
                continue
            if packet.pts is None or packet.dts is None:
                raise ClipError(f"{what}: a packet has no timestamp")
            frames.append(Frame(_ticks(packet.pts, time_base), _ticks(packet.dts, time_base),
                                _ticks(packet.duration or 0, time_base), packet.is_keyframe))
            packets.append(packet)
    except av.FFmpegError as exc:
        raise ClipError(f"{what}: damaged ({exc})") from None
    return frames, packets, audio


def _read_piece(container: Any, what: str) -> tuple[list[Frame], list[Any], list[Any]]:
    frames, packets, audio = _frames_of(container, what)
    if not frames:
        raise ClipError(f"{what}: holds no video frame")
    if not frames[0].keyframe:
        raise ClipError(f"{what}: does not start on a keyframe; a player could not decode it")
    return frames, packets, audio


def clip_frames(path: Path) -> list[Frame]:
    """Every video packet of a clip, in decode order, in 90 kHz ticks."""
    try:
        container = av.open(str(path), format="mp4")
    except av.FFmpegError as exc:
        raise ClipError(f"{path}: not a readable MP4 ({exc})") from None
    with container:
        frames, _packets, _audio = _frames_of(container, str(path))
    return frames

