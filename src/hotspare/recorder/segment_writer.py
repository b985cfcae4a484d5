"""One segment file: a standalone fragmented MP4 whose sample times are the run's media time.

Fragment policy (docs/recorder.md has the measurements): one `moof`+`mdat` per frame
(`frag_every_frame`) and `flush_packets` so each finished fragment is handed to the OS at once. A
SIGKILL then loses at most the frame being muxed; with `frag_keyframe` it would lose up to one GOP.
`frag_discont` plus `avoid_negative_ts=disabled` keep FFmpeg from rebasing the first timestamp to
0, so the first `tfdt` holds the segment's start media time and the file alone tells where in its
run it belongs (the store's reconcile relies on that).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import av.container
import av.packet
import av.stream
from av.video.codeccontext import VideoCodecContext

from hotspare.recorder.audio import AudioTrack
from hotspare.recorder.mp4init import init_length

TIME_BASE_90K = Fraction(1, 90_000)

FRAGMENT_MOVFLAGS = "frag_every_frame+empty_moov+delay_moov+default_base_moof+frag_discont"
"""Chosen over frag_keyframe (measured, 1080p 4 Mbit/s): +0.01 s CPU per camera-minute,
+0.6 % bytes, and a SIGKILL loses 1 frame of the open segment instead of up to one GOP."""


@dataclass(frozen=True)
class WrittenSegment:
    """What the store needs to index a closed segment file."""

    path: Path
    start_media_90k: int
    duration_90k: int
    frame_count: int
    init_bytes: int


class SegmentWriter:
    """Copies packets (no decode) into one file; the caller decides where segments are cut."""

    def __init__(
        self,
        path: Path,
        template: av.stream.Stream,
        start_media_90k: int,
        movflags: str = FRAGMENT_MOVFLAGS,
        *,
        flush_every_frame: bool = True,
        fragment_seconds: float = 0.0,
        audio: AudioTrack | None = None,
        parameter_sets: bytes | None = None,
        picture_size: tuple[int, int] | None = None,
    ) -> None:
        """`flush_every_frame` and `fragment_seconds` are the node's [recording] settings of the
        same names: the defaults (flush, one fragment per frame) bound a crash's loss to the frame
        in the muxer; the others trade a larger loss for less CPU (docs/recorder.md). `audio`:
        the run's audio becomes the file's second track (`write_audio`). `parameter_sets`
        (Annex-B SPS/PPS) and `picture_size`: the init carries these instead of the session's
        first ones (a camera that changed its resolution mid-stream)."""
        self.path = path
        self.start_media_90k = start_media_90k
        self.frame_count = 0
        self.last_media_90k = start_media_90k
        path.parent.mkdir(parents=True, exist_ok=True)
        options = {
            "movflags": movflags,
            "avoid_negative_ts": "disabled",
            "flush_packets": "1" if flush_every_frame else "0",
        }
        if fragment_seconds > 0 and movflags == FRAGMENT_MOVFLAGS:
            options["movflags"] = movflags.replace("frag_every_frame+", "")
            options["frag_duration"] = str(int(fragment_seconds * 1_000_000))
        if audio is not None:
            # Only a track that already holds a sample may start a new fragment (FFmpeg flushes
            # when a packet's own track has run min_frag_duration µs). Without this an audio
            # packet flushes the pending frame and the next frame, arriving on an empty video
            # track, flushes again: measured, one frame in ~10 got the next one's tfdt and a
            # zero duration. With it, a frame's audio rides in its fragment; the next frame
            # still closes it, so the crash bound stays one frame.
            options["min_frag_duration"] = "1"
        self._out: av.container.OutputContainer = av.open(
            str(path), "w", format="mp4", options=options
        )
        self._stream = self._out.add_stream_from_template(template)
        self._stream.time_base = TIME_BASE_90K
        if parameter_sets is not None:
            context = self._stream.codec_context
            context.extradata = parameter_sets
            if picture_size is not None and isinstance(context, VideoCodecContext):
                context.width, context.height = picture_size
        # A camera's RTP video stream is already stream 0 in 1/90000: packets demuxed from it
        # then need no re-labelling, which saves two attribute writes per packet (time_base goes
        # through a Fraction). Any other packet (another source, or one rebuilt from bytes by the
        # pre-buffer's spill, which has no stream and no time base) is re-labelled.
        self._template = template
        self._relabel = not (
            template.index == self._stream.index and template.time_base == TIME_BASE_90K
        )
        self._audio_stream = audio.add_to(self._out) if audio is not None else None
        self._audio_tb = audio.time_base if audio is not None else TIME_BASE_90K
        self.audio_packets = 0
        self._closed = False

    def write(
        self, packet: av.packet.Packet, media_90k: int, dts_90k: int, duration_90k: int = 0
    ) -> None:
        """Mux one packet at the given media time; the packet object is modified in place.

        `duration_90k` (the last frame spacing seen) lets the muxer give the segment's last frame
        its true length; RTSP packets carry none and the muxer would have to guess.
        """
        if self._relabel or packet.stream is not self._template:
            packet.stream = self._stream
            packet.time_base = TIME_BASE_90K
        packet.pts = media_90k
        packet.dts = dts_90k
        if duration_90k > 0:
            packet.duration = duration_90k
        self._out.mux_one(packet)
        self.frame_count += 1
        self.last_media_90k = media_90k

    def write_audio(self, packet: av.packet.Packet, media_samples: int) -> None:
        """Mux one audio packet at its media time in samples (the video's media time, counted
        at the audio's rate). Segments are cut on video keyframes only, so a segment's audio
        may begin up to one audio packet before its first frame."""
        if self._audio_stream is None:
            return
        packet.stream = self._audio_stream
        packet.time_base = self._audio_tb
        packet.pts = media_samples
        packet.dts = media_samples
        self._out.mux_one(packet)
        self.audio_packets += 1

    def close(self, end_media_90k: int) -> WrittenSegment:
        """Finish the file; `end_media_90k` is where the next segment starts (or the run ended)."""
        self._close_container()
        return WrittenSegment(
            path=self.path,
            start_media_90k=self.start_media_90k,
            duration_90k=max(0, end_media_90k - self.start_media_90k),
            frame_count=self.frame_count,
            init_bytes=init_length(self.path),
        )

    def abandon(self) -> None:
        """Close without indexing (the file stays for the store's reconcile to judge)."""
        try:
            self._close_container()
        except (av.FFmpegError, OSError):
            pass

    def _close_container(self) -> None:
        if not self._closed:
            self._closed = True
            self._out.close()
