"""A camera's audio as the segment files carry it: AAC copied, G.711 (PCMU/PCMA) made AAC.

Browsers play AAC in fragmented MP4 (Media Source Extensions, hls.js) and an export is one MP4
for any player; ISO MP4 has no G.711 sample entry (FFmpeg's `mp4` muxer refuses `pcm_mulaw`,
only QuickTime `mov` writes `ulaw`/`alaw`, which browsers do not play). So G.711 is decoded and
encoded to AAC-LC at its own 8 kHz: measured ≈ 0.1 s CPU per camera-minute with FFmpeg's `fast`
coder (0.16 with its default), docs/recorder.md *Audio*. Any other audio codec is not recorded
(logged once per run); the video is recorded as always.

Times stay the camera's: a packet's time is its stream time in samples (the run maps it to media
time with the video's origin), so audio and video of one capture instant keep their RTCP
alignment in the file. The AAC encoder's priming (1024 samples) is in the packet times it
reports, so a decoded sample plays at the time it was captured.
"""

from __future__ import annotations

import logging
from fractions import Fraction

import av
import av.audio.resampler
import av.audio.stream
import av.container
import av.packet
import av.stream

log = logging.getLogger("hotspare.recorder.audio")

_TRANSCODED = {"pcm_mulaw", "pcm_alaw"}
_COPIED = {"aac"}
AAC_BIT_RATE = 32_000
"""Bits per second of the AAC made from G.711 (64 kbit/s µ-law/A-law speech at 8 kHz)."""


class AudioTrack:
    """One run's audio: which stream, and the packets to mux (copied or transcoded)."""

    def __init__(self, stream: av.audio.stream.AudioStream, *, own_decoder: bool = False) -> None:
        """`own_decoder`: G.711 is decoded with a context of this track's own, not the stream's
        (a gap repair's span is written off the session's demux thread, which may decode with
        the stream's context meanwhile: a takeover's replay)."""
        self.input = stream
        ctx = stream.codec_context
        self._decoder: av.AudioCodecContext = ctx
        self.rate: int = ctx.sample_rate or 8000
        self.time_base = Fraction(1, self.rate)
        self.codec: str = ctx.name
        self.transcoded = self.codec in _TRANSCODED
        self._in_tb = stream.time_base or self.time_base
        self._encoder: av.AudioCodecContext | None = None
        self._resampler: av.audio.resampler.AudioResampler | None = None
        if self.transcoded:
            enc = av.CodecContext.create("aac", "w")
            assert isinstance(enc, av.AudioCodecContext)
            enc.sample_rate = self.rate
            enc.layout = "mono"
            enc.format = "fltp"
            enc.bit_rate = AAC_BIT_RATE
            enc.time_base = self.time_base
            enc.options = {"aac_coder": "fast"}
            enc.open()
            self._encoder = enc
            if own_decoder:
                dec = av.CodecContext.create(self.codec, "r")
                assert isinstance(dec, av.AudioCodecContext)
                dec.sample_rate = self.rate
                dec.layout = ctx.layout.name
                self._decoder = dec

    @classmethod
    def of(cls, container: av.container.InputContainer, camera_id: str, *,
           own_decoder: bool = False) -> AudioTrack | None:
        """The container's first audio stream if it can be recorded; None otherwise (said why)."""
        if not container.streams.audio:
            return None
        stream: av.audio.stream.AudioStream = container.streams.audio[0]
        name = stream.codec_context.name
        if name not in _COPIED | _TRANSCODED:
            log.warning("camera %s: its audio (%s) is not recorded: only AAC and G.711 "
                        "(PCMU/PCMA) are; the video is recorded as always", camera_id, name)
            return None
        return cls(stream, own_decoder=own_decoder)

    def add_to(self, out: av.container.OutputContainer) -> av.stream.Stream:
        """The audio stream of a new segment file, timed in samples."""
        stream: av.stream.Stream
        if self.transcoded:
            stream = out.add_stream("aac", rate=self.rate, layout="mono")
            stream.codec_context.bit_rate = AAC_BIT_RATE
        else:
            stream = out.add_stream_from_template(self.input)
        stream.time_base = self.time_base
        return stream

    def packets(self, packet: av.packet.Packet | None) -> list[tuple[av.packet.Packet, int]]:
        """(packet, stream time in samples) to mux for one camera packet; None flushes the
        encoder at the end of a run."""
        if self._encoder is None:
            if packet is None or packet.pts is None:
                return []
            return [(packet, self._samples(packet.pts, self._in_tb))]
        out: list[tuple[av.packet.Packet, int]] = []
        frames: list[av.AudioFrame | None] = [None]
        if packet is not None:
            frames = []
            for decoded in self._decoder.decode(packet):
                frames.extend(self._resample(decoded))
        for frame in frames:
            for encoded in self._encoder.encode(frame):
                if encoded.pts is not None:
                    out.append((encoded, encoded.pts))
        return out

    def _resample(self, frame: av.AudioFrame) -> list[av.AudioFrame]:
        """AAC takes frames of 1024 samples; a gap in the camera's audio (lost packets) starts a
        new resampler, whose frames then begin at the packet's own time."""
        if frame.pts is not None and frame.time_base is not None:
            frame.pts = self._samples(frame.pts, frame.time_base)
            frame.time_base = self.time_base
        for attempt in range(2):
            if self._resampler is None or attempt:
                self._resampler = av.audio.resampler.AudioResampler(
                    format="fltp", layout="mono", rate=self.rate, frame_size=1024)
            try:
                return list(self._resampler.resample(frame))
            except ValueError:  # the frame's time is not where the last one ended
                continue
        return []

    def _samples(self, ts: int, time_base: Fraction) -> int:
        if time_base == self.time_base:
            return ts
        return round(ts * time_base * self.rate)
